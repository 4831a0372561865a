# frozen_string_literal: true

require "support/integration_helper"
require "tmpdir"

# Signals and CLI flags: each test owns its server process.
class TestLifecycle < Minitest::Test
  include IntegrationHelper

  def start(*args, **opts)
    @proc = ServerProcess.new(*args, **opts).start
  end

  def teardown
    super
    @proc&.stop
  end

  def refused?(port)
    TCPSocket.new("127.0.0.1", port).close
    false
  rescue Errno::ECONNREFUSED
    true
  end

  # Sends `sig` while /slow is running in the app; returns the reader thread.
  def signal_during_slow_request(srv, sig, seconds)
    sock = connect(srv)
    sock.write(build("/slow?s=#{seconds}&token=#{token}"))
    srv.wait_for_output("slow request started #{token}")
    reader = Thread.new { RawHTTP.read_response(sock) }
    reader.report_on_exception = false
    srv.signal(sig)
    reader
  end

  %w[INT TERM].each do |sig|
    define_method("test_#{sig.downcase}_finishes_in_flight_request_then_exits") do
      srv = start("-t", "2:2", "test/fixtures/app.ru")
      reader = signal_during_slow_request(srv, sig, 1)
      res = reader.value
      refute_nil res
      assert_equal 200, res.status
      assert_equal "slow done", res.body
      status = srv.wait
      assert_clean_stop(status, sig)
      assert_includes srv.output, "- Gracefully stopping, waiting for requests to finish"
      # As Puma: a server ending by SIGTERM says no goodbye.
      assert_equal sig == "INT", srv.output.include?("- Goodbye!"), srv.output
    end

    # Like Puma's graceful_shutdown: the listeners close first, then the
    # server waits for the requests in flight.
    define_method("test_#{sig.downcase}_stops_accepting_while_request_in_flight") do
      srv = start("-t", "2:2", "test/fixtures/app.ru")
      port = srv.port
      reader = signal_during_slow_request(srv, sig, 3)
      # The app sleeps 3 s; the listener must be gone well before that.
      # Polled gently: a flood of connects would fill the backlog and block.
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 1.5
      refused = false
      until refused || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        refused = refused?(port)
        sleep 0.05 unless refused # polling interval
      end
      refused_in_time = refused && Process.clock_gettime(Process::CLOCK_MONOTONIC) <= deadline + 0.5
      assert refused_in_time, "new connections still accepted 1.5 s after #{sig} while a request was in flight"
      assert_equal "slow done", reader.value.body
      assert_clean_stop(srv.wait, sig)
    end
  end

  def test_threads_and_environment_flags
    srv = start("-t", "3:3", "-e", "production", "test/fixtures/app.ru")
    assert_match(/Min threads: 3\b/, srv.output)
    assert_match(/Max threads: 3\b/, srv.output)
    assert_match(/Environment: production\b/, srv.output)
    res = http("/raise", srv: srv)
    assert_equal 500, res.status
    assert_equal "An unhandled lowlevel error occurred. The application logs may have details.\n", res.body
    env = json(http("/env", srv: srv))
    assert_equal true, env["rack.multithread"]
  end

  def test_port_flag
    port = ServerProcess.free_port
    srv = start("-p", port.to_s, "test/fixtures/app.ru", bind: nil)
    assert_equal port, srv.port
    # Puma 8's default host: [::] where IPv6 is configured, else 0.0.0.0.
    assert_match(%r{Listening on http://(\[::\]|0\.0\.0\.0):#{port}\b}, srv.output)
    assert_equal "abcdefg", RawHTTP.get("127.0.0.1", port, "/array").body
  end

  def test_bind_flag
    port = ServerProcess.free_port
    srv = start("test/fixtures/app.ru", bind: "tcp://127.0.0.1:#{port}")
    assert_match(%r{Listening on http://127\.0\.0\.1:#{port}\b}, srv.output)
    assert_equal "abcdefg", RawHTTP.get("127.0.0.1", port, "/array").body
  end

  def test_log_requests_flag
    srv = start("-v", "test/fixtures/app.ru")
    assert_equal 200, http("/array?x=1", srv: srv).status
    srv.wait_for_output(%r{"GET /array\?x=1 HTTP/1\.1" 200})
  end

  def test_quiet_flag
    srv = start("-v", "-q", "test/fixtures/app.ru")
    assert_equal 200, http("/array?quiet=1", srv: srv).status
    assert_clean_stop(srv.stop)
    refute_includes srv.output, "/array?quiet=1"
  end
end

# Other listener kinds.
class TestBinds < Minitest::Test
  include IntegrationHelper

  def teardown
    super
    @proc&.stop
  end

  def test_ipv6_bind
    begin
      TCPServer.new("::1", 0).close
    rescue SystemCallError
      skip "::1 is not available here"
    end
    @proc = srv = ServerProcess.new("-t", "2:2", "test/fixtures/app.ru", bind: "tcp://[::1]:0").start
    assert_match(%r{Listening on http://\[::1\]:\d+}, srv.output)
    sock = TCPSocket.new("::1", srv.port)
    (@sockets ||= []) << sock
    res = RawHTTP.request(sock, build("/env", host: "[::1]:#{srv.port}"))
    assert_equal 200, res.status
    env = json(res)
    assert_equal "::1", env["REMOTE_ADDR"]
    assert_equal "[::1]", env["SERVER_NAME"]
    assert_equal srv.port.to_s, env["SERVER_PORT"]
  end

  def test_unix_bind
    path = File.join(Dir.tmpdir, "rustpuma-test-#{Process.pid}-#{token}.sock")
    @proc = srv = ServerProcess.new("-t", "2:2", "test/fixtures/app.ru", bind: "unix://#{path}").start
    assert_equal path, srv.unix_path
    sock = UNIXSocket.new(path)
    (@sockets ||= []) << sock
    res = RawHTTP.request(sock, build("/env"))
    assert_equal 200, res.status
    env = json(res)
    assert_equal "127.0.0.1", env["REMOTE_ADDR"]
    assert_equal "example.com", env["SERVER_NAME"]
  ensure
    @proc&.stop
    File.delete(path) if path && File.exist?(path)
  end
end
