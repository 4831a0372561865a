# frozen_string_literal: true

require "support/integration_helper"

# Malformed requests get the right status and a closed connection; the
# process survives, and a neighbour mid-request on another connection is
# still served.
class TestBadInput < Minitest::Test
  include IntegrationHelper
  server_args "-t", "2:2", "test/fixtures/app.ru"

  H = "Host: example.com\r\n"

  CASES = {
    "malformed_request_line" => ["GARBAGE\r\n\r\n", 400],
    "header_name_with_space" => ["GET / HTTP/1.1\r\n#{H}Bad Name: x\r\n\r\n", 400],
    "bare_lf" => ["GET / HTTP/1.1\n#{H}\n", 400],
    "bare_cr_in_value" => ["GET / HTTP/1.1\r\n#{H}X-A: a\rb\r\n\r\n", 400],
    "nul_in_value" => ["GET / HTTP/1.1\r\n#{H}X-A: a\0b\r\n\r\n", 400],
    "content_length_not_digits" => ["POST / HTTP/1.1\r\n#{H}Content-Length: 12a\r\n\r\n", 400],
    "two_different_content_lengths" => ["POST / HTTP/1.1\r\n#{H}Content-Length: 2\r\nContent-Length: 3\r\n\r\nabc", 400],
    "transfer_encoding_gzip" => ["POST / HTTP/1.1\r\n#{H}Transfer-Encoding: gzip\r\n\r\n", 501],
    "chunked_not_last" => ["POST / HTTP/1.1\r\n#{H}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400],
    "bad_chunk_size" => ["POST / HTTP/1.1\r\n#{H}Transfer-Encoding: chunked\r\n\r\nxyz\r\nabc\r\n0\r\n\r\n", 400],
    "header_block_over_112k" => ["GET / HTTP/1.1\r\n#{H}X-Big: #{'b' * (113 * 1024)}\r\n\r\n", 431],
    "uri_over_12k" => ["GET /#{'u' * ((12 * 1024) + 10)} HTTP/1.1\r\n#{H}\r\n", 414],
  }.freeze

  # A neighbour sends half a request first, and finishes it afterwards.
  def with_neighbour
    neighbour = connect
    neighbour.write("POST /echo HTTP/1.1\r\nHost: example.com\r\nContent-Length: 9\r\n")
    yield
    res = RawHTTP.request(neighbour, "Connection: close\r\n\r\nneighbour")
    assert_equal 200, res.status
    assert_equal "neighbour", res.body
  end

  CASES.each do |name, (request, status)|
    define_method("test_#{name}") do
      with_neighbour do
        sock = connect
        write_tolerant(sock, request.b)
        res = RawHTTP.read_response(sock)
        refute_nil res, "no response at all"
        assert_equal status, res.status
        assert_closed(sock)
      end
      refute server.exited?, "server died"
      assert_equal "abcdefg", http("/array").body
    end
  end
end

# App exceptions: 500, a log line, and the backtrace only in development.
class TestAppErrorDevelopment < Minitest::Test
  include IntegrationHelper
  server_args "-t", "2:2", "-e", "development", "test/fixtures/app.ru"

  def test_exception_is_500_with_backtrace
    res = http("/raise")
    assert_equal 500, res.status
    assert_equal "text/plain", res["content-type"]
    assert_includes res.body, "boom-from-app"
    assert_includes res.body, "ArgumentError"
    assert_includes res.body, "app.ru:", "the backtrace is in the body in development"
    server.wait_for_output(/Rack app.*\n?.*boom-from-app/)
    assert_match(/Rack app/, server.output)
    assert_equal "abcdefg", http("/array").body
  end
end

class TestAppErrorProduction < Minitest::Test
  include IntegrationHelper
  server_args "-t", "2:2", "-e", "production", "test/fixtures/app.ru"

  def test_exception_is_500_without_backtrace
    res = http("/raise")
    assert_equal 500, res.status
    assert_equal "An unhandled lowlevel error occurred. The application logs may have details.\n", res.body
    server.wait_for_output("boom-from-app")
    assert_match(/Rack app/, server.output)
    refute_includes res.body, "app.ru"
  end
end
