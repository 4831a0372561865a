# frozen_string_literal: true

require "socket"

module Rustpuma
  # systemd's notify protocol (Type=notify services), without the sd_notify
  # gem: one datagram per state change to $NOTIFY_SOCKET. READY=1 once the
  # server serves, RELOADING=1 on a restart, STOPPING=1 on stop, and
  # WATCHDOG=1 every WATCHDOG_USEC/2 when the unit sets WatchdogSec=.
  # Everything here is a no-op when NOTIFY_SOCKET is not set.
  module Systemd
    module_function

    def enabled?
      s = ENV["NOTIFY_SOCKET"]
      !(s.nil? || s.empty?)
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

    # READY=1 with the main pid (a re-exec'd master keeps its pid), then the
    # watchdog pings if asked for.
    def ready(log_writer = nil)
      return unless enabled?

      notify("READY=1\nMAINPID=#{Process.pid}")
      start_watchdog(log_writer)
    end

    def start_watchdog(log_writer = nil)
      return if @watchdog&.alive?

      usec = Integer(ENV.fetch("WATCHDOG_USEC", ""), exception: false)
      return unless usec&.positive?

      pid = ENV["WATCHDOG_PID"]
      return if pid && !pid.empty? && pid.to_i != Process.pid

      interval = usec / 1_000_000.0 / 2
      log_writer&.log "Pinging systemd watchdog every #{interval.round(1)} sec"
      @watchdog = Thread.new do
        Thread.current.name = "rustpuma systemd watchdog"
        loop do
          notify("WATCHDOG=1")
          sleep interval
        end
      end
    end
  end
end
