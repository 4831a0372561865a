# frozen_string_literal: true

require "support/integration_helper"
require "digest"

# A response is either complete, so the connection can carry the next one,
# or the connection closes: a body that fails half way, a length that lies
# or framing the app got wrong must never let the next pipelined response be
# read as part of this one. Each case sends two pipelined requests on one
# raw connection and compares every byte that came back before EOF.
class TestResponseIntegrity < Minitest::Test
  include IntegrationHelper
  server_args "-t", "4:4", "-C", "test/fixtures/integrity_config.rb", "test/fixtures/integrity.ru"

  STATIC = File.binread(File.join(FIXTURES, "static.bin"))
  NEXT = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnext"

  # The bytes received for `path` followed by a pipelined GET /ok.
  def pipelined(path, headers: {})
    sock = connect
    sock.write(build(path, keep_alive: true, headers: headers) + build("/ok"))
    read_to_eof(sock)
  end

  def assert_closed_after(expected, path)
    raw = pipelined(path)
    assert_equal expected.b, raw.b
    refute_includes raw, "next", "the next response must never follow a broken one"
  end

  def assert_kept_alive(expected, path)
    assert_equal (expected + NEXT).b, pipelined(path).b
  end

  def app_error(type)
    body = "handled 500 #{type}"
    "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\nContent-Length: #{body.bytesize}\r\n" \
      "Connection: close\r\n\r\n#{body}"
  end

  # Point 1: bodies that fail after the head went out.

  def test_chunked_body_raising_is_never_terminated_and_closes
    assert_closed_after("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" \
                        "3\r\none\r\n3\r\ntwo\r\n", "/raise_chunked")
    server.wait_for_output(/body exploded/)
  end

  def test_body_raising_before_its_first_part_is_a_500_and_closes
    # The head of a streamed body waits for its first bytes, as in Puma.
    assert_closed_after(app_error("RuntimeError"), "/raise_before_first")
  end

  def test_body_raising_short_of_its_length_closes
    assert_closed_after("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\none", "/raise_with_length")
  end

  def test_file_that_cannot_be_opened_is_a_500_and_closes
    assert_closed_after(app_error("IOError"), "/file_vanishes")
  end

  def test_file_shorter_than_its_length_closes
    declared = STATIC.bytesize + 10
    assert_closed_after("HTTP/1.1 200 OK\r\nContent-Length: #{declared}\r\nConnection: close\r\n\r\n#{STATIC}",
                        "/file_short")
  end

  def test_file_longer_than_its_length_is_cut_and_closes
    assert_closed_after("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n#{STATIC[0, 5]}",
                        "/file_long")
  end

  def test_head_of_a_streamed_body_has_no_framing_and_keeps_the_connection
    sock = connect
    sock.write(build("/each_ok", method: "HEAD", keep_alive: true) + build("/ok"))
    assert_equal "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n#{NEXT}", read_to_eof(sock)
  end

  # Point 2: the app's framing headers.

  %w[newline two_values letters array two_keys integer].each do |variant|
    define_method("test_content_length_#{variant}_gives_one_length_from_the_body") do
      assert_kept_alive("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "/length_#{variant}")
    end
  end

  def test_array_body_longer_than_its_length_is_cut_and_closes
    assert_closed_after("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                        "/length_longer_body")
  end

  def test_array_body_shorter_than_its_length_closes
    assert_closed_after("HTTP/1.1 200 OK\r\nContent-Length: 20\r\nConnection: close\r\n\r\nhello",
                        "/length_shorter_body")
  end

  def test_streamed_body_longer_than_its_length_is_cut_and_closes
    assert_closed_after("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "/each_longer_body")
  end

  def test_streamed_body_shorter_than_its_length_closes
    assert_closed_after("HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nhello", "/each_shorter_body")
  end

  %w[nil_body two_elements integer_part symbol_part].each do |path|
    define_method("test_#{path}_is_an_app_error") do
      assert_closed_after(app_error("TypeError"), "/#{path}")
    end
  end

  def test_app_errors_are_logged_like_any_other
    pipelined("/nil_body")
    # The server is shared: /two_elements may have logged "not a Rack body"
    # already, so wait for this request's own line.
    server.wait_for_output(%r{"GET /nil_body HTTP/1.1".*not a Rack body})
    assert_match(%r{Rack app \("GET /nil_body HTTP/1.1" - \(127\.0\.0\.1\)\)}, server.output)
  end

  def test_non_string_part_of_a_streamed_body_closes
    assert_closed_after("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" \
                        "2\r\nok\r\n", "/each_integer_part")
  end

  %w[0 99 1000 -200 string_letters float nil].each do |status|
    define_method("test_status_#{status}_is_an_app_error") do
      assert_closed_after(app_error("TypeError"), "/status/#{status}")
    end
  end

  def test_valid_statuses_still_pass
    assert_kept_alive("HTTP/1.1 999 CUSTOM\r\ncontent-type: text/plain\r\nContent-Length: 10\r\n\r\nbad status",
                      "/status/999")
  end

  def test_app_encoded_chunked_body_passes_through_and_keeps_the_connection
    expected = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert_kept_alive(expected, "/app_chunked")
    assert_kept_alive(expected, "/app_chunked_each")
  end

  def test_nothing_after_the_apps_last_chunk_is_sent
    assert_closed_after("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
                        "/app_chunked_smuggle")
  end

  def test_unfinished_app_encoded_chunked_body_closes
    assert_closed_after("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n", "/app_chunked_unfinished")
  end

  def test_partial_hijack_101_keeps_the_apps_connection_upgrade
    key = [Random.bytes(16)].pack("m0")
    sock = connect
    sock.write(build("/websocket", keep_alive: true,
                                   headers: { "Upgrade" => "websocket", "Connection" => "Upgrade",
                                              "Sec-WebSocket-Key" => key, "Sec-WebSocket-Version" => "13" }))
    res = RawHTTP.read_response(sock, head: true)
    assert_equal 101, res.status
    assert_equal "Switching Protocols", res.reason
    assert_equal ["Upgrade"], res.header_lines("connection")
    assert_equal "websocket", res["upgrade"]
    assert_equal [Digest::SHA1.digest("#{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11")].pack("m0"),
                 res["sec-websocket-accept"]
    assert_nil res["content-length"]
    assert_nil res["transfer-encoding"]
    # The socket now belongs to the app, which echoes in upper case.
    sock.write("ping")
    assert_equal "PING", read_to_eof(sock)
  end
end
