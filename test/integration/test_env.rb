# frozen_string_literal: true

require "support/integration_helper"
require "rack"
require "rustpuma/version"

# The Rack env the server builds, as the app sees it (Puma's keys and values).
class TestEnv < Minitest::Test
  include IntegrationHelper
  server_args "-t", "2:2", "test/fixtures/app.ru"

  def env_for(path = "/env", **opts)
    res = http(path, **opts)
    assert_equal 200, res.status, res.body
    assert_equal "application/json", res["content-type"]
    json(res)
  end

  def test_request_line_keys
    env = env_for("/env/sub?a=1&b=two")
    assert_equal "GET", env["REQUEST_METHOD"]
    assert_equal "", env["SCRIPT_NAME"]
    assert_equal "/env/sub", env["PATH_INFO"]
    assert_equal "/env/sub", env["REQUEST_PATH"]
    assert_equal "/env/sub?a=1&b=two", env["REQUEST_URI"]
    assert_equal "a=1&b=two", env["QUERY_STRING"]
    assert_equal "HTTP/1.1", env["SERVER_PROTOCOL"]
  end

  # The env starts as a copy of a template with an empty slot for each key
  # every request gets (Handler::SLOTS): none may stay empty.
  def test_no_key_is_left_nil
    assert_equal [], env_for("/env", host: nil, version: "1.0")["nil_keys"]
    env = env_for("/env/x?y=1", host: "example.com")
    assert_equal [], env["nil_keys"]
    assert_operator env["keys"].size, :>, 20
  end

  def test_query_string_defaults_to_empty
    env = env_for("/env")
    assert_equal "", env["QUERY_STRING"]
    assert_equal "/env", env["REQUEST_URI"]
  end

  def test_server_software_and_gateway
    env = env_for
    assert_equal "rustpuma #{Rustpuma::VERSION}", env["SERVER_SOFTWARE"]
    assert_equal "CGI/1.2", env["GATEWAY_INTERFACE"]
    assert_equal "127.0.0.1", env["REMOTE_ADDR"]
  end

  def test_server_name_and_port_from_host
    env = env_for(host: "example.com:8080")
    assert_equal "example.com", env["SERVER_NAME"]
    assert_equal "8080", env["SERVER_PORT"]
    assert_equal "example.com:8080", env["HTTP_HOST"]
  end

  def test_server_port_defaults_to_80
    env = env_for(host: "example.com")
    assert_equal "example.com", env["SERVER_NAME"]
    assert_equal "80", env["SERVER_PORT"]
    assert_equal "http", env["rack.url_scheme"]
  end

  def test_ipv6_host_keeps_brackets
    env = env_for(host: "[::1]:9292")
    assert_equal "[::1]", env["SERVER_NAME"]
    assert_equal "9292", env["SERVER_PORT"]
  end

  def test_no_host_http10
    env = env_for(host: nil, version: "1.0")
    assert_equal "localhost", env["SERVER_NAME"]
    assert_equal "80", env["SERVER_PORT"]
    assert_equal "HTTP/1.0", env["SERVER_PROTOCOL"]
    refute env.key?("HTTP_HOST")
  end

  def test_content_type_and_length
    env = env_for(method: "POST", headers: { "Content-Type" => "application/x-www-form-urlencoded" }, body: "a=1&b=2")
    assert_equal "POST", env["REQUEST_METHOD"]
    assert_equal "application/x-www-form-urlencoded", env["CONTENT_TYPE"]
    assert_equal "7", env["CONTENT_LENGTH"]
    refute env.key?("HTTP_CONTENT_TYPE")
    refute env.key?("HTTP_CONTENT_LENGTH")
    assert_equal "a=1&b=2", env["input.first"]
  end

  def test_rack_input_rewindable
    env = env_for(method: "PUT", body: "read me twice")
    assert_equal "read me twice", env["input.first"]
    assert_equal "read me twice", env["input.second"]
  end

  def test_http_headers_and_duplicates_joined
    sock = connect
    res = RawHTTP.request(sock, "GET /env HTTP/1.1\r\nHost: example.com\r\nX-Dup: a\r\nX-Custom-Thing: v\r\n" \
                                "x-dup: b\r\nAccept: text/html\r\nConnection: close\r\n\r\n")
    assert_equal 200, res.status
    env = json(res)
    assert_equal "a, b", env["HTTP_X_DUP"]
    assert_equal "v", env["HTTP_X_CUSTOM_THING"]
    assert_equal "text/html", env["HTTP_ACCEPT"]
    assert_equal "close", env["HTTP_CONNECTION"]
  end

  # More headers than the native side gathers for one bulk insert (24
  # entries with the CGI keys): every one arrives, in a single env.
  def test_many_headers_all_arrive
    headers = (1..60).map { |i| "X-Many-#{i}: v#{i}\r\n" }.join
    sock = connect
    res = RawHTTP.request(sock, "GET /env?q=1 HTTP/1.1\r\nHost: example.com:81\r\n#{headers}Connection: close\r\n\r\n")
    assert_equal 200, res.status
    env = json(res)
    (1..60).each { |i| assert_equal "v#{i}", env["HTTP_X_MANY_#{i}"], "HTTP_X_MANY_#{i}" }
    assert_equal "example.com", env["SERVER_NAME"]
    assert_equal "81", env["SERVER_PORT"]
    assert_equal "q=1", env["QUERY_STRING"]
  end

  def test_rack_keys
    env = env_for
    assert_equal Rack::VERSION, env["rack.version"]
    assert_equal true, env["rack.multithread"]
    assert_equal false, env["rack.multiprocess"]
    assert_equal false, env["rack.run_once"]
    assert_equal true, env["rack.hijack?"]
    assert_equal true, env["rack.hijack"]
    assert_equal true, env["rack.errors"]
    assert_equal "Array", env["rack.after_reply"]
    assert_equal "Array", env["rack.response_finished"]
    assert_equal "http", env["rack.url_scheme"]
    assert_equal false, env["rack.early_hints"], "rack.early_hints only with --early-hints"
    assert_includes env["keys"], "rack.input"
  end

  def test_https_from_x_forwarded_proto
    env = env_for(headers: { "X-Forwarded-Proto" => "https" })
    assert_equal "https", env["rack.url_scheme"]
    assert_equal "443", env["SERVER_PORT"]
  end

  def test_https_from_x_forwarded_scheme
    env = env_for(headers: { "X-Forwarded-Scheme" => "https" })
    assert_equal "https", env["rack.url_scheme"]
    assert_equal "443", env["SERVER_PORT"]
  end

  def test_https_from_x_forwarded_ssl
    env = env_for(headers: { "X-Forwarded-Ssl" => "on" })
    assert_equal "https", env["rack.url_scheme"]
    assert_equal "443", env["SERVER_PORT"]
  end
