# frozen_string_literal: true

require "tmpdir"
require "support/hostile_support"

# Clients that do not read their responses: the write timeout runs from the
# last write that made progress (sending us bytes does not extend it), and
# the response bytes the reactor holds for slow readers are bounded by
# slow_reader_buffer_limit.
class TestSlowReader < Minitest::Test
  include HostileSupport

  def test_client_that_stops_reading_is_dropped_even_while_it_keeps_sending
    start_server
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
    assert_equal 200, well_behaved_get
  ensure
    sock&.close
  end

  def test_slow_readers_past_the_limit_are_shed_and_others_served
    Dir.mktmpdir do |dir|
      config = File.join(dir, "rustpuma.rb")
      File.write(config, "slow_reader_buffer_limit #{256 * 1024}\n")
      start_server("-C", config)
      size = REACTOR_WRITTEN
      readers = Array.new(8) do
        s = slow_reader_socket
        s.write("GET /big?n=#{size} HTTP/1.1\r\nHost: x\r\n\r\n")
        s
      end
      @srv.wait_for_output("! Shedding slow client 127.0.0.1", 15)
      assert_match(/over slow_reader_buffer_limit \(262144 bytes\)/, @srv.output)
      assert_equal 200, well_behaved_get
      # The readers still connected get their whole response.
      whole = readers.count do |s|
        res = RawHTTP.read_response(s, timeout: 15)
        res && res.body.bytesize == size
      rescue Errno::ECONNRESET, IOError # EOFError included
        false
      end
      assert_operator whole, :>=, 1, "the first slow reader is kept"
      assert_operator whole, :<, 8, "at least one was shed"
    ensure
      readers&.each(&:close)
    end
  end
end
