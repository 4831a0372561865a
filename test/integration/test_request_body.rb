# frozen_string_literal: true

require "support/integration_helper"
require "digest"

# Request bodies: large (spilled to a temp file), chunked, Expect: 100-continue.
class TestRequestBody < Minitest::Test
  include IntegrationHelper
  server_args "-t", "2:2", "test/fixtures/app.ru"

  def test_large_body_intact
    body = Random.new(7).bytes(300 * 1024)
    res = http("/digest", method: "POST", body: body)
    assert_equal 200, res.status, res.body
    info = json(res)
    assert_equal body.bytesize, info["size"]
    assert_equal Digest::SHA256.hexdigest(body), info["sha256"]
    assert_equal true, info["reread_same"]
    assert_equal (300 * 1024).to_s, info["CONTENT_LENGTH"]
    refute_equal "StringIO", info["input_class"], "a body over 112 KiB is spilled to a temp file"
  end

  def test_small_body_in_memory
    res = http("/digest", method: "POST", body: "small")
    info = json(res)
    assert_equal 5, info["size"]
    assert_equal Digest::SHA256.hexdigest("small"), info["sha256"]
  end

  def test_chunked_body_with_extensions_and_trailers
    sock = connect
    req = "POST /digest HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" \
          "5;ext=1\r\nhello\r\n7 ; name=\"v\"\r\n, world\r\n1\r\n!\r\n0;last\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n"
    res = RawHTTP.request(sock, req)
    assert_equal 200, res.status, res.body
    info = json(res)
    assert_equal Digest::SHA256.hexdigest("hello, world!"), info["sha256"]
    assert_equal 13, info["size"]
    assert_equal "13", info["CONTENT_LENGTH"]
  end

  def test_large_chunked_body
    body = Random.new(9).bytes(200 * 1024)
    chunks = body.scan(/.{1,8000}/mn).map { |c| "#{c.bytesize.to_s(16)}\r\n".b + c + "\r\n".b }.join
    sock = connect
    res = RawHTTP.request(sock, "POST /digest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".b +
                                chunks + "0\r\n\r\n".b)
    assert_equal 200, res.status
    info = json(res)
    assert_equal Digest::SHA256.hexdigest(body), info["sha256"]
    assert_equal body.bytesize.to_s, info["CONTENT_LENGTH"]
  end

  def test_expect_100_continue
    sock = connect
    sock.write("POST /echo HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 9\r\nConnection: close\r\n\r\n")
    interim = Timeout.timeout(5) { sock.readpartial(1024) }
    assert_equal "HTTP/1.1 100 Continue\r\n\r\n", interim
    sock.write("continued")
    res = RawHTTP.read_response(sock)
    assert_equal 200, res.status
    assert_equal "continued", res.body
  end
end