end

# rack.early_hints exists only with --early-hints, and sends a 103 first.
class TestEarlyHints < Minitest::Test
  include IntegrationHelper
  server_args "-t", "2:2", "--early-hints", "test/fixtures/app.ru"

  def test_early_hints_key_present
    res = http("/env")
    assert_equal 200, res.status
    assert_equal true, json(res)["rack.early_hints"]
  end

  def test_early_hints_sends_103_before_response
    sock = connect
    sock.write(build("/hints"))
    hints = RawHTTP.read_response(sock)
    assert_equal 103, hints.status
    assert_equal ["</style.css>; rel=preload"], hints.header_lines("link")
    res = RawHTTP.read_response(sock)
    assert_equal 200, res.status
    assert_equal "hinted", res.body
  end
end

# The whole app wrapped in Rack::Lint: any spec violation would be a 500.
class TestLint < Minitest::Test
  include IntegrationHelper
  server_args "-t", "2:2", "test/fixtures/lint.ru"

  def test_get
    res = http("/")
    assert_equal 200, res.status, res.body
    assert_equal "lint ok", res.body
    assert_equal "text/plain", res["content-type"]
  end

  def test_post
    res = http("/post", method: "POST", body: "posted body", headers: { "Content-Type" => "text/plain" })
    assert_equal 200, res.status, res.body
    assert_equal "posted body", res.body
  end

  def test_head
    res = http("/head", method: "HEAD", head: true)
    assert_equal 200, res.status
    assert_equal "5", res["content-length"]
  end

  def test_stream
    res = http("/stream")
    assert_equal 200, res.status, res.body
    assert_equal "chunked", res["transfer-encoding"]
    assert_equal "stream", res.body
  end
end
