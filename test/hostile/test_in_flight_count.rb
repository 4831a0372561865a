# frozen_string_literal: true

require "tmpdir"
require "support/hostile_support"

# The reactor counts the requests in flight (with the pool, or a response
# it is still writing) to know when a graceful stop may end. Every way a
# response can end must take exactly one off: one too many and the stop
# ends while a request is still being served (its answer is lost), or the
# count wraps; one too few and the stop never ends.
class TestInFlightCount < Minitest::Test
  include HostileSupport

  def raw_get(sock, path, keep_alive: false)
    sock.write("GET #{path} HTTP/1.1\r\nHost: x\r\n#{keep_alive ? '' : "Connection: close\r\n"}\r\n")
    RawHTTP.read_response(sock, timeout: 15)
  end

  def test_a_graceful_stop_waits_for_exactly_the_requests_in_flight
    begin
      start_server
      # Dropped by the write timeout (10 s without progress), while the rest runs.
      timed_out = slow_reader_socket
      timed_out.write("GET /big?n=#{REACTOR_WRITTEN} HTTP/1.1\r\nHost: x\r\n\r\n")

      # Reactor-written responses: kept alive, then closed.
      sock = TCPSocket.new(@srv.host, @srv.port)
      assert_equal 200, raw_get(sock, "/", keep_alive: true).status
      assert_equal 200, raw_get(sock, "/").status
      sock.close
      # A large Array body: a first pass by the pool thread, the rest by the reactor.
      assert_equal 1024 * 1024, raw_get(TCPSocket.new(@srv.host, @srv.port), "/big?n=#{1024 * 1024}").body.bytesize
      # A reactor write that fails: the client resets mid-response.
      reset = slow_reader_socket
      reset.write("GET /big?n=#{REACTOR_WRITTEN} HTTP/1.1\r\nHost: x\r\n\r\n")
      reset.wait_readable(10)
      reset.setsockopt(Socket::SOL_SOCKET, Socket::SO_LINGER, [1, 0].pack("ii")) # RST, not FIN
      reset.close
      eventually("the write timeout drops the reader that reads nothing", timeout: 30) do
        timed_out.write_nonblock("x")
        false
      rescue Errno::ECONNRESET, Errno::EPIPE
        true
      rescue IO::WaitWritable
        false
      end

      # One request in flight when the stop begins: it is answered, then the
      # process ends.
      in_flight = TCPSocket.new(@srv.host, @srv.port)
      in_flight.write("GET /sleep?s=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      @srv.wait_for_output("sleeping", 10)
      @srv.signal("TERM")
      res = RawHTTP.read_response(in_flight, timeout: 15)
      refute_nil res, "the request in flight lost its answer: the stop did not wait for it"
      assert_equal "slept", res.body
      refute_nil @srv.wait(15), "the stop must end once nothing is in flight"
    rescue Timeout::Error
      flunk "the graceful stop did not end:\n#{@srv.output}"
    ensure
      timed_out&.close
    end
  end
end
