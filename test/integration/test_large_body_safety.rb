# frozen_string_literal: true

require "support/integration_helper"
require_relative "../fixtures/large_body_parts"

# Large Array bodies are written by the reactor partly straight from the
# app's strings (ruby/pins.rs); streamed bodies by the pool thread with the
# GVL released. While a write waits on a client that does not read, Ruby
# threads run: GC compaction must not change a byte of what is sent, and a
# thread reaching into a request being written must get an IOError (not
# crash the process).
class TestLargeBodySafety < Minitest::Test
  include IntegrationHelper
  server_args "-t", "4:4", "test/fixtures/large_bodies.ru"

  # Far more than loopback socket buffers hold, so the server's write stays
  # blocked until we read.
  BYTES = 24 * 1024 * 1024

  # Requests a large body and waits for its first bytes: from then on the
  # server is inside the write, the GVL released, until we read the rest.
  def start_large(path)
    sock = connect
    sock.write(build(path))
    [sock, Timeout.timeout(10) { sock.readpartial(1024) }]
  end

  def assert_body(expected, raw)
    head, body = raw.split("\r\n\r\n", 2)
    assert_match(/^Content-Length: #{expected.bytesize}\r$/, head)
    assert_equal expected.bytesize, body.bytesize
    return if body == expected

    at = (0...expected.bytesize).find { |i| body.getbyte(i) != expected.getbyte(i) }
    flunk "body differs from byte #{at}: #{body.byteslice(at, 40).inspect} instead of " \
          "#{expected.byteslice(at, 40).inspect}"
  end

  def test_compaction_during_a_large_write_changes_no_byte
    seed = token
    sock, first = start_large("/big?seed=#{seed}&bytes=#{BYTES}")
    assert_equal "compacted", http("/compact?times=3").body
    assert_body(LargeBodyParts.build(seed, BYTES).join.b, first + read_to_eof(sock, 60))
  end

  # Ruby code that runs while the head is built (a header value's to_s)
  # may compact the heap after the server first looked at the body parts.
  [64 * 1024, 4 * 1024 * 1024].each do |bytes|
    define_method("test_compaction_while_the_head_is_built_#{bytes}_bytes") do
      seed = token
      sock = connect
      sock.write(build("/compact_in_head?seed=#{seed}&bytes=#{bytes}"))
      raw = read_to_eof(sock, 60)
      assert_match(/^x-gc: compacted\r$/, raw.split("\r\n\r\n", 2).first)
      assert_body(LargeBodyParts.build(seed, bytes).join.b, raw)
    end
  end

  # Ruby skips a GVL-released call whenever an interrupt is pending, most
  # often only the timer asking this thread to let the spinning one run: a
  # write skipped that way must be tried again, not end the response.
  def test_writes_skipped_for_a_pending_interrupt_are_retried
    chunks = 3000
    raw = read_to_eof(connect.tap { |s| s.write(build("/contended?chunks=#{chunks}")) }, 60)
    head, body = raw.split("\r\n\r\n", 2)
    assert_match(/^Transfer-Encoding: chunked\r$/, head)
    decoded = +""
    terminated = false
    until body.empty?
      size, rest = body.split("\r\n", 2)
      flunk "the response ends without its last chunk after #{decoded.bytesize} bytes" if rest.nil?
      n = Integer(size, 16)
      break terminated = true if n.zero? && rest == "\r\n"

      decoded << rest.byteslice(0, n)
      body = rest.byteslice(n + 2..)
    end
    assert_equal Array.new(chunks) { |i| "chunk #{i};" }.join, decoded
    assert terminated, "the last chunk must end the response"
  end

  def test_another_thread_reaching_a_request_mid_write_gets_an_io_error
    id = token
    sock, first = start_large("/reentry?id=#{id}&bytes=#{BYTES}")
    # The request is borrowed by a write, or its connection has gone to the
    # reactor with the streamed body: either way an IOError, never a panic.
    assert_match(/\AIOError: request (is in use by another thread|already finished)\z/, http("/poke?id=#{id}").body)
    assert_body(LargeBodyParts.build(id, BYTES).join.b, first + read_to_eof(sock, 60))
    assert_equal "ok", http("/ok").body
  end
end
