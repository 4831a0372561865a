# frozen_string_literal: true

require "support/hostile_support"

# One reactor thread serves everyone: a client that uploads as fast as
# loopback allows must not keep it from the others. Each connection reads at
# most a budget per turn and is then revisited after the rest.
class TestFastSender < Minitest::Test
  include HostileSupport

  BODY = 128 * 1024 * 1024

  def test_others_are_served_while_a_fast_sender_uploads
    start_server
    uploader = TCPSocket.new(@srv.host, @srv.port)
    uploader.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: #{BODY}\r\n\r\n")
    chunk = "x" * (1024 * 1024)
    sent = 0
    sender = Thread.new do
      while sent < BODY
        uploader.write(chunk)
        sent += chunk.bytesize
      end
    end
    Thread.pass until sent >= 8 * chunk.bytesize || !sender.alive?
    served = 0
    10.times do
      break unless sender.alive?

      assert_equal 200, well_behaved_get(timeout: 10)
      served += 1
    end
    assert_operator served, :>=, 1, "at least one request must be served during the upload"
    Timeout.timeout(60) { sender.join }
    res = RawHTTP.read_response(uploader, timeout: 30)
    assert_equal BODY.to_s, res.body
  ensure
    sender&.kill
    uploader&.close
  end
end
