# frozen_string_literal: true

require "support/helper"
require "json"
require "securerandom"

# Shared plumbing for the integration tests: one lazily started server per
# test class (stopped after the run), fresh raw connections, and bounded
# reads. Include it in a Minitest::Test subclass and declare the server with
# `server_args "-t", "4:4", "test/fixtures/app.ru"`.
module IntegrationHelper
  def self.included(base)
    base.extend(ClassMethods)
  end

  module ClassMethods
    def server_args(*args, **opts)
      @server_args = [args, opts]
    end

    def server
      @server ||= begin
        args, opts = @server_args || [["-t", "4:4", "test/fixtures/app.ru"], {}]
        srv = ServerProcess.new(*args, **opts).start
        Minitest.after_run { srv.stop }
        srv
      end
    end
  end

  def server
    self.class.server
  end

  def teardown
    (@sockets || []).each { |s| s.close unless s.closed? }
    super
  end

  def connect(srv = server)
    sock = srv.unix_path && !srv.port ? UNIXSocket.new(srv.unix_path) : TCPSocket.new(srv.host, srv.port)
    (@sockets ||= []) << sock
    sock
  end

  def token
    @token ||= SecureRandom.hex(6)
  end

  # Raw request text; adds Host and, unless `keep_alive`, Connection: close.
  def build(path, method: "GET", headers: {}, body: nil, version: "1.1", keep_alive: false, host: "example.com")
    head = +"#{method} #{path} HTTP/#{version}\r\n"
    head << "Host: #{host}\r\n" if host
    headers.each { |k, v| head << "#{k}: #{v}\r\n" }
    head << "Content-Length: #{body.bytesize}\r\n" if body && !headers.keys.any? { |k| k.casecmp?("content-length") }
    head << "Connection: close\r\n" unless keep_alive
    head << "\r\n"
    body ? head.b + body.b : head.b
  end

  # One request on a fresh connection.
  def http(path, srv: server, head: false, **opts)
    sock = connect(srv)
    RawHTTP.request(sock, build(path, **opts), head: head)
  end

  # Reads whatever the server sends until EOF (bounded).
  def read_to_eof(sock, timeout = 10)
    data = +""
    Timeout.timeout(timeout) do
      loop do
        data << sock.readpartial(65_536)
      rescue EOFError, Errno::ECONNRESET
        return data
      end
    end
  end

  # Asserts the server closed the connection (no further bytes, then EOF).
  def assert_closed(sock, timeout = 10)
    assert_equal "", read_to_eof(sock, timeout), "expected the server to close the connection"
  end

  # Writes, tolerating a server that answered and closed before reading it all.
  def write_tolerant(sock, data)
    sock.write(data)
  rescue Errno::EPIPE, Errno::ECONNRESET
    nil
  end

  def json(response)
    JSON.parse(response.body)
  end
end
