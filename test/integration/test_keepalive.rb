# frozen_string_literal: true

require "support/integration_helper"

# Persistent connections and pipelining.
class TestKeepAlive < Minitest::Test
  include IntegrationHelper
  server_args "-t", "2:2", "test/fixtures/app.ru"

  def test_two_requests_on_one_connection
    sock = connect
    res1 = RawHTTP.request(sock, build("/echo", method: "POST", body: "one", keep_alive: true))
    assert_equal 200, res1.status
    assert_equal "one", res1.body
    assert_nil res1["connection"]
    res2 = RawHTTP.request(sock, build("/echo", method: "POST", body: "two"))
    assert_equal 200, res2.status
    assert_equal "two", res2.body
    assert_equal "close", res2["connection"]
    assert_closed(sock)
  end

  def test_pipelined_requests_answered_in_order
    sock = connect
    bodies = %w[alpha beta gamma delta]
    reqs = bodies.each_with_index.map do |b, i|
      build("/echo", method: "POST", body: b, keep_alive: i < bodies.size - 1)
    end
    sock.write(reqs.join)
    got = bodies.map do
      res = RawHTTP.read_response(sock)
      assert_equal 200, res.status
      res.body
    end
    assert_equal bodies, got
    assert_closed(sock)
  end

  # The next request arrives while the app still runs the first: epoll
  # reports it then, once (edge-triggered), and the reactor must remember it
  # to read it when the connection comes back, since it skips the read when
  # the socket was drained before.
  def test_request_sent_while_the_previous_one_runs_is_answered
    sock = connect
    id = token
    sock.write(build("/slow?s=0.3&token=#{id}", keep_alive: true))
    server.wait_for_output("slow request started #{id}")
    sock.write(build("/echo", method: "POST", body: "next"))
    assert_equal "slow done", RawHTTP.read_response(sock).body
    res = RawHTTP.read_response(sock, timeout: 5)
    assert_equal "next", res.body
    assert_closed(sock)
  end

  def test_http10_closes_by_default
    sock = connect
    res = RawHTTP.request(sock, "GET /array HTTP/1.0\r\n\r\n")
    assert_equal 200, res.status
    assert_equal "abcdefg", res.body
    assert_nil res["connection"]
    assert_closed(sock)
  end

  def test_http10_keep_alive
    sock = connect
    res = RawHTTP.request(sock, "GET /array HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert_equal 200, res.status
    assert_equal "keep-alive", res["connection"].downcase
    assert_equal "abcdefg", res.body
    res2 = RawHTTP.request(sock, "GET /array HTTP/1.0\r\n\r\n")
    assert_equal 200, res2.status
    assert_equal "abcdefg", res2.body
    assert_closed(sock)
  end

  def test_connection_close_honoured
    sock = connect
    res = RawHTTP.request(sock, "GET /array HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
    assert_equal 200, res.status
    assert_equal "close", res["connection"]
    assert_equal "abcdefg", res.body
    assert_closed(sock)
  end
end

# first_data_timeout / persistent_timeout from a config file (1 s each).
class TestTimeouts < Minitest::Test
  include IntegrationHelper
  server_args "-t", "2:2", "-C", "test/fixtures/timeouts.rb", "test/fixtures/app.ru"

  def now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  def test_idle_keep_alive_connection_closed
    sock = connect
    res = RawHTTP.request(sock, build("/array", keep_alive: true))
    assert_equal 200, res.status
    assert_equal "abcdefg", res.body
    started = now
    assert_closed(sock, 10)
    elapsed = now - started
    assert_operator elapsed, :>=, 0.5
    assert_operator elapsed, :<, 5
  end

  def test_half_sent_request_gets_408
    sock = connect
    sock.write("GET /array HTTP/1.1\r\nHost: example.com\r\n")
    started = now
    res = RawHTTP.read_response(sock)
    refute_nil res
    assert_equal 408, res.status
    assert_closed(sock)
    assert_operator now - started, :>=, 0.5
  end
end

# Slow clients wait in the reactor, not in a pool thread.
class TestSlowClient < Minitest::Test
  include IntegrationHelper
  server_args "-t", "1:1", "test/fixtures/app.ru"

  def test_stalled_body_does_not_hold_the_only_thread
    stalled = connect
    stalled.write("POST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhalf")
    other = http("/array")
    assert_equal 200, other.status
    assert_equal "abcdefg", other.body
    res = RawHTTP.request(stalled, "-done!")
    assert_equal 200, res.status
    assert_equal "half-done!", res.body
  end

  def test_stalled_head_does_not_hold_the_only_thread
    stalled = connect
    stalled.write("GET /array HTTP/1.1\r\nHost: exa")
    other = http("/echo", method: "POST", body: "served")
    assert_equal 200, other.status
    assert_equal "served", other.body
    res = RawHTTP.request(stalled, "mple.com\r\nConnection: close\r\n\r\n")
    assert_equal 200, res.status
    assert_equal "abcdefg", res.body
  end
end
