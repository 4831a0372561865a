# frozen_string_literal: true

require "socket"

module Rustpuma
  # systemd's notify protocol (Type=notify services), without the sd_notify
  # gem, sending what Puma's systemd plugin sends, each state in a datagram
  # of its own to $NOTIFY_SOCKET: READY=1 once the server serves (and after
  # a phased restart), RELOADING=1 on a restart, STOPPING=1 on stop,
  # STATUS=<Puma's status text> every second, and WATCHDOG=1 every
  # WATCHDOG_USEC/2 when the unit sets WatchdogSec=.
  # Everything here is a no-op when NOTIFY_SOCKET is not set, or when
  # PUMA_SKIP_SYSTEMD is (as in Puma).
  module Systemd
    STATUS_INTERVAL = 1.0

    module_function

    def enabled?
      s = ENV["NOTIFY_SOCKET"]
      !(s.nil? || s.empty?) && !ENV.key?("PUMA_SKIP_SYSTEMD")
    end

    def notify(state)
      return false unless enabled?

      path = ENV["NOTIFY_SOCKET"]
      path = "\0#{path[1..]}" if path.start_with?("@") # abstract namespace
      sock = Socket.new(:UNIX, :DGRAM, 0)
      sock.connect(Socket.sockaddr_un(path))
      sock.write(state)
      true
    rescue SystemCallError, IOError, ArgumentError
      false
    ensure
      sock&.close
    end

    # At launch, Puma's line saying the integration is on.
    def announce(log_writer)
      log_writer.log "* Enabling systemd notification integration" if enabled?
    end

    # READY=1, then the watchdog pings and status reports if not running yet
    # (after a phased restart they are).
    def ready(log_writer = nil)
      return unless enabled?

      notify("READY=1")
      start_watchdog(log_writer)
      start_status(log_writer)
    end

    def start_watchdog(log_writer = nil)
      return if @watchdog&.alive?

      usec = Integer(ENV.fetch("WATCHDOG_USEC", ""), exception: false)
      return unless usec&.positive?

      pid = ENV["WATCHDOG_PID"]
      return if pid && !pid.empty? && pid.to_i != Process.pid

      interval = usec / 1_000_000.0 / 2
      log_writer&.log "Pinging systemd watchdog every #{interval.round(1)} sec"
      @watchdog = background("rustpuma systemd watchdog", interval) { notify("WATCHDOG=1") }
    end

    def start_status(log_writer = nil)
      return if @status&.alive?

      log_writer&.log "Sending status to systemd every #{STATUS_INTERVAL.round(1)} sec"
      @status = background("rustpuma systemd status", STATUS_INTERVAL) { notify("STATUS=#{status}") }
    end

    # Puma's status text, built from the same stats as the control app's.
    def status(stats = Rustpuma.stats_hash)
      if stats.key?(:workers)
        workers = Array(stats[:worker_status]).map { |w| thread_summary(w[:last_status] || {}) }.join(",")
        "Puma #{PUMA_COMPAT_VERSION}: cluster: #{stats[:booted_workers]}/#{stats[:workers]}, worker_status: [#{workers}]"
      else
        "Puma #{PUMA_COMPAT_VERSION}: worker: #{thread_summary(stats)}"
      end
    end

    def thread_summary(stats)
      "{ #{stats[:running]}/#{stats[:max_threads]} threads, #{stats[:pool_capacity]} available, " \
        "#{stats[:backlog]} backlog }"
    end

    def background(name, interval)
      Thread.new do
        Thread.current.name = name
        loop do
          sleep interval
          yield
        end
      end
    end
  end
end
