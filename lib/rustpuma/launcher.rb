# frozen_string_literal: true

require_relative "../rustpuma"
require_relative "thread_status"
require_relative "systemd"

module Rustpuma
  # Runs a loaded Configuration: working directory, output redirection,
  # pidfile, then the runner for the process model. Like Puma's Launcher, it
  # owns what outlives one runner (files, signals) so the runner only serves.
  #
  # Called by the CLI and the Rack handler.
  class Launcher
    attr_reader :config, :options, :log_writer, :runner
    # Where the command started: a phased restart's workers start there.
    attr_reader :restart_dir

    # What plugins subscribe to: launcher.events.after_booted { … }.
    def events
      @config.events
    end

    def binder
      @runner&.binder
    end

    def initialize(config, log_writer: LogWriter.stdio)
      @config = config
      @options = config.options
      @log_writer = log_writer
      @log_writer.debug = true if @options[:debug]
      @log_writer.formatter = @options[:log_formatter] if @options[:log_formatter]
      @log_writer.custom_logger = @options[:custom_logger] if @options[:custom_logger]
      # What a hot restart re-executes: the same command, from the same place.
      @restart_dir = Dir.pwd
      @restart_argv = restart_command
      @restarting = false
    end

    def run
      prune_bundler if @options[:prune_bundler] && @options[:workers].to_i.positive? && !@options[:preload_app]
      # A hot restart starts the next image in this environment, so values
      # the app sets in ENV do not leak into it (as Puma's launcher does).
      @restart_env = restart_env
      Dir.chdir(@options[:directory]) if @options[:directory]
      write_pid
      ThreadStatus.trap(@log_writer)
      Systemd.announce(@log_writer)
      start_plugins
      @runner = select_runner
      @runner.run
      exec_restart if @restarting
      # Puma 8's raise_exception_on_sigterm (default true): a TERM-stopped
      # server ends by SIGTERM (status 143 in a shell), once the graceful
      # stop is over; Ruby runs at_exit handlers and the ensure below first.
      raise SignalException, "SIGTERM" if raise_on_sigterm?
    ensure
      delete_pid unless @restarting
    end

    # Called by the runners' TERM handlers.
    def sigterm!
      @sigterm = true
    end

    # True once TERM stopped the server and the process must end by it.
    def raise_on_sigterm?
      @sigterm && @options.fetch(:raise_exception_on_sigterm, true) && !@restarting ? true : false
    end

    # Graceful stop, for embedders (the Rack handler) and signal handlers.
    def stop
      @runner&.stop
    end

    # Hot restart (USR2, tmp/restart.txt): finish in-flight requests, then
    # re-exec this command with the listening sockets inherited, so clients
    # that connect meanwhile wait in the backlog instead of being refused.
    def restart
      @restarting = true
      @runner&.stop
    end

    def restarting?
      @restarting
    end

    # The configured listeners, bound (or inherited / socket-activated) by a
    # Binder; a bind that fails is fatal, as in Puma.
    # `log_writer`: where the "Listening on" lines go (cluster: pid-prefixed).
    def bind_listeners(log_writer = @log_writer)
      binder = Binder.new(log_writer, store: @options[:store], bind_to_activated: @options[:bind_to_activated_sockets])
      binder.parse(@options[:binds])
    rescue SystemCallError, ArgumentError => e
      log_writer.error(e.message)
    end

    # SIGHUP, as in Puma: with stdout_redirect, reopen the log files (the
    # block does the same for workers); without, stop gracefully.
    def hup
      if @options[:redirect_stdout] || @options[:redirect_stderr]
        redirect_io
        yield if block_given?
      else
        stop
      end
    end

    # Puma's process titles, with the `tag` appended: by default the serving
    # (or master) process's `rustpuma 0.1.0 (tcp://0.0.0.0:9292) [tag]`.
    def process_title(base = "rustpuma #{VERSION} (#{Array(@options[:binds]).join(',')})")
      tag = @options[:tag].to_s
      tag.empty? ? base : "#{base} [#{tag}]"
    end

    def stats
      @runner ? @runner.stats : {}
    end

    # The app, loaded by the process that serves it (or the master, with
    # preload_app). A failure is announced on one line tools can grep, as
    # Puma's, then raised (Ruby prints the backtrace; exit 1).
    def load_app(log_writer = @log_writer)
      @config.app
    rescue Exception => e # rubocop:disable Lint/RescueException -- any boot failure, announced then re-raised
      log_writer.log "! Unable to load application: #{e.class}: #{e.message}"
      raise
    end

    # `stdout_redirect`: called by the runner once "Use Ctrl-C to stop" is
    # out (the banner stays on the terminal, as Puma), and again on SIGHUP
    # so logrotate can move the files. Each file starts with a startup line.
    def redirect_io
      append = @options[:redirect_append]
      mode = append ? "a" : "w"
      [[$stdout, @options[:redirect_stdout], "STDOUT"], [$stderr, @options[:redirect_stderr], "STDERR"]].each do |io, path, name|
        next unless path
        raise ConfigError, "Cannot redirect #{name} to #{path}: no such directory" unless Dir.exist?(File.dirname(path))

        io.reopen(path, mode)
        io.sync = true
        io.puts "=== rustpuma startup: #{Time.now} ==="
      end
      # A reopen must not truncate what was written so far.
      @options[:redirect_append] = true if @options[:redirect_stdout] || @options[:redirect_stderr]
      return unless @options.fetch(:mutate_stdout_and_stderr_to_sync_on_write, true)

      $stdout.sync = true
      $stderr.sync = true
    end

    # Puma's warning for Ruby's M:N thread scheduler.
    def warn_ruby_mn_threads(log_writer = @log_writer)
      return unless ENV.key?("RUBY_MN_THREADS")

      log_writer.log "! WARNING: RUBY_MN_THREADS=#{ENV['RUBY_MN_THREADS']} is set"
      log_writer.log "! Ruby's M:N thread scheduler is known to slow Puma-style servers down (rustpuma included)."
      log_writer.log "! Consider unsetting it; see https://github.com/puma/puma/issues/3720"
    end

    private

    def restart_command
      if (cmd = @options[:restart_cmd])
        cmd.split + ARGV
      else
        [Gem.ruby, "-I", File.expand_path("..", __dir__), File.expand_path($PROGRAM_NAME), *ARGV]
      end
    end

    def exec_restart
      @config.run_hooks(:before_restart)
      ENV.replace(@restart_env)
      env, redirects = @runner.binder.inherit_env_and_redirects
      @log_writer.log "* Restarting..."
      Dir.chdir(@restart_dir)
      Native.flush_log
      Kernel.exec(env, *@restart_argv, redirects)
    end

    # The environment before the app loads; under Bundler, the one Bundler
    # found (plus -rbundler/setup, so the next image loads the Gemfile).
    def restart_env
      return ENV.to_h unless defined?(::Bundler::ORIGINAL_ENV)

      env = ::Bundler::ORIGINAL_ENV.dup
      setup = "-rbundler/setup"
      env["RUBYOPT"] = [env["RUBYOPT"], setup].compact.join(" ").lstrip unless env["RUBYOPT"].to_s.include?(setup)
      env
    end

    # Puma's plugin API (lib/rustpuma/plugin.rb): each plugin's #start, then
    # the background threads they asked for.
    def prune_bundler
      require_relative "bundle_pruner"
      BundlePruner.new(ARGV, @options[:extra_runtime_dependencies], @log_writer).prune
    end

    def start_plugins
      @config.plugins.fire_starts(self)
      Plugins.fire_background
    end

    def select_runner
      require_relative "control_app" # Rustpuma.stats, the control server
      Rustpuma.launcher = self
      if @options[:workers].to_i.positive?
        require_relative "cluster"
        Cluster.new(self)
      else
        require_relative "single"
        Single.new(self)
      end
    end

    def write_pid
      return unless (path = @options[:pidfile])

      File.write(path, "#{Process.pid}\n")
      @pid_written = path
    end

    def delete_pid
      return unless @pid_written

      File.unlink(@pid_written) if File.exist?(@pid_written) && File.read(@pid_written).to_i == Process.pid
    rescue SystemCallError
      nil
    end
  end
end
