# frozen_string_literal: true

require "time"
require_relative "runner"
require_relative "advice_sampler"

module Rustpuma
  # Single mode: this process binds, loads the app and serves it with one
  # reactor and one thread pool. Prints Puma's boot and shutdown lines.
  #
  # Signals, as in Puma's single mode: INT/TERM stop gracefully (requests in
  # flight finish); a second INT forces the exit; USR2 restarts (through the
  # Launcher); HUP reopens redirected logs.
  #
  # Created by Launcher.
  class Single < Runner
    def initialize(launcher)
      super
      @stopping = false
    end

    def run
      @started_at = Time.now
      log_banner
      app = @launcher.load_app
      @binder = @launcher.bind_listeners
      @stop_reader, @stop_writer = IO.pipe
      trap_signals
      @server = Server.new(app, @options, @binder, @log_writer,
                           thread_hook: ->(name, *args) { @config.run_hooks(name, *args) })
      begin
        @server.run
      rescue ArgumentError, IOError => e # bad TLS files, for example
        @log_writer.error(e.message)
      end
      Process.setproctitle(@launcher.process_title)
      if (idle = @options[:idle_timeout])
        @server.watch_idle(idle, on_idle: lambda {
          log "- Idle timeout reached"
          stop
        })
      end
      StateFile.write(@launcher)
      @control = ControlServer.start(@launcher, @log_writer)
      # Once everything, the control app too, accepts connections.
      log_ready
      Systemd.ready(@log_writer)
      @config.run_hooks(:after_booted)
      @log_writer.debug_loaded_extensions("Loaded Extensions:")

      @stop_reader.read(1) # a stop request (signal or #stop) arrives here
      shutdown
    end

    # Graceful stop; callable from a signal handler or another thread.
    def stop
      @stopping = true
      @stop_writer&.write_nonblock(".", exception: false)
    end

    # Puma's halt: stop now, without waiting for requests in flight; the
    # unix socket files this process created are still removed.
    def halt
      @halting = true
      stop
    end

    # /advice (advice_sampler.rb): this process's request phases and CPU.
    def advice_processes
      return [] unless @server

      [Advice::Sampler.process(Process.pid, Advice::Sampler.process_figures, @server.metrics)].compact
    end

    # Puma 8's single-mode stats: started_at, the server's, the versions.
    def stats
      { started_at: @started_at&.utc&.iso8601 }.merge(@server ? @server.stats : {}).merge(Rustpuma.versions_stats)
    end

    # /metrics: this process's one server, no labels; no workers to restart.
    def metrics_sources
      [[[{}, @server ? @server.metrics : {}]], {}]
    end

    private

    def log_banner
      log_banner_head("single")
      log "*          PID: #{Process.pid}"
    end

    def shutdown
      notify_systemd_stopping
      @control&.stop
      return halt_now if @halting

      log Const::GRACEFUL_STOP
      forcing = -> { log "- Forcing shutdown: requests still running after force_shutdown_after" }
      @server.shutdown(on_force: forcing) do
        # Like Puma, the listeners close first, so new clients are refused
        # at once, then in-flight requests finish. On a restart the next
        # process image takes the sockets over instead.
        @binder.close unless @launcher.restarting?
      end
      return if @launcher.restarting?

      # As Puma: a server ending by SIGTERM says no goodbye.
      after_stopped(goodbye: !@launcher.raise_on_sigterm?)
    end

    def stop_serving_now
      @server.stop
    end

    # A second INT does not wait for the graceful stop.
    def before_stop_signal(sig)
      return unless @stopping && sig == "INT"

      log "- Force stopping"
      exit!(1)
    end
  end
end
