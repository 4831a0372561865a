# frozen_string_literal: true

module Rustpuma
  # What single and cluster mode share, as Puma's Runner is the base of its
  # Single and Cluster: the banner's first lines, the ready line and what
  # follows it, the stop signals, and the steps that end a run (systemd,
  # after_stopped hooks, the goodbye lines). A subclass supplies #run, #stop
  # and #halt, and fills in the hooks below where its mode differs.
  #
  # Subclassed by Single and Cluster; Launcher#select_runner creates one.
  class Runner
    attr_reader :binder, :log_writer

    def initialize(launcher, log_writer = launcher.log_writer)
      @launcher = launcher
      @config = launcher.config
      @options = launcher.options
      @log_writer = log_writer
    end

    private

    def log(str)
      @log_writer.log(str)
    end

    # The banner's lines common to both modes; each mode adds its own.
    def log_banner_head(mode)
      log "Rustpuma starting in #{mode} mode..."
      log "* Rustpuma version: #{VERSION} (ruby #{RUBY_VERSION}-p#{RUBY_PATCHLEVEL}) (Puma #{PUMA_COMPAT_VERSION} compatible)"
      log "*  Min threads: #{@options[:min_threads]}"
      log "*  Max threads: #{@options[:max_threads]}"
      log "*  Environment: #{@config.environment}"
    end

    # Tools wait for "Use Ctrl-C to stop"; the warnings come after it, then
    # stdout_redirect takes over (as Puma: the banner stays on the terminal).
    def log_ready
      log "Use Ctrl-C to stop"
      @launcher.warn_ruby_mn_threads(@log_writer)
      boot_warnings
      @launcher.redirect_io
    end

    # The mode's own warnings after the ready line.
    def boot_warnings; end

    # INT/TERM stop gracefully (TERM also decides how the process ends, see
    # Launcher#raise_on_sigterm?), USR2 restarts, HUP reopens redirected
    # logs. A mode adds its own signals after calling this.
    def trap_signals
      %w[INT TERM].each do |sig|
        Signal.trap(sig) do
          before_stop_signal(sig)
          @launcher.sigterm! if sig == "TERM"
          stop
        end
      end
      Signal.trap("USR2") { @launcher.restart }
      Signal.trap("HUP") { hup }
    end

    # Runs in the INT/TERM trap before the graceful stop starts.
    def before_stop_signal(_sig); end

    def hup
      @launcher.hup
    end

    def notify_systemd_stopping
      Systemd.notify(@launcher.restarting? ? "RELOADING=1" : "STOPPING=1")
    end

    # Puma's halt: no waiting for requests in flight; the unix socket files
    # this process created are still removed.
    def halt_now
      log "* Stopping immediately!"
      stop_serving_now
      @binder.close
      log_goodbye
    end

    # What #halt_now stops before the listeners close.
    def stop_serving_now; end

    # Once nothing is served any more, unless a restarted image takes over.
    def after_stopped(goodbye: true)
      @config.run_hooks(:after_stopped)
      log_goodbye if goodbye
    end

    def log_goodbye
      log "=== rustpuma shutdown: #{Time.now} ==="
      log Const::GOODBYE
    end
  end
end
