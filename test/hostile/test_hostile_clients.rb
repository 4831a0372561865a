# frozen_string_literal: true

require "support/hostile_support"

# Hostile clients, one kind per test: while they do their worst a
# well-behaved client is still served, and once they are gone the server's
# descriptors and memory come back to where they were.
class TestHostileClients < Minitest::Test
  include HostileSupport

  # Leeway for "back to baseline": the logger thread, a pool thread's
  # arena, allocator caching. A leak per hostile connection would exceed it.
  FD_SLACK = 3
  RSS_SLACK_KIB = 64 * 1024

  def baseline
    assert_equal 200, well_behaved_get
    [fd_count, rss_kib]
  end

  def assert_back_to(base)
    fds, rss = base
    eventually("descriptors back near #{fds} (now #{fd_count})") { fd_count <= fds + FD_SLACK }
    assert_operator rss_kib, :<, rss + RSS_SLACK_KIB, "RSS back near baseline"
  end

  def test_slowloris
    start_server
    base = baseline
    socks = Array.new(50) do
      s = TCPSocket.new(@srv.host, @srv.port)
      s.write("GET / HTTP/1.1\r\nHost: x\r\n")
      s
    end
    3.times do |i|
      socks.each { |s| s.write("X-Drip-#{i}: y\r\n") }
      assert_equal 200, well_behaved_get
    end
    eventually("the server holds the slow heads") { fd_count >= base[0] + 50 }
    socks.each(&:close)
    assert_back_to(base)
  end

  def test_slow_upload
    start_server
    base = baseline
    socks = Array.new(20) do
      s = TCPSocket.new(@srv.host, @srv.port)
      s.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: #{1024 * 1024}\r\n\r\n")
      s.write("x" * 200_000) # past the in-memory limit: spilled to a file
      s
    end
    assert_equal 200, well_behaved_get
    socks.each(&:close)
    assert_back_to(base)
  end

  def test_abort_mid_body
    start_server
    base = baseline
    5.times do
      socks = Array.new(20) do
        s = TCPSocket.new(@srv.host, @srv.port)
        s.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: #{2 * 1024 * 1024}\r\n\r\n")
        s.write("y" * 300_000)
        s
      end
      assert_equal 200, well_behaved_get
      reset_all(socks)
    end
    assert_equal 200, well_behaved_get
    assert_back_to(base)
  end

  # Each connection, already accepted and idle, gets part of a spilled body
  # and at once a reset: epoll may report both in one event, which it does
  # not repeat, so the reactor must read past the bytes to the reset. A
  # connection it missed held its socket and temporary file until
  # first_data_timeout (30 s, beyond the wait of assert_back_to).
  def test_reset_right_behind_a_spilled_body
    start_server
    base = baseline
    3.times do
      socks = Array.new(20) { TCPSocket.new(@srv.host, @srv.port) }
      eventually("the server accepted them") { fd_count >= base[0] + socks.size }
      socks.each { |s| s.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: #{2 * 1024 * 1024}\r\n\r\n#{"z" * 150_000}") }
      reset_all(socks)
    end
    assert_equal 200, well_behaved_get
    assert_back_to(base)
  end

  # Closes each socket with a reset (SO_LINGER 0), not a FIN.
  def reset_all(socks)
    socks.each do |s|
      s.setsockopt(Socket::SOL_SOCKET, Socket::SO_LINGER, [1, 0].pack("ii"))
      s.close
    end
  end

  def test_pipelined_garbage
    start_server
    base = baseline
    20.times do
      sock = TCPSocket.new(@srv.host, @srv.port)
      sock.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01garbage \xff\xfe\r\n\r\nGET / HTTP/1.1\r\n\r\n")
      first = RawHTTP.read_response(sock, timeout: 10)
      assert_equal 200, first.status
      second = RawHTTP.read_response(sock, timeout: 10)
      assert_equal 400, second.status
      assert_nil Timeout.timeout(10) { sock.read(1) }, "closed after the 400"
      sock.close
    end
    assert_equal 200, well_behaved_get
    assert_back_to(base)
  end

  def test_connection_flood_over_the_descriptor_limit
    start_server(spawn_options: { rlimit_nofile: [96, 96] })
    base = baseline
    flood = []
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    begin
      200.times { flood << TCPSocket.new(@srv.host, @srv.port) }
    rescue SystemCallError
      nil # our own limit or the backlog: enough connections either way
    end
    @srv.wait_for_output(/! accept failed: Too many open files/, 15)
    sleep 2.5 # let the reactor retry accept(2) for a while (it backs off 100 ms)
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    lines = @srv.output.scan("! accept failed").size
    assert_operator lines, :<=, elapsed.ceil + 1, "at most one accept error line a second"
    flood.each(&:close)
    assert_equal 200, well_behaved_get(timeout: 20)
    refute @srv.exited?
    assert_back_to(base)
  end
end
