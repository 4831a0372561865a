# frozen_string_literal: true

require "time"

module Rustpuma
  # Single mode: this process binds, loads the app and serves it with one
  # reactor and one thread pool. Prints Puma's boot and shutdown lines.
  #
  # Signals, as in Puma's single mode: INT/TERM stop gracefully (requests in
  # flight finish); a second INT forces the exit; USR2 restarts (through the
  # Launcher); HUP reopens redirected logs.
  #
  # Created by Launcher.
  class Single
    attr_reader :binder

    def initialize(launcher)
      @launcher = launcher
      @config = launcher.config
      @options = launcher.options
      @log_writer = launcher.log_writer
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
          @log_writer.log "- Idle timeout reached"
          stop
        })
      end
      StateFile.write(@launcher)
      @control = ControlServer.start(@launcher, @log_writer)
      # Printed once everything, the control app too, accepts connections:
      # tools wait for this line.
      @log_writer.log "Use Ctrl-C to stop"
      @launcher.warn_ruby_mn_threads
      # As Puma: the banner stays on the terminal; the files get the rest.
      @launcher.redirect_io
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

    # Puma 8's single-mode stats: started_at, the server's, the versions.
    def stats
      { started_at: @started_at&.utc&.iso8601 }.merge(@server ? @server.stats : {}).merge(Rustpuma.versions_stats)
    end

    private

    def log_banner
      @log_writer.log "Rustpuma starting in single mode..."
      @log_writer.log "* Rustpuma version: #{VERSION} (ruby #{RUBY_VERSION}-p#{RUBY_PATCHLEVEL}) (Puma #{PUMA_COMPAT_VERSION} compatible)"
      @log_writer.log "*  Min threads: #{@options[:min_threads]}"
      @log_writer.log "*  Max threads: #{@options[:max_threads]}"
      @log_writer.log "*  Environment: #{@config.environment}"
      @log_writer.log "*          PID: #{Process.pid}"
    end

    def shutdown
      Systemd.notify(@launcher.restarting? ? "RELOADING=1" : "STOPPING=1")
      @control&.stop
      return halt_now if @halting

      @log_writer.log Const::GRACEFUL_STOP
      @server.stop
      @server.dump_threads("Shutdown initiated") if @options[:shutdown_debug] == true
      # Like Puma, the listeners close first, so new clients are refused at
      # once, then in-flight requests finish. On a restart the next process
      # image takes the sockets over instead.
      @binder.close unless @launcher.restarting?
      unless @server.join(force_shutdown_after)
        @server.dump_threads("Shutdown timeout exceeded") if @options[:shutdown_debug] == :on_force
        @log_writer.log "- Forcing shutdown: requests still running after force_shutdown_after"
        @server.kill
      end
      return if @launcher.restarting?

      @config.run_hooks(:after_stopped)
      # As Puma: a server ending by SIGTERM says no goodbye.
      log_goodbye unless @launcher.raise_on_sigterm?
    end

    def halt_now
      @log_writer.log "* Stopping immediately!"
      @server.stop
      @binder.close
      log_goodbye
    end

    def log_goodbye
      @log_writer.log "=== rustpuma shutdown: #{Time.now} ==="
      @log_writer.log Const::GOODBYE
    end

    # nil (wait for every request) unless `force_shutdown_after` says.
    def force_shutdown_after
      limit = @options[:force_shutdown_after]
      limit.nil? || limit.negative? ? nil : limit
    end

    def trap_signals
      %w[INT TERM].each do |sig|
        Signal.trap(sig) do
          if @stopping && sig == "INT"
            @log_writer.log "- Force stopping"
            exit!(1)
          end
          @launcher.sigterm! if sig == "TERM"
          stop
        end
      end
      Signal.trap("USR2") { @launcher.restart }
      Signal.trap("HUP") { @launcher.hup }
    end
  end
end
