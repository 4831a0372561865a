# frozen_string_literal: true

# Shared plumbing for the hostile-client tests: a server on faults.ru, a
# well-behaved client that must still be served, and the server's
# descriptor count and RSS (from /proc) to compare against a baseline.
require "support/helper"
require "support/polling"
require "support/slow_reader_socket"

module HostileSupport
  include Polling

  APP = File.join(FIXTURES, "faults.ru")

  def start_server(*args, **opts)
    @srv = ServerProcess.new("-t", "2:2", *args, APP, **opts).start
  end

  def teardown
    @srv&.stop
    super
  end

  # One GET on a fresh connection, bounded; returns the status.
  def well_behaved_get(path = "/", timeout: 10)
    Timeout.timeout(timeout) do
      sock = TCPSocket.new(@srv.host, @srv.port)
      res = RawHTTP.request(sock, "GET #{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout: timeout)
      sock.close
      res.status
    end
  end

  # See SlowReaderSocket: responses to it stay in the server.
  def slow_reader_socket
    SlowReaderSocket.connect(@srv.host, @srv.port)
  end

  # Below the size from which the pool thread writes a body itself, so the
  # response is handed to the reactor to write.
  REACTOR_WRITTEN = 200 * 1024

  def fd_count
    Dir.children("/proc/#{@srv.pid}/fd").size
  end

  def rss_kib
    File.read("/proc/#{@srv.pid}/status")[/^VmRSS:\s+(\d+)/, 1].to_i
  end

  # Polling#wait_until with the message first, as these tests read.
  def eventually(message, timeout: 15, &condition)
    wait_until(timeout, message, &condition)
  end
end
