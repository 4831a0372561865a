# frozen_string_literal: true

require "tmpdir"
require "support/hostile_support"

# Clients that do not read their responses: the write timeout runs from the
# last write that made progress (sending us bytes does not extend it), and
# the response bytes the reactor holds in memory are bounded by
# slow_reader_buffer_limit, past which hand-offs wait.
class TestSlowReader < Minitest::Test
  include HostileSupport

  def test_client_that_stops_reading_is_dropped_even_while_it_keeps_sending
    start_server("--debug")
    sock = slow_reader_socket
    sock.write("GET /big?n=#{REACTOR_WRITTEN} HTTP/1.1\r\nHost: x\r\n\r\n")
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    closed = false
    # Each byte is a readable event on a connection the reactor is writing
    # to; the write timeout (10 s) must still end it.
    while Process.clock_gettime(Process::CLOCK_MONOTONIC) - started < 30
      begin
        sock.write("x")
      rescue Errno::ECONNRESET, Errno::EPIPE
        closed = true
        break
      end
      sleep 0.25 # the client's pace, not a synchronisation
    end
    assert closed, "a client that reads nothing for 30 s must have been dropped"
    assert_match(/% Write timeout: 127.0.0.1 took no response bytes/, @srv.output, "logged at debug")
    assert_equal 200, well_behaved_get
  ensure
    sock&.close
  end

  # Past slow_reader_buffer_limit the next hand-off waits (its pool thread
  # holds the response) until the reactor drains, instead of growing
  # memory; nobody is shed. A response larger than the whole budget still
  # goes when nothing else is held.
  def test_past_the_budget_a_hand_off_waits_until_bytes_drain
    Dir.mktmpdir do |dir|
      config = File.join(dir, "rustpuma.rb")
      File.write(config, "slow_reader_buffer_limit #{BUDGET}\n")
      @srv = ServerProcess.new("-t", "1:1", "--debug", "-C", config, APP).start
      size = REACTOR_WRITTEN # > BUDGET
      stalled = slow_reader_socket
      stalled.write("GET /big?n=#{size} HTTP/1.1\r\nHost: x\r\n\r\n")
      assert stalled.wait_readable(15), "a response larger than the budget goes when nothing else is held"
      waiting = slow_reader_socket
      waiting.write("GET /big?n=#{size} HTTP/1.1\r\nHost: x\r\n\r\n")
      @srv.wait_for_output("% Response to 127.0.0.1 waits", 15)

      # The only pool thread waits with the second response: nobody else
      # is served until the stalled reader drains.
      probe = TCPSocket.new(@srv.host, @srv.port)
      probe.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      refute probe.wait_readable(1), "a hand-off past the budget must wait for the reactor to drain"

      assert_equal size, RawHTTP.read_response(stalled, timeout: 15)&.body&.bytesize, "the stalled reader's whole response"
      assert_equal size, RawHTTP.read_response(waiting, timeout: 15)&.body&.bytesize,
                   "the waiting hand-off proceeds once bytes drained, and is not shed"
      assert_equal 200, RawHTTP.read_response(probe, timeout: 15)&.status
      refute_match(/Shedding|Dropping/, @srv.output)
    ensure
      [stalled, waiting, probe].each { |s| s&.close }
    end
  end

  # Memory stays bounded even when slow readers keep making progress: a
  # hand-off that cannot fit for the whole write timeout is dropped with
  # its connection (logged), and the thread serves the next request. The
  # reader holding the budget is not shed.
  def test_a_hand_off_that_cannot_fit_within_the_write_timeout_is_dropped
    Dir.mktmpdir do |dir|
      config = File.join(dir, "rustpuma.rb")
      File.write(config, "slow_reader_buffer_limit #{BUDGET}\n")
      @srv = ServerProcess.new("-t", "1:1", "-C", config, APP).start
      trickle = slow_reader_socket
      trickle.write("GET /big?n=#{24 * BUDGET} HTTP/1.1\r\nHost: x\r\n\r\n")
      assert trickle.wait_readable(15)
      # ~10 KiB/s: progress keeps it alive, and it holds the budget for minutes.
      got = 0
      stop = false
      reader = Thread.new do
        until stop
          got += trickle.read_nonblock(1024, exception: false).then { |r| r.is_a?(String) ? r.bytesize : 0 }
          sleep 0.1
        end
      end

      dropped = slow_reader_socket
      dropped.write("GET /big?n=#{REACTOR_WRITTEN} HTTP/1.1\r\nHost: x\r\n\r\n")
      @srv.wait_for_output("! Dropping the response to 127.0.0.1", 30)
      assert_match(/over slow_reader_buffer_limit \(#{BUDGET} bytes\)/, @srv.output)
      res = begin
        RawHTTP.read_response(dropped, timeout: 5)
      rescue Errno::ECONNRESET, EOFError
        nil
      end
      # Closed, after whatever the first pass had written (a cut body).
      assert_operator res&.body.to_s.bytesize, :<, REACTOR_WRITTEN, "the dropped response's connection is closed"
      assert_equal 200, well_behaved_get, "the thread is free again"
      before = got
      eventually("the trickling reader holding the budget is still served, not shed") { got > before }
      refute_match(/Shedding/, @srv.output)
    ensure
      stop = true
      reader&.join(5)
      [trickle, dropped].each { |s| s&.close }
    end
  end

  # A string lent to many responses at once (an app constant) is in memory
  # once, so it counts against the budget once: a second slow reader of it
  # does not make the next hand-off wait, a different string does.
  def test_a_string_shared_by_responses_counts_once_against_the_budget
    Dir.mktmpdir do |dir|
      config = File.join(dir, "rustpuma.rb")
      File.write(config, "slow_reader_buffer_limit #{256 * 1024}\n")
      @srv = ServerProcess.new("-t", "1:1", "--debug", "-C", config, APP).start
      size = 600 * 1024 # what the kernel takes at once is far less
      readers = Array.new(2) do
        slow_reader_socket.tap do |s|
          s.write("GET /shared?n=#{size} HTTP/1.1\r\nHost: x\r\n\r\n")
          assert s.wait_readable(15), "the response started"
        end
      end
      assert_equal 200, well_behaved_get, "the thread is free: the second reader of the same string did not wait"
      refute_match(/% Response to .* waits/, @srv.output)

      # A string of its own does count: this one waits.
      readers << slow_reader_socket.tap { |s| s.write("GET /big?n=#{2 * size} HTTP/1.1\r\nHost: x\r\n\r\n") }
      @srv.wait_for_output("% Response to 127.0.0.1 waits", 15)
    ensure
      readers&.each(&:close)
    end
  end

  BUDGET = 128 * 1024
end
