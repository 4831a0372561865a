# frozen_string_literal: true

require "etc"
require "securerandom"
require "tmpdir"
require_relative "default_bind"
require_relative "log_writer"

module Rustpuma
  # Anything wrong with what the user asked for (unknown DSL method, syntax
  # error in config/puma.rb, bad flag value). The message is already what the
  # user should read, "file:line: ..." when a file is involved; the CLI prints
  # it and exits 1. Guarded so that another file may define it first.
  ConfigError = Class.new(StandardError) unless const_defined?(:ConfigError, false)

  # Everything a server runs with: built-in defaults, values derived from the
  # environment, the config file(s) read through Rustpuma::DSL, and the
  # command line / Rack handler settings, in that increasing precedence.
  #
  # Built by Rustpuma::CLI and Rack::Handler::Rustpuma; read by the Launcher
  # (options, app, run_hooks). Like Puma's Configuration it keeps one options
  # hash per layer so that, say, `-b` on the command line replaces the binds
  # of config/puma.rb instead of adding to them.
  class Configuration
    # Puma 8's default host: see DefaultBind (`::` or `0.0.0.0`).
    DEFAULT_TCP_HOST = DefaultBind::IPV6_ANY
    DEFAULT_TCP_PORT = 9292

    # Option keys holding Arrays of blocks, under the Puma 7 names.
    HOOKS = %i[
      before_fork before_worker_boot before_worker_shutdown before_worker_fork
      after_worker_fork after_worker_shutdown before_refork after_refork after_booted after_stopped
      before_restart before_thread_start before_thread_exit out_of_band
    ].freeze

    # Hooks that only ever run in cluster mode; defining one in single mode is
    # almost always a mistake, so we say so (as Puma does).
    CLUSTER_HOOKS = %i[
      before_fork before_worker_boot before_worker_shutdown before_worker_fork
      after_worker_fork after_worker_shutdown before_refork after_refork
    ].freeze

    # For these keys every layer contributes (a hook defined on the command
    # line does not cancel the ones in the file); all other keys override.
    ACCUMULATED = (HOOKS + %i[plugins]).freeze

    # rustpuma's budget for response bytes the reactor holds in memory
    # (slow_reader_buffer_limit), per process: 1/16 of the machine's memory,
    # at least 64 MiB (a 50 MB body fits) and at most 1 GiB.
    def self.response_budget_default(meminfo = "/proc/meminfo")
      kib = File.read(meminfo)[/^MemTotal:\s+(\d+)/, 1].to_i
      (kib * 1024 / 16).clamp(64 << 20, 1 << 30)
    rescue SystemCallError
      256 << 20
    end

    # Puma 6/7 defaults under Puma's key names. nil means "not set": either
    # truly optional or computed in #finalize from other values.
    DEFAULTS = {
      binds: ["tcp://[#{DEFAULT_TCP_HOST}]:#{DEFAULT_TCP_PORT}"].freeze,
      min_threads: 0,
      max_threads: 5,
      environment: "development",
      rackup: "config.ru",
      app: nil,
      directory: nil,
      quiet: true,
      log_requests: false,
      silent: false,
      tag: nil,
      pidfile: nil,
      state_path: nil,
      state_permission: nil,
      persistent_timeout: 65,
      first_data_timeout: 30,
      idle_timeout: nil,
      enable_keep_alives: true,
      max_keep_alive: 999,
      max_fast_inline: 10,
      early_hints: nil,
      lowlevel_error_handler: nil,
      workers: 0,
      preload_app: nil,
      fork_worker: nil,
      redirect_stdout: nil,
      redirect_stderr: nil,
      redirect_append: false,
      plugins: [].freeze,
      worker_timeout: 60,
      worker_boot_timeout: nil,
      worker_shutdown_timeout: 30,
      worker_check_interval: 5,
      worker_culling_strategy: :youngest,
      worker_memory_limit: nil,
      worker_max_requests: nil,
      worker_max_requests_jitter: 0,
      control_url: nil,
      control_auth_token: nil,
      remote_address: :socket,
      set_remote_address: :socket,
      rack_url_scheme: nil,
      supported_http_methods: nil,
      http_content_length_limit: nil,
      debug: false,
      mode: :http,
      raise_exception_on_sigterm: true,
      drain_on_shutdown: false,
      slow_reader_buffer_limit: response_budget_default,
      request_metrics: true,
      streaming_body_buffer_limit: 64 * 1024 * 1024,
      queue_requests: true,
      shutdown_debug: false,
      force_shutdown_after: nil,
      restart_cmd: nil,
      silence_single_worker_warning: false,
      silence_fork_callback_warning: false,
      tcp_nodelay: nil,
      wait_for_less_busy_worker: 0.005,
      io_selector_backend: :auto,
      mutate_stdout_and_stderr_to_sync_on_write: true,
      fiber_per_request: !ENV.fetch("PUMA_FIBER_PER_REQUEST", "").empty?,
      max_io_threads: 0,
      nakayoshi_fork: false,
      prune_bundler: false,
      extra_runtime_dependencies: [].freeze,
      custom_logger: nil,
      log_formatter: nil,
      bind_to_activated_sockets: nil,
      **HOOKS.to_h { |h| [h, [].freeze] }
    }.freeze

    NO_CONFIG = [:none, "-"].freeze

    # `workers` / WEB_CONCURRENCY: a count, or :auto for one worker per
    # processor this process may use (CPU affinity and a cgroup quota
    # included, as Puma's Concurrent.available_processor_count).
    def self.parse_workers(value)
      return available_processors if value.to_s.strip == "auto"

      Integer(value)
    rescue ArgumentError, TypeError
      raise ArgumentError, "workers must be an Integer or :auto"
    end

    def self.available_processors
      count = Etc.nprocessors
      quota, period = File.read("/sys/fs/cgroup/cpu.max").split.map { |v| Integer(v, exception: false) }
      count = [count, (quota / period.to_f).floor].min if quota && period&.positive?
      [count, 1].max
    rescue SystemCallError
      [count, 1].max
    end

    MEMORY_UNITS = { "" => 1024**2, "k" => 1024, "m" => 1024**2, "g" => 1024**3 }.freeze

    # `worker_memory_limit`: bytes from a number of megabytes or a String
    # with its unit (K/KB/KiB, M…, G…, all binary); nil stays nil (off).
    def self.parse_memory(value)
      return nil if value.nil?

      number, unit =
        if value.is_a?(Numeric)
          [value, ""]
        else
          m = value.to_s.strip.match(/\A(\d+(?:\.\d+)?)\s*(?:([kmg])(?:i?b)?)?\z/i)
          raise ArgumentError, "worker_memory_limit: cannot read #{value.inspect} (try 512 or \"512MB\")" unless m

          [Float(m[1]), m[2].to_s.downcase]
        end
      bytes = (number * MEMORY_UNITS.fetch(unit)).to_i
      raise ArgumentError, "worker_memory_limit must be positive (#{value.inspect})" unless bytes.positive?

      bytes
    end

    def self.random_token
      SecureRandom.hex(16)
    end

    # Where `activate_control_app "auto"` puts its unix socket.
    def self.temp_path
      "#{Dir.tmpdir}/rustpuma-status-#{(Time.now.to_f * 1000).to_i}-#{$$}"
    end

    # Writable because `-s` swaps the writer after the Configuration exists.
    attr_accessor :log_writer
    attr_reader :user_options, :file_options, :default_options,
                :user_dsl, :file_dsl, :default_dsl, :loaded_files
    # nil: look for config/puma/<env>.rb then config/puma.rb; :none or "-":
    # read no file; a path (or an Array of paths, one per `-C`): read those
    # files, in order (each must exist).
    attr_accessor :config_file

    # `-C PATH`, once per flag: every file given is read, in order, as Puma 8
    # does; `-C -` alone means none.
    def add_config_file(path)
      @config_file = [*Array(@config_file).reject { |f| f.is_a?(Symbol) }, path.to_s]
    end

    # +cli_options+ are the highest-precedence values (already in option-key
    # form); +default_options+ sit just above the built-in defaults (the Rack
    # handler puts the host/port rackup chose there). The block, if given,
    # receives the DSLs for the user, file and default layers.
    def initialize(cli_options = {}, config_file: nil, log_writer: LogWriter.stdio, default_options: {})
      @user_options = cli_options
      @file_options = {}
      @default_options = default_options.dup
      @config_file = config_file
      @log_writer = log_writer
      @warned = {}
      @loaded_files = []
      @hook_data = Hash.new { |h, k| h[k] = {} }
      @final = nil

      require_relative "dsl"
      require_relative "plugin"
      @plugins = PluginLoader.new
      @events = Events.new
      @user_dsl = DSL.new(@user_options, self)
      @file_dsl = DSL.new(@file_options, self)
      @default_dsl = DSL.new(@default_options, self)

      configure { |*dsls| yield(*dsls) } if block_given?
    end

    def configure
      yield @user_dsl, @file_dsl, @default_dsl
      @final = nil
      self
    end

    # Reads the config file(s), then fixes every value. Returns the options.
    def load
      @env_options = options_from_env
      config_files.each do |path|
        evaluate_file(@file_dsl, path)
        offer_plugins(@file_dsl, @file_options, path)
      end
      offer_plugins(@user_dsl, @user_options)
      offer_plugins(@default_dsl, @default_options)
      run_mode_blocks
      finalize
      options
    end

    # The merged options. Before #load it is a best-effort view without the
    # file; the Launcher only reads it after #load.
    def options
      @final || merged
    end
    alias final_options options

    def [](key)
      options[key]
    end

    def environment
      options[:environment]
    end

    def rackup
      options[:rackup]
    end

    def rackup_path
      File.expand_path(rackup, options[:directory] || Dir.pwd)
    end

    def app_configured?
      !options[:app].nil? || File.exist?(rackup_path)
    end

    # The Rack application: the DSL `app` if there is one, else config.ru.
    # Loaded on each call on purpose: the Launcher decides when (preload or
    # per worker).
    def app
      found = options[:app]
      return found if found

      path = rackup_path
      raise ConfigError, "Missing rackup file '#{rackup}'" unless File.exist?(path)

      load_bundle_after_prune
      require "rack"
      require "rack/builder"
      result = ::Rack::Builder.parse_file(path)
      # Rack 2 returns [app, options-from-#\-line]; Rack 3 returns the app.
      result.is_a?(Array) ? result.first : result
    end

    # Calls every block registered for +key+ (e.g. :after_booted). A failing
    # hook must not take the server down, so it is logged and skipped.
    # Hooks registered with a key (Puma 6 worker hooks) also receive a Hash
    # that persists between hooks sharing that key.
    def run_hooks(key, *args)
      @log_writer.debug "Running #{key} hooks" # PUMA_DEBUG, as Puma
      hooks = Array(options[key])
      hooks += [->(*a) { @events.fire(key, *a) }] if Events::LIFECYCLE.include?(key) # plugins' subscriptions
      hooks.each do |hook|
        if hook.is_a?(Array)
          block, data_key = hook
          block.call(*args, @hook_data[data_key])
        else
          hook.call(*args)
        end
      rescue StandardError => e
        @log_writer.log "WARNING hook #{key} failed with exception (#{e.class}) #{e.message}"
        @log_writer.debug Array(e.backtrace).join("\n")
      end
    end

    # The plugins `plugin :name` named (PluginLoader) and the lifecycle
    # events they subscribe to through the launcher.
    attr_reader :plugins, :events

    # prune_bundler: the master runs without Bundler; the app (in a worker)
    # gets its bundle here, as Puma's rack_builder does.
    def load_bundle_after_prune
      return unless ENV["PUMA_BUNDLER_PRUNED"] && !defined?(::Bundler)

      require "bundler/setup"
    rescue LoadError
      nil
    end

    # The files #load reads, in order.
    def config_files
      return [] if NO_CONFIG.include?(@config_file)

      files = Array(@config_file).reject { |f| NO_CONFIG.include?(f) }.map(&:to_s)
      return files unless files.empty?
      return [] if @config_file

      env = @user_options[:environment] || @default_options[:environment] ||
            (@env_options || options_from_env)[:environment] || DEFAULTS[:environment]
      dir = @user_options[:directory]
      found = ["config/puma/#{env}.rb", "config/puma.rb"]
              .map { |f| dir ? File.join(dir, f) : f }
              .find { |f| File.file?(f) }
      found ? [found] : []
    end

    # Evaluates one file into +dsl+'s layer. Every failure becomes a
    # ConfigError naming the file and line, which is all the user needs.
    def evaluate_file(dsl, path)
      raise ConfigError, "config file not found: #{path}" unless File.file?(path)

      if @loaded_files.include?(File.expand_path(path))
        raise ConfigError, "#{path}: configuration file loads itself"
      end

      @loaded_files << File.expand_path(path)
      dsl._load_from(path)
    rescue ConfigError
      raise
    rescue SyntaxError => e
      raise ConfigError, syntax_error_message(e, path)
    rescue StandardError, ScriptError => e
      raise ConfigError, "#{location_of(e, path)}: #{e.message} (#{e.class})"
    end

    # As Puma: each plugin a layer named is loaded once that layer is read,
    # and its #config, if any, may then add settings through the DSL.
    def offer_plugins(dsl, layer, path = nil)
      Array(layer[:plugins]).each do |name|
        plugin = @plugins.offer(name)
        plugin&.config(dsl) if plugin.respond_to?(:config)
      end
    rescue UnknownPlugin => e
      raise ConfigError, [path, e.message].compact.join(": ")
    end

    # `plugin :name` (DSL): loads the plugin's file and creates it, once.
    def load_plugin(name)
      @plugins.create(name)
    end

    # Says once per name that a Puma setting is accepted but has no effect.
    def warn_not_supported(name)
      return if @warned[name]

      @warned[name] = true
      @log_writer.log "! rustpuma does not support #{name} yet; ignored"
    end

    private

    def merged
      result = DEFAULTS.merge(@env_options || {}).merge(@default_options)
                       .merge(@file_options).merge(@user_options)
      ACCUMULATED.each do |key|
        result[key] = [@user_options, @file_options, @default_options]
                      .flat_map { |layer| Array(layer[key]) }
      end
      result[:plugins] = result[:plugins].map(&:to_s).uniq
      result[:binds] = Array(result[:binds]).dup
      result
    end

    def workers_so_far
      merged[:workers].to_i
    end

    # `single do … end` / `cluster do … end`, once the worker count is known;
    # as in Puma, such a block may not change that count.
    def run_mode_blocks
      before = workers_so_far
      [@default_dsl, @file_dsl, @user_dsl].each { |dsl| dsl._run_mode_blocks(before.positive?) }
      return if workers_so_far == before

      raise ConfigError, "cannot change the number of workers inside a #{before.positive? ? 'cluster' : 'single'} " \
                         "configuration hook"
    end

    # Values that depend on other values, worked out once everything is known.
    def finalize
      opts = merged
      opts[:directory] ||= Dir.pwd
      opts[:environment] = opts[:environment].to_s
      opts[:quiet] = !opts[:log_requests]
      opts[:state] = opts[:state_path]
      opts[:tag] ||= File.basename(opts[:directory])
      opts[:worker_boot_timeout] ||= opts[:worker_timeout]
      opts[:binds] = DefaultBind.rewrite(opts[:binds], ->(msg) { Kernel.warn(msg) })
      if opts[:preload_app].nil?
        opts[:preload_app] = opts[:workers] > 1 && !opts[:prune_bundler]
      end
      if opts[:min_threads] > opts[:max_threads]
        raise ConfigError, "The minimum (#{opts[:min_threads]}) number of threads must be less " \
                           "than or equal to the max (#{opts[:max_threads]})"
      end

      # Rails and other frameworks read the environment from here.
      ENV["RACK_ENV"] = opts[:environment]
      @log_writer.debug = true if opts[:debug] && @log_writer.respond_to?(:debug=)
      warn_cluster_hooks_in_single_mode(opts)
      @final = opts
    end

    def warn_cluster_hooks_in_single_mode(opts)
      return unless opts[:workers].zero?
      return if opts[:silence_fork_callback_warning]

      CLUSTER_HOOKS.each do |hook|
        next if opts[hook].empty?

        @log_writer.log "Warning: a `#{hook}` block is configured but workers is 0 (single mode), " \
                        "so it will never run"
      end
    end

    # Numbers and names taken from the process environment, as Puma does;
    # a config file or flag still wins over them.
    def options_from_env
      env = {}
      min = ENV["PUMA_MIN_THREADS"] || ENV["MIN_THREADS"]
      max = ENV["PUMA_MAX_THREADS"] || ENV["MAX_THREADS"]
      env[:min_threads] = env_integer("min threads", min) if min
      env[:max_threads] = env_integer("max threads", max) if max
      if (workers = ENV["WEB_CONCURRENCY"]) && !workers.strip.empty?
        env[:workers] = workers.strip == "auto" ? self.class.available_processors : env_integer("WEB_CONCURRENCY", workers)
      end
      if (timeout = ENV["PUMA_PERSISTENT_TIMEOUT"])
        env[:persistent_timeout] = env_integer("PUMA_PERSISTENT_TIMEOUT", timeout)
      end
      name = ENV["APP_ENV"] || ENV["RACK_ENV"] || ENV["RAILS_ENV"]
      env[:environment] = name if name && !name.empty?
      env
    end

    def env_integer(name, value)
      Integer(value)
    rescue ArgumentError
      raise ConfigError, "invalid value for #{name} in the environment: #{value.inspect}"
    end

    # Ruby already starts a SyntaxError message with "file:line: "; keep only
    # that first line (the rest is a source excerpt).
    def syntax_error_message(error, path)
      first = error.message.lines.first.to_s.chomp
      first.start_with?(path) ? first : "#{path}: #{first}"
    end

    # The innermost backtrace line inside a config file we are reading.
    def location_of(error, path)
      loc = Array(error.backtrace_locations).find do |l|
        l.path == path || @loaded_files.include?(File.expand_path(l.path.to_s))
      end
      loc ? "#{loc.path}:#{loc.lineno}" : path
    end
  end
end
