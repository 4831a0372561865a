# frozen_string_literal: true

require "socket"
require "timeout"

# A minimal HTTP/1.1 client over a raw socket, so tests control every byte
# sent and see every byte received (no client library smoothing things over).
module RawHTTP
  Response = Struct.new(:status, :reason, :headers, :body, :raw_head) do
    # Header lookup, case-insensitive; repeated headers come back joined by "\n".
    def [](name)
      values = headers.select { |k, _| k.casecmp?(name) }.map(&:last)
      values.empty? ? nil : values.join("\n")
    end

    def header_lines(name)
      headers.select { |k, _| k.casecmp?(name) }.map(&:last)
    end
  end

  module_function

  # Sends `request` (a String of raw bytes) and reads one response.
  def request(socket, request, head: false, timeout: 10)
    socket.write(request)
    read_response(socket, head: head, timeout: timeout)
  end

  def read_response(socket, head: false, timeout: 10)
    Timeout.timeout(timeout) do
      raw_head = +""
      until raw_head.end_with?("\r\n\r\n")
        c = socket.read(1)
        return nil if c.nil? && raw_head.empty?
        raise EOFError, "connection closed mid-head: #{raw_head.inspect}" if c.nil?

        raw_head << c
      end
      lines = raw_head.split("\r\n")
      _, status, reason = lines.shift.split(" ", 3)
      headers = lines.map { |l| l.split(": ", 2) }
      response = Response.new(Integer(status), reason, headers, +"", raw_head)
      return response if head || [204, 304].include?(response.status) || response.status < 200

      response.body = read_body(socket, response)
      response
    end
  end

  def read_body(socket, response)
    if response["transfer-encoding"]&.include?("chunked")
      body = +""
      loop do
        size = socket.gets("\r\n").to_i(16)
        if size.zero?
          socket.gets("\r\n") # end of trailers
          return body
        end
        body << socket.read(size)
        socket.read(2)
      end
    elsif (len = response["content-length"])
      socket.read(Integer(len)).to_s
    else
      socket.read.to_s
    end
  end

  # One request on a fresh connection.
  def get(host, port, path = "/", headers: {}, version: "1.1")
    socket = TCPSocket.new(host, port)
    extra = headers.map { |k, v| "#{k}: #{v}\r\n" }.join
    request(socket, "GET #{path} HTTP/#{version}\r\nHost: #{host}:#{port}\r\n#{extra}Connection: close\r\n\r\n")
  ensure
    socket&.close
  end
end
