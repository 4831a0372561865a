# frozen_string_literal: true

require "support/helper"

# A CPU-bound app on `-t 3:3` with more connections than threads (the
# bench's Rails rows). Ruby 3.1 hands the GVL to a waiting thread only when
# the holder blocks, or when the 100 ms time slice of its timer runs out.
# A pool thread that went on to the next queued request while the timer
# had stopped another pool thread mid-request left that request behind for
# whole time slices (100-200 ms at the 99th percentile of the rails-api
# row) while it served dozens of others. Between two requests a pool
# thread now lets such a thread finish first (ThreadPool#give_way).
# Counts requests, not time: fails 4 of 4 runs without the Thread.pass.
class TestGvlFairness < Minitest::Test
  APP = File.join(FIXTURES, "cpu_bound.ru")
  CLIENTS = 12
  PER_CLIENT = 150

  def test_a_request_inside_the_app_is_not_overtaken_by_many_others
    server = ServerProcess.new("-t", "3:3", APP).start
    clients = CLIENTS.times.map do
      Thread.new do
        socket = server.connect
        PER_CLIENT.times do
          response = RawHTTP.request(socket, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
          raise "unexpected #{response&.status}" unless response&.status == 200
        end
      ensure
        socket&.close
      end
    end
    clients.each(&:join)
    max_overtaken, done = RawHTTP.get(server.host, server.port, "/report").body.split.map { |s| Integer(s) }
    assert_equal CLIENTS * PER_CLIENT, done
    # With three threads a request can fairly be overtaken by the requests
    # the other two were in the middle of, and a few more where Ruby's
    # timer preempts a thread (the handover then goes round the queue
    # once); a request left waiting for a time slice is overtaken by as
    # many requests as fit in it (dozens).
    assert_operator max_overtaken, :<=, 8, "a request waited while #{max_overtaken} others were served"
  ensure
    clients&.each { |t| t.kill.join }
    server&.stop
  end
end
