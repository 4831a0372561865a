# frozen_string_literal: true

require "etc"
require "uri"
require_relative "configuration"
require_relative "puma_compat"

module Rustpuma
  # The language of config/puma.rb: every public method of Puma's DSL (Puma
  # 6 and the Puma 7 hook names), so that a Rails app's existing file runs
  # unchanged. Each method only records values into one layer's options hash;
  # Rustpuma::Configuration owns the layers, reads files through
  # #_load_from and decides precedence. The CLI and the Rack handler drive the
  # same methods on the user layer.
  class DSL
    # `Puma` as config files see it (Puma.jruby?, Puma::Const, Puma::Plugin
    # …): a lexical constant of this class, because files are evaluated
    # with instance_eval here; ::Puma stays undefined for the app.
    Puma = PumaCompat::Puma

    # Puma settings recorded but with nothing to act on in our design
    # (docs/configuration.md says why); accepted silently.
    WITHOUT_EFFECT = %i[io_selector_backend max_fast_inline].freeze

    # Old (Puma <= 6) hook name => Puma 7 name; both stay valid.
    HOOK_ALIASES = {
      on_worker_boot: :before_worker_boot,
      on_worker_shutdown: :before_worker_shutdown,
      on_worker_fork: :before_worker_fork,
      after_worker_boot: :after_worker_fork,
      on_booted: :after_booted,
      on_stopped: :after_stopped,
      on_restart: :before_restart,
      on_refork: :before_refork,
      on_thread_start: :before_thread_start,
      on_thread_exit: :before_thread_exit
    }.freeze

    # Hooks that may be registered under a key to share data between them.
    KEYED_HOOKS = %i[before_worker_boot before_worker_shutdown before_refork after_refork].freeze

    # Builds an "ssl://" bind from ssl_bind's keyword options, so that all
    # listener settings travel the same way (as a URI). Values are escaped
    # because paths may contain '&' or spaces.
    def self.ssl_bind_str(host, port, opts = {})
      params = []
      add = ->(name, value) { params << "#{name}=#{URI.encode_www_form_component(value.to_s)}" unless value.nil? }
      add.call("cert", opts[:cert])
      add.call("key", opts[:key])
      add.call("key_password_command", opts[:key_password_command])
      add.call("ssl_cipher_filter", opts[:ssl_cipher_filter])
      add.call("ssl_ciphersuites", opts[:ssl_ciphersuites])
      add.call("cipher_suites", opts[:cipher_suites])
      add.call("protocols", opts[:protocols])
      add.call("keystore", opts[:keystore])
      add.call("keystore-pass", opts[:keystore_pass])
      add.call("truststore", opts[:truststore])
      add.call("truststore-pass", opts[:truststore_pass])
      reuse = opts[:reuse]
      if reuse == true
        add.call("reuse", "dflt")
      elsif reuse.is_a?(Hash)
        size = reuse[:size].is_a?(Integer) ? reuse[:size].to_s : ""
        timeout = reuse[:timeout].is_a?(Integer) ? ",#{reuse[:timeout]}" : ""
        add.call("reuse", "#{size}#{timeout}") unless (size + timeout).empty?
      end
      verify = opts.fetch(:verify_mode, "none").to_s
      add.call("verify_mode", verify)
      if opts[:no_tlsv1_1] then add.call("no_tlsv1_1", true)
      elsif opts[:no_tlsv1] then add.call("no_tlsv1", true)
      end
      add.call("ca", opts[:ca]) if %w[peer force_peer].include?(verify)
      add.call("verification_flags", Array(opts[:verification_flags]).join(",")) if opts[:verification_flags]
      add.call("backlog", Integer(opts[:backlog])) if opts[:backlog]
      add.call("low_latency", opts[:low_latency]) if opts.key?(:low_latency)
      "ssl://#{bracket_host(host)}:#{port}?#{params.join('&')}"
    end

    # IPv6 literals need brackets inside a URI.
    def self.bracket_host(host)
      host = host.to_s
      host.include?(":") && !host.start_with?("[") ? "[#{host}]" : host
    end

    def initialize(options, config)
      @options = options
      @config = config
      @paths = []
      @mode_blocks = []
    end

    # -- used by Configuration, not by config files -------------------------

    def _load_from(path)
      @paths.push(path)
      instance_eval(File.read(path), path, 1)
    ensure
      @paths.pop
    end

    # single/cluster blocks wait until the worker count is final (it may be
    # set after the block, or by a flag), then only the matching ones run.
    def _run_mode_blocks(cluster)
      blocks = @mode_blocks
      @mode_blocks = []
      blocks.each do |mode, block|
        next unless (mode == :cluster) == cluster

        path = block.source_location&.first
        @paths.push(path) if path
        begin
          instance_eval(&block)
        ensure
          @paths.pop if path
        end
      end
    end

    # A method Puma does not have: fail loudly with where it was called,
    # because a silently ignored typo in a server config is a production bug.
    # Like Ruby's NoMethodError under Puma, it suggests the nearest names.
    def method_missing(name, *_args, &_block)
      message = "#{_caller_location}unknown configuration option '#{name}'"
      if defined?(DidYouMean::SpellChecker)
        known = self.class.public_instance_methods(false).map(&:to_s)
        guesses = DidYouMean::SpellChecker.new(dictionary: known).correct(name.to_s)
        message += "\nDid you mean?  #{guesses.join("\n               ")}" unless guesses.empty?
      end
      raise ConfigError, message
    end

    def respond_to_missing?(_name, _include_private = false)
      false
    end

    # -- general -----------------------------------------------------------

    def set_default_host(host)
      @options[:default_host] = host
    end

    def default_host
      @options[:default_host] || Configuration::DEFAULT_TCP_HOST
    end

    def inject(&block)
      instance_eval(&block)
    end

    def get(key, default = nil)
      @options[key.to_sym] || default
    end

    # Loads the plugin now, as Puma does, so DSL methods its file adds can be
    # used on the following lines (lib/rustpuma/plugin.rb).
    def plugin(name)
      (@options[:plugins] ||= []) << name.to_s
      @config.load_plugin(name) if @config.respond_to?(:load_plugin)
    end

    def app(obj = nil, &block)
      obj ||= block
      raise ArgumentError, "app needs a #call'able object or a block" unless obj.respond_to?(:call)

      @options[:app] = obj
    end

    def activate_control_app(url = "auto", opts = {})
      if url == "auto"
        path = Configuration.temp_path
        @options[:control_url] = "unix://#{path}"
        @options[:control_url_temp] = path
      else
        @options[:control_url] = url
      end
      @options[:control_auth_token] =
        if opts[:no_token]
          "none"
        else
          opts[:auth_token] || Configuration.random_token
        end
      @options[:control_url_umask] = opts[:umask] if opts[:umask]
    end

    # Reads another config file now, into the same layer. A relative path is
    # tried from the working directory, then next to the current file.
    def load(file)
      file = file.to_s
      if !File.exist?(file) && (current = @paths.last) && !file.start_with?("/")
        beside = File.join(File.dirname(current), file)
        file = beside if File.exist?(beside)
      end
      @config.evaluate_file(self, file)
    end

    # -- listeners ---------------------------------------------------------

    def bind(url)
      (@options[:binds] ||= []) << url.to_s
    end

    def clear_binds!
      @options[:binds] = []
    end

    def bind_to_activated_sockets(bind = true)
      @options[:bind_to_activated_sockets] = bind
    end

    def port(port, host = nil)
      host ||= default_host
      bind "tcp://#{self.class.bracket_host(host)}:#{Integer(port)}"
    end

    def ssl_bind(host, port, opts = {})
      opts = opts.dup
      # PEM strings would make an unreadable URI; they are stored aside and
      # referenced by index, as Puma does.
      %i[cert key].each do |kind|
        pem = opts.delete(:"#{kind}_pem")
        next unless pem

        store = (@options[:store] ||= [])
        opts[kind] = "store:#{store.length}"
        store << pem
      end
      bind self.class.ssl_bind_str(host, port, opts)
    end

    def tcp_nodelay(enabled = true)
      @options[:tcp_nodelay] = enabled
    end

    # -- timeouts and connection handling -----------------------------------

    def first_data_timeout(seconds)
      @options[:first_data_timeout] = Integer(seconds)
    end

    def persistent_timeout(seconds)
      @options[:persistent_timeout] = Integer(seconds)
    end

    def idle_timeout(seconds)
      @options[:idle_timeout] = Integer(seconds)
    end

    def enable_keep_alives(enabled = true)
      @options[:enable_keep_alives] = enabled
    end

    def max_keep_alive(count)
      @options[:max_keep_alive] = Integer(count)
    end

    def max_fast_inline(num_of_requests)
      @options[:max_fast_inline] = Float(num_of_requests)
    end

    def queue_requests(answer = true)
      @options[:queue_requests] = answer
    end

    # rustpuma's own: the most response bytes the reactor holds in memory
    # for clients still reading them (files being sent do not count); past
    # it, the next response waits for bytes to drain (its pool thread waits,
    # at most the write timeout). Puma has no such bound.
    def slow_reader_buffer_limit(bytes)
      @options[:slow_reader_buffer_limit] = Integer(bytes)
    end

    # rustpuma's own: time every request's phases (queue, gvl_wait, app,
    # write) for /metrics, /stats and env["rustpuma.timings"]. On by
    # default; off saves a few clock reads per request.
    def request_metrics(which = true)
      @options[:request_metrics] = which
    end

    # rustpuma's own: the most bytes of one streamed body (`each`,
    # ActionController::Live) held for its client; past it the app's thread
    # waits for the client to read. Puma has no such bound.
    def streaming_body_buffer_limit(bytes)
      @options[:streaming_body_buffer_limit] = Integer(bytes)
    end

    def drain_on_shutdown(which = true)
      @options[:drain_on_shutdown] = which
    end

    def force_shutdown_after(val = :forever)
      @options[:force_shutdown_after] =
        case val
        when :forever then -1
        when :immediately then 0
        else Float(val)
        end
    end

    def http_content_length_limit(limit)
      @options[:http_content_length_limit] = limit
    end

    def supported_http_methods(methods)
      if methods == :any
        @options[:supported_http_methods] = :any
      elsif methods.is_a?(Array) && !methods.empty? && methods.all?(String) && methods.uniq == methods
        @options[:supported_http_methods] = methods
      else
        raise ArgumentError, "supported_http_methods must be :any or a unique array of strings"
      end
    end

    def set_remote_address(val = :socket)
      @options[:set_remote_address] = val
      case val
      when :socket
        @options[:remote_address] = :socket
      when :localhost
        @options[:remote_address] = :value
        @options[:remote_address_value] = "127.0.0.1"
      when String
        @options[:remote_address] = :value
        @options[:remote_address_value] = val
      when Hash
        if (header = val[:header])
          @options[:remote_address] = :header
          @options[:remote_address_header] = "HTTP_#{header.to_s.upcase.tr('-', '_')}"
        elsif (version = val[:proxy_protocol])
          version = version.to_s.downcase.to_sym
          raise ArgumentError, "Invalid value for proxy_protocol - #{version.inspect}" unless version == :v1

          @options[:remote_address] = :proxy_protocol
          @options[:remote_address_proxy_protocol] = version
        else
          raise ArgumentError, "Invalid value for set_remote_address - #{val.inspect}"
        end
      else
        raise ArgumentError, "Invalid value for set_remote_address - #{val.inspect}"
      end
    end

    def rack_url_scheme(scheme = nil)
      @options[:rack_url_scheme] = scheme
    end

    def early_hints(answer = true)
      @options[:early_hints] = answer
    end

    def lowlevel_error_handler(obj = nil, &block)
      obj ||= block
      raise ArgumentError, "lowlevel_error_handler needs a #call'able object or a block" unless obj.respond_to?(:call)

      @options[:lowlevel_error_handler] = obj
    end

    # Each request runs in a fresh Fiber, so fiber-local storage
    # (Thread.current[:x]) never carries over to the next request. Puma 8
    # made clean_thread_locals the same switch.
    def fiber_per_request(enabled = true)
      @options[:fiber_per_request] = enabled
    end
    alias clean_thread_locals fiber_per_request

    # -- the application and process -----------------------------------------

    def environment(environment)
      @options[:environment] = environment.to_s
    end

    def directory(dir)
      @options[:directory] = dir.to_s
    end

    def rackup(path)
      @options[:rackup] = path.to_s
    end

    def tag(string)
      @options[:tag] = string.to_s
    end

    def pidfile(path)
      @options[:pidfile] = path.to_s
    end

    def state_path(path)
      @options[:state_path] = path.to_s
    end

    def state_permission(permission)
      @options[:state_permission] = permission
    end

    def restart_command(cmd)
      @options[:restart_cmd] = cmd.to_s
    end

    def raise_exception_on_sigterm(answer = true)
      @options[:raise_exception_on_sigterm] = answer
    end

    # true: dump every thread's backtrace when a stop begins; with
    # `on_force: true`, only when requests outlive force_shutdown_after.
    def shutdown_debug(val = true, on_force: false)
      @options[:shutdown_debug] = val && on_force ? :on_force : val
    end

    def debug
      @options[:debug] = true
    end

    # -- logging ----------------------------------------------------------------

    # quiet and log_requests are two views of one switch; both keys are kept
    # so readers of either name agree.
    def quiet(which = true)
      @options[:log_requests] = !which
      @options[:quiet] = which
    end

    def log_requests(which = true)
      @options[:log_requests] = which
      @options[:quiet] = !which
    end

    def stdout_redirect(stdout = nil, stderr = nil, append = false)
      @options[:redirect_stdout] = stdout
      @options[:redirect_stderr] = stderr
      @options[:redirect_append] = append
    end

    # An object with #write that receives every server line (formatted)
    # and, with log_requests, the request log, instead of stdout.
    def custom_logger(custom_logger)
      @options[:custom_logger] = custom_logger
    end

    # A block that turns each server line into the text written.
    def log_formatter(&block)
      @options[:log_formatter] = block
    end

    def mutate_stdout_and_stderr_to_sync_on_write(enabled = true)
      @options[:mutate_stdout_and_stderr_to_sync_on_write] = enabled
    end

    def io_selector_backend(backend)
      @options[:io_selector_backend] = backend.to_sym
    end

    # -- threads and workers ----------------------------------------------------

    def threads(min, max = min)
      min = Integer(min)
      max = Integer(max)
      raise ArgumentError, "The minimum (#{min}) number of threads must be less than or equal to the max (#{max})" if min > max
      raise ArgumentError, "The maximum number of threads (#{max}) must be greater than 0" if max < 1

      if max == 1
        _log "[WARNING] `threads #{min}, #{max}` allows a single request at a time; " \
             "an app that calls itself over HTTP will deadlock"
      end
      @options[:min_threads] = min
      @options[:max_threads] = max
    end

    # :auto (as WEB_CONCURRENCY=auto) means one worker per usable processor.
    def workers(count)
      @options[:workers] = count.nil? ? 0 : Configuration.parse_workers(count)
    end

    # Threads that called env["puma.mark_as_io_bound"] (waiting on I/O, not
    # using the CPU) do not count against `threads`' max, up to this many.
    def max_io_threads(max)
      max = Integer(max)
      raise ArgumentError, "The maximum number of IO threads (#{max}) must be a positive number" if max.negative?

      @options[:max_io_threads] = max
    end

    def preload_app!(answer = true)
      @options[:preload_app] = answer
    end

    def fork_worker(after_requests = 1000)
      @options[:fork_worker] = Integer(after_requests)
    end

    # Puma 6's: collect and compact the heap before forking workers, so
    # they share more memory pages. (Puma 8 dropped the method; we keep it.)
    def nakayoshi_fork(enabled = true)
      @options[:nakayoshi_fork] = enabled
    end

    # Cluster mode without preload: the master re-execs itself without
    # Bundler loaded, so a phased restart can load a new Gemfile.lock.
    def prune_bundler(answer = true)
      @options[:prune_bundler] = answer
    end

    # Gems (names) the pruned master still needs on its load path.
    def extra_runtime_dependencies(answer = [])
      @options[:extra_runtime_dependencies] = Array(answer)
    end

    # Cluster mode: a worker whose threads are busy waits a little (up to
    # +val+ seconds, in proportion to how busy) before accepting, so that an
    # idle worker takes the connection.
    def wait_for_less_busy_worker(val = 0.005)
      @options[:wait_for_less_busy_worker] = Float(val)
    end

    def silence_single_worker_warning
      @options[:silence_single_worker_warning] = true
    end

    def silence_fork_callback_warning
      @options[:silence_fork_callback_warning] = true
    end

    def worker_check_interval(interval)
      @options[:worker_check_interval] = Integer(interval)
    end

    def worker_timeout(timeout)
      timeout = Integer(timeout)
      interval = @options.fetch(:worker_check_interval, Configuration::DEFAULTS[:worker_check_interval])
      if timeout <= interval
        raise ArgumentError, "worker_timeout (#{timeout}) must be greater than worker_check_interval (#{interval})"
      end

      @options[:worker_timeout] = timeout
    end

    def worker_boot_timeout(timeout)
      @options[:worker_boot_timeout] = Integer(timeout)
    end

    def worker_shutdown_timeout(timeout)
      @options[:worker_shutdown_timeout] = Integer(timeout)
    end

    def worker_culling_strategy(strategy)
      strategy = strategy.to_sym
      unless %i[youngest oldest].include?(strategy)
        raise ArgumentError, "Invalid value for worker_culling_strategy - #{strategy}"
      end

      @options[:worker_culling_strategy] = strategy
    end

    # rustpuma's own (Puma has none; puma_worker_killer's job there): a
    # worker whose resident memory (RSS) is above the limit at a check
    # (every worker_check_interval) is replaced, its replacement booted
    # first. A number is megabytes, as puma_worker_killer's `ram`; a String
    # may name its unit ("512MB", "1.5G", "800KiB"; binary units). nil: off.
    def worker_memory_limit(limit)
      @options[:worker_memory_limit] = Configuration.parse_memory(limit)
    end

    # rustpuma's own: a worker is replaced (its replacement booted first)
    # once it has served `count` requests plus a random 0..jitter drawn for
    # each worker, so workers started together do not all go together.
    # jitter defaults to a tenth of count. nil or 0: off.
    def worker_max_requests(count, jitter: nil)
      count = count.nil? ? 0 : Integer(count)
      jitter = jitter.nil? ? count / 10 : Integer(jitter)
      raise ArgumentError, "worker_max_requests must not be negative (#{count})" if count.negative?
      raise ArgumentError, "worker_max_requests jitter must not be negative (#{jitter})" if jitter.negative?

      @options[:worker_max_requests] = count.zero? ? nil : count
      @options[:worker_max_requests_jitter] = jitter
    end

    # Blocks evaluated only in single mode (workers 0) or cluster mode.
    def single(&block)
      raise ArgumentError, "single needs a block" unless block

      @mode_blocks << [:single, block]
    end

    def cluster(&block)
      raise ArgumentError, "cluster needs a block" unless block

      @mode_blocks << [:cluster, block]
    end

    # -- hooks ------------------------------------------------------------------

    def before_fork(&block)
      _hook(:before_fork, nil, block)
    end

    def before_worker_boot(key = nil, &block)
      _hook(:before_worker_boot, key, block)
    end

    def before_worker_shutdown(key = nil, &block)
      _hook(:before_worker_shutdown, key, block)
    end

    def before_worker_fork(&block)
      _hook(:before_worker_fork, nil, block)
    end

    def after_worker_fork(&block)
      _hook(:after_worker_fork, nil, block)
    end

    # In the master, once a worker has exited: the block gets the worker's
    # handle (index, pid, process_status…).
    def after_worker_shutdown(&block)
      _hook(:after_worker_shutdown, nil, block)
    end

    def after_booted(&block)
      _hook(:after_booted, nil, block)
    end

    def after_stopped(&block)
      _hook(:after_stopped, nil, block)
    end

    def before_restart(&block)
      _hook(:before_restart, nil, block)
    end

    def before_refork(key = nil, &block)
      _hook(:before_refork, key, block)
    end

    def after_refork(key = nil, &block)
      _hook(:after_refork, key, block)
    end

    def before_thread_start(&block)
      _hook(:before_thread_start, nil, block)
    end

    def before_thread_exit(&block)
      _hook(:before_thread_exit, nil, block)
    end

    def out_of_band(&block)
      _hook(:out_of_band, nil, block)
    end

    HOOK_ALIASES.each { |old, new| alias_method old, new }

    private

    def _hook(name, key, block)
      raise ArgumentError, "#{name} needs a block" unless block
      if key && !(key.is_a?(String) || key.is_a?(Symbol))
        raise ArgumentError, "#{name} key must be a String or Symbol, got #{key.class}"
      end

      (@options[name] ||= []) << (key && KEYED_HOOKS.include?(name) ? [block, key] : block)
    end

    # Settings whose behaviour is still being written: one notice each.
    def _not_yet(name)
      @config&.warn_not_supported(name)
    end

    def _log(line)
      @config&.log_writer&.log(line)
    end

    # "path:line: " of the innermost call from the file being read, or "" for
    # calls that do not come from a file (the CLI, the Rack handler).
    def _caller_location
      return "" if @paths.empty?

      loc = caller_locations(2).find { |l| @paths.include?(l.path) }
      loc ? "#{loc.path}:#{loc.lineno}: " : "#{@paths.last}: "
    end
  end
end
