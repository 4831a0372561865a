# frozen_string_literal: true

require "support/hostile_support"

# With a single pool thread, a client that reads a large response slowly
# (here: not at all after the head) must not hold that thread: the response
# is handed to the reactor (a file body as the open file, an Array body as
# bytes), and the thread serves everyone else at once.
class TestSlowReaderFreesThread < Minitest::Test
  include HostileSupport

  BIG = 50_000_000
  REQUESTS = 100
  # Each request must be answered well within this: a thread held by the
  # slow reader would leave the first one waiting for the 10 s write
  # timeout. Generous because the test machine may be loaded; the observed
  # figure is printed.
  BOUND = 1.0

  def test_a_slow_reader_of_a_file_body_leaves_the_thread_free
    assert_thread_stays_free("/file?n=#{BIG}")
  end

  def test_a_slow_reader_of_an_array_body_leaves_the_thread_free
    assert_thread_stays_free("/big?n=#{BIG}")
  end

  private

  def assert_thread_stays_free(path)
    @srv = ServerProcess.new("-t", "1:1", APP).start
    slow = slow_reader_socket
    slow.write("GET #{path} HTTP/1.1\r\nHost: x\r\n\r\n")
    assert slow.wait_readable(30), "the slow reader's response never started"
    assert_match(/\AHTTP\/1.1 200 OK\r\n/, slow.readpartial(100))

    sock = TCPSocket.new(@srv.host, @srv.port)
    times = Array.new(REQUESTS) do
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      sock.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      res = RawHTTP.read_response(sock, timeout: 15)
      assert_equal 200, res&.status
      Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    end
    puts format("\n  #{path}: #{REQUESTS} requests beside a slow reader, slowest %.1f ms, median %.1f ms",
                times.max * 1000, times.sort[REQUESTS / 2] * 1000)
    assert_operator times.max, :<=, BOUND, "a request waited for the thread the slow reader holds"
  ensure
    sock&.close
    slow&.close
  end
end
