# frozen_string_literal: true

require "support/hostile_support"

# One reactor thread serves everyone: a client that sends as fast as
# loopback allows must not keep it from the others. Each connection reads at
# most a budget per turn and is then revisited after the rest.
class TestFastSender < Minitest::Test
  include HostileSupport

  # Small chunks: decoding them costs the reactor far more than writing a
  # prepared buffer costs the client, so the socket never runs dry while the
  # client sends. A reactor that read until EAGAIN would look at nobody else
  # until the client paused.
  CHUNK = "10\r\n#{'x' * 16}\r\n"
  ROUND = CHUNK * (2 * 1024 * 1024 / CHUNK.bytesize)
  ROUND_DATA = 16 * (2 * 1024 * 1024 / CHUNK.bytesize)
  MAX_ROUNDS = 32 # 64 MiB on the wire: far beyond what socket buffers hold

  def test_others_are_served_while_a_fast_sender_uploads
    start_server
    uploader = TCPSocket.new(@srv.host, @srv.port)
    uploader.write("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    rounds = 0
    stop = false
    sender = Thread.new do
      until stop || rounds == MAX_ROUNDS
        uploader.write(ROUND)
        rounds += 1
      end
      uploader.write("0\r\n\r\n")
    end
    Thread.pass until rounds >= 1 || !sender.alive?
    assert_equal 200, well_behaved_get(timeout: 60)
    # Progress, not speed: the answer came while the client was still
    # sending, not once it had run out of rounds.
    at_answer = rounds
    stop = true
    assert_operator at_answer, :<, MAX_ROUNDS, "the other client was served only once the upload ended"
    Timeout.timeout(60) { sender.join }
    res = RawHTTP.read_response(uploader, timeout: 60)
    assert_equal (rounds * ROUND_DATA).to_s, res.body, "the upload arrived whole"
  ensure
    stop = true
    sender&.kill
    uploader&.close
  end
end
