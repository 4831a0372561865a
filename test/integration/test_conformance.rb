# frozen_string_literal: true

require "support/integration_helper"

# Every case of spec/http_cases.json, sent over a raw socket to an app that
# answers 200 and echoes the body.
class TestConformance < Minitest::Test
  include IntegrationHelper
  server_args "-t", "2:2", "test/fixtures/echo.ru"

  CASES_PATH = File.expand_path("../../spec/http_cases.json", __dir__)

  # One byte per character (code points 0-255).
  def self.bytes(str)
    str.unpack("U*").pack("C*")
  end

  def self.cases
    JSON.parse(File.read(CASES_PATH)).reject { |c| c.key?("_comment") }.map do |c|
      request = bytes(c["request"])
      if (rep = c["repeat"])
        request = request.sub(bytes(rep["marker"])) { bytes(rep["char"]) * rep["count"] }
      end
      c.merge("request" => request)
    end
  end

  cases.each_with_index do |c, i|
    define_method(format("test_%02d_%s", i, c["name"].downcase.gsub(/[^a-z0-9]+/, "_"))) do
      check_case(c)
    end
  end

  def check_case(c)
    sock = connect
    write_tolerant(sock, c["request"])
    res = RawHTTP.read_response(sock, head: c["request"].start_with?("HEAD"))
    refute_nil res, "no response"
    assert_equal c["status"], res.status, "#{c['name']}: #{res.raw_head.inspect}"
    if c["status"] != 200
      assert_closed(sock)
      return
    end

    assert_equal self.class.bytes(c["body"]), res.body.b, c["name"] if c.key?("body")
    if c["rest"] && !c["rest"].empty?
      second = RawHTTP.read_response(sock)
      refute_nil second, "no response to the pipelined request"
      assert_equal 200, second.status
    end
    case c["keep_alive"]
    when false
      assert_closed(sock)
    when true
      again = RawHTTP.request(sock, "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
      refute_nil again, "connection should have stayed open"
      assert_equal 200, again.status
    end
  end
end
