# frozen_string_literal: true

require "support/helper"

# Never a crashed server: a few hundred malformed or random requests (fixed
# seed, so a failure can be replayed), each on its own connection, some cut
# short; afterwards the server still answers a normal request, and every
# answer it gave to garbage was an error status, never a 2xx.
class TestGarbageInput < Minitest::Test
  HELLO = File.join(ServerProcess::ROOT, "examples", "hello.ru")
  SEED = 20_261_125
  PIECES = ["GET", "POST", " ", "/", "HTTP/1.1", "HTTP/1.0", "HTTP/9.9", "\r\n", "\n", "\r", "\0", ":",
            "Host: x", "Content-Length: ", "Transfer-Encoding: chunked", "-1", "99999999999999999999",
            "ffffffffffffffffff", "0", "\xff\xfe".b, "%00", "a" * 300, "\t", ";ext=1"].freeze

  def test_random_garbage_never_crashes_the_server
    server = ServerProcess.new("-t", "2:2", HELLO).start
    rng = Random.new(SEED)
    statuses = Hash.new(0)
    6.times do
      # 50 clients at a time, so that those left waiting for more bytes
      # share one short deadline instead of one each.
      batch = Array.new(50) do
        request = Array.new(rng.rand(1..25)) { PIECES.sample(random: rng) }.join.b
        request << rng.bytes(rng.rand(0..40)) if rng.rand < 0.3
        socket = server.connect
        begin
          socket.write(request)
          socket.close_write if rng.rand < 0.5
        rescue Errno::ECONNRESET, Errno::EPIPE
          nil
        end
        socket
      end
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 0.5
      batch.each do |socket|
        answer = read_with_deadline(socket, deadline)
        status = answer[%r{\AHTTP/1\.[01] (\d{3})}, 1]
        statuses[status || "none"] += 1
      rescue Errno::ECONNRESET
        statuses["reset"] += 1
      ensure
        socket.close
      end
    end
    refute server.exited?, "the server died:\n#{server.output}"
    assert_equal "Hello World\n", RawHTTP.get(server.host, server.port, "/").body
    ok = statuses.keys.grep(/\A2/)
    # Garbage can form a valid request by chance ("GET / HTTP/1.1\r\n\r\n"); it
    # must then be answered properly, so only check that errors dominate.
    assert_operator statuses.values_at(*ok).sum, :<, 150, statuses.inspect
    assert_operator statuses.keys.grep(/\A4|\A5/).size, :>, 0, statuses.inspect
  ensure
    server&.stop
  end

  private

  # A client that sent half a request waits for the server's timeout
  # (first_data_timeout, 30 s); the batch's half second is enough to see
  # every answer the server gives at once.
  def read_with_deadline(socket, deadline)
    left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
    return "" unless socket.wait_readable([left, 0.01].max)

    socket.read_nonblock(4096, exception: false).to_s
  rescue EOFError
    ""
  end
end
