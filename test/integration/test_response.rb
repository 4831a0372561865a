# frozen_string_literal: true

require "support/integration_helper"

# How responses go out: header hygiene, framing, bodies of every kind.
class TestResponse < Minitest::Test
  include IntegrationHelper
  server_args "-t", "4:4", "test/fixtures/app.ru"

  def head_lines(res)
    res.raw_head.split("\r\n").drop(1)
  end

  def test_illegal_header_names_and_values_dropped
    res = http("/inject")
    assert_equal 200, res.status
    assert_equal "ok", res.body
    names = res.headers.map { |k, _| k.downcase }
    refute_includes names, "x-injected"
    refute_includes names, "x-injected2"
    refute_includes names, "x-injected3"
    # Like Puma: the value is split on "\n"; the line with the CR is dropped.
    assert_equal ["x-injected: yes"], res.header_lines("x-crlf")
    assert_nil res["x-cr"]
    assert_nil res["x-nul"]
    assert_nil res["x-ctl"]
    assert_nil res["x bad"]
    assert_equal "a\tb", res["x-tab"]
    assert_equal "ok", res["x-good"]
    head_lines(res).each { |l| refute_match(/[\x00-\x08\x0a-\x1f]/, l) }
  end

  def test_rack_headers_not_sent
    res = http("/rack_header")
    assert_equal 200, res.status
    assert_equal "1", res["x-ok"]
    assert_empty(res.headers.select { |k, _| k.downcase.start_with?("rack.") })
  end

  def test_array_and_newline_values_become_several_lines
    res = http("/multi")
    assert_equal 200, res.status
    assert_equal ["a=1", "b=2"], res.header_lines("set-cookie")
    assert_equal %w[one two], res.header_lines("x-nl")
  end

  def test_content_length_for_array_body
    res = http("/array")
    assert_equal 200, res.status
    assert_equal "7", res["content-length"]
    assert_nil res["transfer-encoding"]
    assert_equal "abcdefg", res.body
  end

  def test_chunked_for_unknown_length_http11
    sock = connect
    sock.write(build("/each"))
    raw = read_to_eof(sock)
    head, body = raw.split("\r\n\r\n", 2)
    assert_match(/\AHTTP\/1.1 200 OK\r\n/, head)
    assert_match(/^transfer-encoding: chunked\r?$/i, head)
    refute_match(/^content-length:/i, head)
    assert_equal "2\r\nab\r\n3\r\ncde\r\n2\r\nfg\r\n0\r\n\r\n", body
  end

  def test_http10_unknown_length_not_chunked_and_closes
    sock = connect
    sock.write(build("/each", version: "1.0", keep_alive: true, headers: {}))
    raw = read_to_eof(sock)
    head, body = raw.split("\r\n\r\n", 2)
    assert_match(/\AHTTP\/1.0 200 OK\r\n/, head)
    refute_match(/^transfer-encoding:/i, head)
    refute_match(/^content-length:/i, head)
    refute_match(/^connection: keep-alive/i, head)
    assert_equal "abcdefg", body
  end

  def test_head_has_headers_but_no_body
    sock = connect
    res = RawHTTP.request(sock, build("/array", method: "HEAD", keep_alive: true), head: true)
    assert_equal 200, res.status
    assert_equal "7", res["content-length"]
    assert_equal "text/plain", res["content-type"]
    # No body bytes: the next response on the connection starts right away.
    res2 = RawHTTP.request(sock, build("/array"))
    assert_equal 200, res2.status
    assert_equal "abcdefg", res2.body
  end

  [102, 204, 304].each do |code|
    define_method("test_no_body_for_#{code}") do
      sock = connect
      res = RawHTTP.request(sock, build("/status?code=#{code}", keep_alive: true))
      assert_equal code, res.status
      assert_equal code.to_s, res["x-status"]
      assert_nil res["transfer-encoding"]
      res2 = RawHTTP.request(sock, build("/array"))
      assert_equal 200, res2.status
      assert_equal "abcdefg", res2.body
    end
  end

  def test_body_close_called
    res = http("/close_ok?token=#{token}")
    assert_equal 200, res.status
    assert_equal "onetwo", res.body
    assert_equal "closed", http("/flag?key=closed:#{token}").body
  end

  def test_body_close_called_when_body_raises
    sock = connect
    sock.write(build("/close_raise?token=#{token}"))
    raw = read_to_eof(sock)
    assert_match(/\AHTTP\/1.1 200 OK\r\n/, raw)
    refute_match(/two/, raw)
    refute raw.end_with?("0\r\n\r\n"), "an aborted body must not end with the chunked terminator"
    assert_equal "closed", http("/flag?key=closed:#{token}").body
    assert_equal "abcdefg", http("/array").body
  end

  def test_to_path_body_sent_from_file
    expected = File.binread(File.join(FIXTURES, "static.bin"))
    res = http("/file")
    assert_equal 200, res.status
    assert_equal expected.bytesize.to_s, res["content-length"]
    assert_nil res["transfer-encoding"]
    assert_equal expected, res.body.b
  end

  def test_enumerator_body_streams
    id = token
    sock = connect
    sock.write(build("/stream?id=#{id}"))
    head = Timeout.timeout(5) { sock.gets("\r\n\r\n") }
    assert_match(/\AHTTP\/1.1 200 OK\r\n/, head)
    assert_match(/^transfer-encoding: chunked\r?$/i, head)
    assert_equal "6\r\nfirst\n\r\n", Timeout.timeout(5) { sock.read(11) }
    # The app is now blocked until released: we got the first chunk early.
    assert_equal "released", http("/release?id=#{id}").body
    assert_equal "7\r\nsecond\n\r\n0\r\n\r\n", read_to_eof(sock)
  end

  def test_callable_body_gets_a_stream
    sock = connect
    sock.write(build("/callable"))
    raw = read_to_eof(sock)
    head, body = raw.split("\r\n\r\n", 2)
    assert_match(/\AHTTP\/1.1 200 OK\r\n/, head)
    assert_match(/^content-type: text\/plain\r?$/i, head)
    assert_equal "hello callable", body
  end

  def test_partial_hijack
    sock = connect
    sock.write(build("/partial_hijack"))
    raw = read_to_eof(sock)
    head, body = raw.split("\r\n\r\n", 2)
    assert_match(/\AHTTP\/1.1 200 OK\r\n/, head)
    assert_match(/^content-type: text\/plain\r?$/i, head)
    refute_match(/rack\.hijack/i, head)
    refute_match(/^transfer-encoding/i, head)
    assert_equal "partial hijacked", body
  end

  def test_full_hijack
    sock = connect
    sock.write(build("/full_hijack"))
    assert_equal "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nX-Hijack-Io: true\r\n\r\nfull hijacked", read_to_eof(sock)
  end

  # A rack.hijack kept past its request (its env gone, a GC since) fails
  # cleanly with an IOError.
  def test_hijack_called_after_the_request_ended
    assert_equal "kept", http("/keep_hijack").body
    assert_equal "IOError: request already finished", http("/late_hijack").body
  end

  def test_after_reply_runs_after_the_write
    res = http("/after_reply?token=#{token}")
    # The callback blocks until released: had it run before the write, this
    # response would never have arrived.
    assert_equal 200, res.status
    assert_equal "reply", res.body
    assert_equal "released", http("/release?id=#{token}").body
    assert_equal "ran", http("/flag?key=after_reply:#{token}").body
  end

  def test_response_finished_reverse_order
    res = http("/response_finished?token=#{token}")
    assert_equal "finished", res.body
    log = JSON.parse(http("/flag?key=finished:#{token}").body)
    assert_equal [
      { "cb" => "second", "env" => true, "status" => 200, "ctype" => "text/plain", "error" => nil },
      { "cb" => "first", "env" => true, "status" => 200, "ctype" => "text/plain", "error" => nil },
    ], log
  end

  def test_response_finished_gets_the_error
    res = http("/response_finished_error?token=#{token}")
    assert_equal 500, res.status
    log = JSON.parse(http("/flag?key=finished:#{token}").body)
    assert_equal %w[second first], log.map { |e| e["cb"] }
    assert_equal ["finished-boom"] * 2, log.map { |e| e["error"] }
  end
end
