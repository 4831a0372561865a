# frozen_string_literal: true

require "socket"

# A connection with a tiny receive window that reads nothing: responses
# to it stay in the server (the reactor keeps what the kernel refuses).
# A small segment size keeps the server's send buffer small too (Linux
# sizes it from the segment size; loopback's 64 KiB segments would let
# the kernel absorb megabytes).
module SlowReaderSocket
  def self.connect(host, port)
    sock = Socket.new(:INET, :STREAM)
    sock.setsockopt(Socket::SOL_SOCKET, Socket::SO_RCVBUF, 4096)
    sock.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_MAXSEG, 536)
    sock.connect(Socket.sockaddr_in(port, host))
    sock
  end
end
