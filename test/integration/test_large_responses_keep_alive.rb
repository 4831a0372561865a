# frozen_string_literal: true

require "support/integration_helper"

# Issue 11, point 5: under `wrk -c8` against an 8 MiB body, about half of
# fresh server starts showed one to three wrk read errors. Each was a
# keep-alive connection closed before its response: the pool thread's write
# of a large body released the GVL with rb_thread_call_without_gvl2, which
# does not run the write at all while an interrupt is pending on the thread,
# and that was taken for a failed write. The pending interrupt was most
# often the GC's postponed job (finalizers to run, left by a GC that an
# allocation inside `respond` started), sometimes the GVL's time-slice
# timer. docs/performance.md has the trace. Large bodies now go through the
# reactor; these tests hold whichever path writes them.
class TestLargeResponsesKeepAlive < Minitest::Test
  include IntegrationHelper
  server_args "-t", "4:4", "test/fixtures/big_keep_alive.ru"

  # Over the size the pool threads write themselves (256 KiB), small enough
  # for a Ruby client to read hundreds of them in a few seconds.
  BYTES = 256 * 1024

  # One request on `sock`; returns [status, body bytes, declared length],
  # or how the exchange ended early.
  def exchange(sock, path)
    sock.write(build(path, keep_alive: true))
    head = +""
    head << sock.readpartial(16_384) until head.include?("\r\n\r\n")
    head, body = head.split("\r\n\r\n", 2)
    length = Integer(head[/^content-length: (\d+)\r?$/i, 1])
    body << sock.readpartial([length - body.bytesize, 262_144].min) while body.bytesize < length
    [Integer(head[%r{\AHTTP/1\.1 (\d+)}, 1]), body.bytesize, length]
  rescue EOFError, SystemCallError => e
    "closed after #{head.to_s.bytesize + body.to_s.bytesize} bytes (#{e.class})"
  end

  # Deterministic: a GC runs at every allocation until the response is
  # finished, and leaves a postponed job pending. With the pool writing in
  # `respond` and no retry, the second of these responses was lost (3 of 3).
  def test_a_gc_inside_respond_does_not_lose_the_response
    sock = connect
    5.times do |i|
      assert_equal [200, BYTES, BYTES], exchange(sock, "/gc_in_respond?bytes=#{BYTES}"), "request #{i + 1}"
    end
  end

  # What wrk does: eight keep-alive connections asking for large bodies
  # while four pool threads contend for the GVL. Whichever path writes the
  # body, no response may be lost (without the retry, about half the runs
  # lost one).
  def test_every_large_response_arrives_whole_on_a_kept_connection
    lost = Queue.new
    clients = Array.new(8) do |c|
      Thread.new do
        sock = connect
        150.times do |i|
          got = exchange(sock, "/?bytes=#{BYTES}")
          next if got == [200, BYTES, BYTES]

          lost << "connection #{c}, request #{i + 1}: #{got.inspect}"
          break
        end
      end
    end
    Timeout.timeout(50) { clients.each(&:join) }
    lost = Array.new(lost.size) { lost.pop }
    assert_empty lost, "#{lost.size} of 8 connections lost a response"
  end
end
