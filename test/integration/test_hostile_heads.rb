# frozen_string_literal: true

require "support/integration_helper"

# Request heads built to confuse the server: underscored header names posing
# as framing headers, openings that are not HTTP at all, and heads trickled
# one byte per segment. Raw sockets, so every byte is the test's.
class TestHostileHeads < Minitest::Test
  include IntegrationHelper
  server_args "-t", "2:2", "test/fixtures/app.ru"

  def env_of(raw)
    sock = connect
    res = RawHTTP.request(sock, raw.b)
    refute_nil res, "no response"
    assert_equal 200, res.status, res.body
    JSON.parse(res.body)
  end

  # `Transfer_Encoding` / `Content_Length` must not reach the app as the
  # framing the server ignored (an app rebuilding headers from env would
  # forward them upstream): Puma keeps them as HTTP_TRANSFER,ENCODING and
  # HTTP_CONTENT,LENGTH, and `Content_Type` is never CONTENT_TYPE.
  def test_underscored_names_never_set_framing_keys
    env = env_of("POST /env HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\nContent_Length: 11\r\n" \
                 "Content_Type: text/evil\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
    assert_equal "5", env["CONTENT_LENGTH"]
    assert_equal "hello", env["input.first"]
    refute env.key?("HTTP_TRANSFER_ENCODING"), env.keys.grep(/TRANSFER/).inspect
    refute env.key?("CONTENT_TYPE"), "CONTENT_TYPE came from Content_Type"
    assert_equal "chunked", env["HTTP_TRANSFER,ENCODING"]
    assert_equal "11", env["HTTP_CONTENT,LENGTH"]
    assert_equal "text/evil", env["HTTP_CONTENT_TYPE"]
  end

  def test_underscored_name_loses_to_the_dashed_one
    env = env_of("GET /env HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: evil\r\nX-Forwarded-For: 1.2.3.4\r\n" \
                 "X_Custom: u\r\nConnection: close\r\n\r\n")
    assert_equal "1.2.3.4", env["HTTP_X_FORWARDED_FOR"]
    assert_equal "u", env["HTTP_X_CUSTOM"]
  end

  def test_chunked_request_with_underscored_content_length
    env = env_of("POST /env HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent_Length: 99\r\n" \
                 "Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert_equal "3", env["CONTENT_LENGTH"]
    assert_equal "abc", env["input.first"]
    refute env.key?("HTTP_TRANSFER_ENCODING")
    assert_equal "99", env["HTTP_CONTENT,LENGTH"]
  end

  def test_http_1_2_is_served_as_1_1
    env = env_of("GET /env HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert_equal "HTTP/1.1", env["SERVER_PROTOCOL"]
  end

  # Openings that can never be HTTP get 400 at once (not 408 after the
  # first-data timeout) and a log line naming what they were.
  {
    "tls_client_hello" => ["\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".b, "TLS handshake on a plain port"],
    "ssh_banner" => ["SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "SSH handshake on an HTTP port"],
    "nul_byte" => ["\0", "request does not start with a method token"],
    "request_line_without_version" => ["HELLO there\r\n", "bad request"],
  }.each do |name, (opening, logged)|
    define_method("test_#{name}_is_answered_400_at_once") do
      sock = connect
      sock.write(opening)
      # The connection stays open on the client side: only the parser can
      # end this before the 30 s first-data timeout.
      res = RawHTTP.read_response(sock, timeout: 10)
      refute_nil res, "no response"
      assert_equal 400, res.status
      assert_closed(sock)
      server.wait_for_output(/HTTP parse error, malformed request \(127\.0\.0\.1\): 400 .*#{Regexp.escape(logged)}/)
      assert_equal "abcdefg", http("/array").body, "the server goes on"
    end
  end

  # A head trickled one byte per TCP segment is served: the scanner resumes
  # where it stopped (the unit test counts its work).
  def test_head_sent_one_byte_per_segment_is_served
    sock = connect
    sock.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
    raw = +"GET /env?trickle=1 HTTP/1.1\r\nHost: x\r\n"
    40.times { |i| raw << "X-Line-#{i}: #{'v' * 20}\r\n" }
    raw << "Connection: close\r\n\r\n"
    Timeout.timeout(30) { raw.each_char { |c| sock.write(c) } }
    res = RawHTTP.read_response(sock)
    refute_nil res
    assert_equal 200, res.status
    env = JSON.parse(res.body)
    assert_equal "trickle=1", env["QUERY_STRING"]
    assert_equal "v" * 20, env["HTTP_X_LINE_39"]
  end
end
