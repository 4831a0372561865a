# frozen_string_literal: true

require "support/helper"
require "tmpdir"
require "fileutils"
require "json"
require "openssl"
require "securerandom"
require "open3"
require "support/certificates"

# Real deployments' edges, from one config file as a Puma user writes it:
# TLS (rustls), unix sockets, early hints, upload limits, websockets through
# hijack, PROXY protocol, set_remote_address, method and keep-alive limits,
# idle_timeout. Clients are curl, Ruby's OpenSSL and raw sockets.
class TestHttpEdges < Minitest::Test
  APP = File.join(FIXTURES, "edges", "app.ru")

  def setup
    @dir = Dir.mktmpdir("rustpuma-edges")
    @certs = Certificates.write(@dir)
  end

  def teardown
    @server&.stop
    FileUtils.remove_entry(@dir)
  end

  def start(config, *args)
    path = File.join(@dir, "puma.rb")
    File.write(path, config)
    @server = ServerProcess.new("-C", path, *args, APP, bind: nil).start
  end

  def port_of(scheme)
    Integer(@server.output[%r{Listening on #{scheme}://127\.0\.0\.1:(\d+)}, 1])
  end

  def curl(*args)
    out, status = Open3.capture2e("curl", "-sS", "--max-time", "10", *args)
    assert status.success?, "curl #{args.join(' ')} failed: #{out}"
    out
  end

  def test_one_config_serves_tcp_unix_and_tls_with_early_hints_and_a_body_limit
    sock = File.join(@dir, "rp.sock")
    start(<<~RUBY)
      bind "tcp://127.0.0.1:0"
      bind "unix://#{sock}"
      ssl_bind "127.0.0.1", "0", { cert: "#{@certs[:cert]}", key: "#{@certs[:key]}" }
      early_hints true
      http_content_length_limit 1024
    RUBY
    tcp = port_of("http")
    ssl = port_of("ssl")

    assert_equal "hello http", curl("http://127.0.0.1:#{tcp}/")
    assert_equal "hello http", curl("--unix-socket", sock, "http://localhost/")
    assert_equal "hello https", curl("-k", "https://127.0.0.1:#{ssl}/")
    assert_equal "hello https", curl("--cacert", @certs[:ca], "https://127.0.0.1:#{ssl}/"), "the chain verifies"
    tls_env = JSON.parse(curl("-k", "https://127.0.0.1:#{ssl}/env"))
    assert_equal "https", tls_env["rack.url_scheme"]
    assert_equal "on", tls_env["HTTPS"]

    hints = curl("-i", "http://127.0.0.1:#{tcp}/hints")
    assert_match(%r{\AHTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n\r\nHTTP/1.1 200 OK\r\n}, hints)
    assert hints.end_with?("after hints")

    small = "x" * 1000
    assert_equal "1000", curl("--data-binary", small, "http://127.0.0.1:#{tcp}/upload")
    big = "x" * 2000
    assert_equal "413", curl("-o", "/dev/null", "-w", "%{http_code}", "--data-binary", big, "http://127.0.0.1:#{tcp}/upload")
    chunked = curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "Transfer-Encoding: chunked",
                   "--data-binary", big, "http://127.0.0.1:#{tcp}/upload")
    assert_equal "413", chunked, "chunked bodies are counted while they arrive"
    assert_equal "413", curl("-k", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", big, "https://127.0.0.1:#{ssl}/upload")
  end

  def test_websocket_echo_through_full_hijack
    start(%(bind "tcp://127.0.0.1:0"\n))
    websocket_echo(TCPSocket.new("127.0.0.1", port_of("http")))
  end

  # Over TLS the app gets a relayed socket (the reactor decrypts/encrypts).
  # Large bodies go through rustls in pieces: a file read in chunks (no
  # sendfile on TLS) and an Array body lent to the reactor.
  def test_large_file_and_array_bodies_over_tls
    start(%(ssl_bind "127.0.0.1", "0", { cert: "#{@certs[:cert]}", key: "#{@certs[:key]}" }\n))
    expected = Array.new(300_000) { |i| format("%09d\n", i) }.join
    %w[/file /big /file].each do |path|
      body = curl("-k", "https://127.0.0.1:#{port_of('ssl')}#{path}")
      assert_equal expected.bytesize, body.bytesize, path
      assert body == expected, "#{path}: bytes differ"
    end
  end

  def test_websocket_echo_over_tls
    start(%(ssl_bind "127.0.0.1", "0", { cert: "#{@certs[:cert]}", key: "#{@certs[:key]}" }\n))
    context = OpenSSL::SSL::SSLContext.new
    context.verify_mode = OpenSSL::SSL::VERIFY_NONE
    ssl = OpenSSL::SSL::SSLSocket.new(TCPSocket.new("127.0.0.1", port_of("ssl")), context)
    ssl.sync_close = true
    ssl.connect
    websocket_echo(ssl)
  end

  # A client may send its first frame right behind the upgrade request; those
  # bytes were already read with the request and must reach the app.
  def test_websocket_frame_sent_with_the_handshake_is_not_lost
    start(%(bind "tcp://127.0.0.1:0"\n))
    socket = TCPSocket.new("127.0.0.1", port_of("http"))
    key = SecureRandom.base64(16)
    request = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
              "Sec-WebSocket-Key: #{key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    socket.write(request + ws_frame(1, "early bird"))
    assert_equal 101, RawHTTP.read_response(socket, head: true).status
    assert_equal [1, "early bird"], ws_read(socket)
    ws_send(socket, 1, "then more")
    assert_equal [1, "then more"], ws_read(socket)
  ensure
    socket&.close
  end

  def websocket_echo(socket)
    key = SecureRandom.base64(16)
    socket.write("GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
                 "Sec-WebSocket-Key: #{key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = RawHTTP.read_response(socket, head: true)
    assert_equal 101, head.status
    expected = [OpenSSL::Digest::SHA1.digest(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")].pack("m0")
    assert_equal expected, head["sec-websocket-accept"]

    %w[hello rustpuma websockets].each do |text|
      ws_send(socket, 1, text)
      assert_equal [1, text], ws_read(socket)
    end
    ws_send(socket, 8, [1000].pack("n"))
    assert_equal [8, [1000].pack("n")], ws_read(socket)
    assert_nil socket.read(1), "the server closes after the close frame"
  ensure
    socket&.close
  end

  def test_mutual_tls_requires_a_client_certificate_and_exposes_it
    start(<<~RUBY)
      ssl_bind "127.0.0.1", "0", { cert: "#{@certs[:cert]}", key: "#{@certs[:key]}", ca: "#{@certs[:ca]}", verify_mode: "force_peer" }
    RUBY
    port = port_of("ssl")
    assert_raises(OpenSSL::SSL::SSLError, EOFError, Errno::ECONNRESET) do
      tls_get(port, "/env", cert: nil)
    end
    body = tls_get(port, "/env", cert: [@certs[:client_cert], @certs[:client_key]])
    env = JSON.parse(body)
    assert_equal OpenSSL::X509::Certificate.new(File.read(@certs[:client_cert])).to_der,
                 OpenSSL::X509::Certificate.new(env["puma.peercert"]).to_der
    assert_equal "443", env["SERVER_PORT"], "TLS without a Host port defaults to 443"
  end

  def test_failed_handshake_costs_only_a_debug_line
    start(%(ssl_bind "127.0.0.1", "0", { cert: "#{@certs[:cert]}", key: "#{@certs[:key]}" }\n), "--debug")
    port = port_of("ssl")
    plain = TCPSocket.new("127.0.0.1", port)
    plain.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n") # plain HTTP to a TLS port
    answer = plain.read # a TLS alert at most, then EOF
    refute_includes answer.to_s, "HTTP/", "no HTTP answer on a failed handshake"
    plain.close
    @server.wait_for_output(/% SSL error, peer: 127\.0\.0\.1/)
    assert_equal "hello https", curl("-k", "https://127.0.0.1:#{port}/"), "and the server goes on"
  end

  def test_unreadable_certificate_fails_the_boot_with_a_clear_message
    path = File.join(@dir, "puma.rb")
    File.write(path, %(ssl_bind "127.0.0.1", "0", { cert: "#{@dir}/missing.pem", key: "#{@certs[:key]}" }\n))
    out, status = Open3.capture2e(RbConfig.ruby, "-I", File.join(ServerProcess::ROOT, "lib"), ServerProcess::EXE,
                                  "-C", path, APP)
    refute status.success?
    assert_includes out, "ERROR: ssl bind: cert #{@dir}/missing.pem"
  end

  def test_proxy_protocol_v1_sets_remote_addr_for_the_connection
    start(%(bind "tcp://127.0.0.1:0"\nset_remote_address proxy_protocol: :v1\n))
    socket = TCPSocket.new("127.0.0.1", port_of("http"))
    socket.write("PROXY TCP4 192.0.2.7 198.51.100.1 5678 80\r\nGET /env HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_equal "192.0.2.7", JSON.parse(RawHTTP.read_response(socket).body)["REMOTE_ADDR"]
    socket.write("GET /env HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_equal "192.0.2.7", JSON.parse(RawHTTP.read_response(socket).body)["REMOTE_ADDR"], "kept for the connection"
    socket.close
    plain = RawHTTP.get("127.0.0.1", port_of("http"), "/env")
    assert_equal "127.0.0.1", JSON.parse(plain.body)["REMOTE_ADDR"], "connections without a PROXY line still work"
  end

  def test_invalid_proxy_v1_line_is_answered_400_at_once
    start(%(bind "tcp://127.0.0.1:0"\nset_remote_address proxy_protocol: :v1\n))
    ["PROXY TCP4 not-an-ip 198.51.100.1 5678 80\r\n", "PROXY TCP4 192.0.2.7 198.51.100.1 5678\r\n",
     "PROXY #{'x' * 120}"].each do |line|
      socket = TCPSocket.new("127.0.0.1", port_of("http"))
      socket.write(line)
      response = RawHTTP.read_response(socket, timeout: 10)
      refute_nil response, line
      assert_equal 400, response.status, line
      socket.close
    end
    @server.wait_for_output("invalid PROXY protocol v1 line")
  end

  def test_set_remote_address_header_and_literal
    start(%(bind "tcp://127.0.0.1:0"\nset_remote_address header: "X-Real-IP"\n))
    response = RawHTTP.get("127.0.0.1", port_of("http"), "/env", headers: { "X-Real-IP" => "203.0.113.9" })
    assert_equal "203.0.113.9", JSON.parse(response.body)["REMOTE_ADDR"]
    @server.stop
    start(%(bind "tcp://127.0.0.1:0"\nset_remote_address :localhost\nrack_url_scheme "https"\n))
    env = JSON.parse(RawHTTP.get("127.0.0.1", port_of("http"), "/env").body)
    assert_equal "127.0.0.1", env["REMOTE_ADDR"]
    assert_equal "https", env["rack.url_scheme"]
  end

  def test_supported_http_methods
    start(%(bind "tcp://127.0.0.1:0"\n))
    port = port_of("http")
    assert_equal 501, raw_status(port, "PROPFIND / HTTP/1.1\r\nHost: x\r\n\r\n"), "Puma's default list"
    assert_equal 200, raw_status(port, "PATCH / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    @server.stop
    start(%(bind "tcp://127.0.0.1:0"\nsupported_http_methods :any\n))
    assert_equal 200, raw_status(port_of("http"), "PROPFIND / HTTP/1.1\r\nHost: x\r\n\r\n")
    @server.stop
    start(%(bind "tcp://127.0.0.1:0"\nsupported_http_methods %w[GET]\n))
    assert_equal 501, raw_status(port_of("http"), "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
  end

  def test_max_keep_alive_and_disabled_keep_alives
    start(%(bind "tcp://127.0.0.1:0"\nmax_keep_alive 2\n))
    socket = TCPSocket.new("127.0.0.1", port_of("http"))
    first = RawHTTP.request(socket, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_nil first["connection"]
    second = RawHTTP.request(socket, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_equal "close", second["connection"], "the second request is the last on this connection"
    assert_nil socket.read(1)
    socket.close
    @server.stop
    start(%(bind "tcp://127.0.0.1:0"\nenable_keep_alives false\n))
    response = RawHTTP.get("127.0.0.1", port_of("http"), "/", headers: {})
    assert_equal "close", response["connection"]
  end

  def test_idle_timeout_stops_the_server
    start(%(bind "tcp://127.0.0.1:0"\nidle_timeout 1\n))
    assert_equal 200, RawHTTP.get("127.0.0.1", port_of("http"), "/").status
    status = @server.wait(15)
    assert status.success?, @server.output
    assert_includes @server.output, "- Idle timeout reached\n"
    assert_includes @server.output, "- Goodbye!"
  end

  def test_idle_timeout_stops_a_cluster
    start(%(bind "tcp://127.0.0.1:0"\nworkers 2\nworker_check_interval 1\nidle_timeout 2\n))
    assert_equal 200, RawHTTP.get("127.0.0.1", port_of("http"), "/").status
    status = @server.wait(20)
    assert status.success?, @server.output
    assert_includes @server.output, "- All workers reached idle timeout\n"
    assert_includes @server.output, "- Goodbye!"
  end

  private

  def raw_status(port, request)
    socket = TCPSocket.new("127.0.0.1", port)
    RawHTTP.request(socket, request).status
  ensure
    socket&.close
  end

  def tls_get(port, path, cert:)
    context = OpenSSL::SSL::SSLContext.new
    context.verify_mode = OpenSSL::SSL::VERIFY_NONE
    if cert
      context.cert = OpenSSL::X509::Certificate.new(File.read(cert[0]))
      context.key = OpenSSL::PKey.read(File.read(cert[1]))
    end
    tcp = TCPSocket.new("127.0.0.1", port)
    ssl = OpenSSL::SSL::SSLSocket.new(tcp, context)
    ssl.sync_close = true
    ssl.connect
    ssl.write("GET #{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    response = ssl.read
    raise EOFError, "no response" if response.nil? || response.empty?

    response.split("\r\n\r\n", 2).last
  ensure
    ssl&.close
  end

  def ws_send(socket, opcode, payload)
    socket.write(ws_frame(opcode, payload))
  end

  # A masked client frame (payloads under 126 bytes).
  def ws_frame(opcode, payload)
    mask = SecureRandom.random_bytes(4).bytes
    masked = payload.bytes.each_with_index.map { |b, i| b ^ mask[i % 4] }
    [0x80 | opcode, 0x80 | payload.bytesize, *mask, *masked].pack("C*")
  end

  def ws_read(socket)
    head = socket.read(2)
    len = head.getbyte(1) & 0x7f
    [head.getbyte(0) & 0x0f, socket.read(len)]
  end
end
