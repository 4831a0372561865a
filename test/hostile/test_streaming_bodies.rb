# frozen_string_literal: true

require "tmpdir"
require "support/helper"
require "support/polling"
require "support/certificates"
require "support/slow_reader_socket"

# Streaming (`each`) bodies go through a bounded per-connection queue that
# the reactor drains (stream_queue.rs): the pool thread walks the body while
# there is room and is free once the body is walked, however slowly the
# client reads. Also: such bodies arrive intact, a client that goes away
# stops the iteration, and a body that raises closes the connection.
class TestStreamingBodies < Minitest::Test
  include Polling

  APP = File.join(FIXTURES, "streaming.ru")
  FIFTY_MB = 50_000_000

  def start_server(*args)
    @srv = ServerProcess.new(*args, APP).start
  end

  def teardown
    @srv&.stop
    super
  end

  # What the fixture app records about stream `id` (see streaming.ru).
  def stream_status(id)
    sock = @srv.connect
    res = RawHTTP.request(sock, "GET /status?id=#{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout: 10)
    res.body
  ensure
    sock&.close
  end

  # The fixture's chunk `index` of `size` bytes.
  def chunk(index, size)
    stamp = format("%08d", index % 100_000_000)
    (stamp * ((size / 8) + 1))[0, size]
  end

  def expected_body(total, size)
    (0...total.fdiv(size).ceil).map { |i| chunk(i, [size, total - (i * size)].min) }.join
  end

  # A client with a tiny receive window: what it does not read stays on
  # the server's side.
  def slow_reader_socket
    SlowReaderSocket.connect(@srv.host, @srv.port)
  end

  def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  # Issue 11's test for streaming bodies: with one pool thread, a client
  # reading a 50 MB streamed body at ~1 KiB/s neither holds the thread nor
  # delays anyone; the app's `each` is over long before the client has read
  # the body. (Before the queue, the thread wrote the body itself and every
  # other request waited behind it.)
  def test_a_slow_reader_of_a_streamed_body_holds_no_thread
    start_server("-t", "1:1")
    slow = slow_reader_socket
    slow.write("GET /stream?id=slow&n=#{FIFTY_MB} HTTP/1.1\r\nHost: x\r\n\r\n")
    head = Timeout.timeout(10) { slow.gets("\r\n\r\n") }
    assert_match(%r{\AHTTP/1.1 200 }, head)
    received = head.bytesize
    reading = true
    reader = Thread.new do
      while reading # ~1 KiB/s
        data = slow.read_nonblock(256, exception: false)
        received += data.bytesize if data.is_a?(String)
        sleep 0.25
      end
    end

    sock = @srv.connect
    times = Array.new(100) do
      started = now
      res = RawHTTP.request(sock, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", timeout: 5)
      assert_equal "hello", res.body
      now - started
    end
    puts "\n  100 requests beside a slow streamed reader: max #{(times.max * 1000).round(1)} ms, " \
         "median #{(times.sort[50] * 1000).round(1)} ms"
    # A bound that a free thread meets on a loaded machine; a thread held
    # by the slow reader never answers at all.
    assert_operator times.max, :<=, 1.0

    status = wait_until(20, "the app's each to return") do
      s = stream_status("slow")
      s if s.include?("each_done=true")
    end
    assert_includes status, "yielded=#{FIFTY_MB}"
    assert_operator received, :<, FIFTY_MB / 10, "the slow client cannot have read the body yet"
  ensure
    reading = false
    reader&.join
    slow&.close
    sock&.close
  end

  def test_a_streamed_body_reaches_a_fast_client_intact_chunked_and_with_a_length
    start_server("-t", "1:1")
    total = 8_000_000
    size = 100_003
    expected = expected_body(total, size)
    sock = @srv.connect
    chunked = RawHTTP.request(sock, "GET /stream?id=c&n=#{total}&chunk=#{size} HTTP/1.1\r\nHost: x\r\n\r\n",
                              timeout: 30)
    assert_equal "chunked", chunked["transfer-encoding"]
    assert chunked.body == expected, "the chunked body arrived damaged (#{chunked.body.bytesize} bytes)"
    # Same connection: the streamed response completed and kept it.
    with_length = RawHTTP.request(sock, "GET /stream?id=l&n=#{total}&chunk=#{size}&length=1 HTTP/1.1\r\nHost: x\r\n\r\n",
                                  timeout: 30)
    assert_equal total.to_s, with_length["content-length"]
    assert_nil with_length["transfer-encoding"]
    assert with_length.body == expected, "the body with a length arrived damaged"
    assert_equal "hello", RawHTTP.request(sock, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").body
  ensure
    sock&.close
  end

  # Over TLS the reactor must flush what rustls holds before it waits for
  # the app's next chunk.
  def test_a_streamed_body_over_tls_arrives_intact
    Dir.mktmpdir do |dir|
      certs = Certificates.write(dir)
      @srv = ServerProcess.new("-t", "1:1", APP, bind: "ssl://127.0.0.1:0?cert=#{certs[:cert]}&key=#{certs[:key]}").start
      port = Integer(@srv.output[%r{Listening on ssl://[^\s]*:(\d+)}, 1])
      context = OpenSSL::SSL::SSLContext.new
      context.verify_mode = OpenSSL::SSL::VERIFY_NONE
      ssl = OpenSSL::SSL::SSLSocket.new(TCPSocket.new("127.0.0.1", port), context)
      ssl.sync_close = true
      ssl.connect
      total = 3_000_000
      size = 7_001
      res = RawHTTP.request(ssl, "GET /stream?id=tls&n=#{total}&chunk=#{size} HTTP/1.1\r\nHost: x\r\n\r\n", timeout: 30)
      assert res.body == expected_body(total, size), "the body arrived damaged over TLS"
      assert_equal "hello", RawHTTP.request(ssl, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").body
    ensure
      ssl&.close
    end
  end

  def test_a_client_that_disconnects_mid_stream_stops_the_iteration
    start_server("-t", "1:1")
    sock = @srv.connect
    sock.write("GET /stream?id=gone&n=#{100 * 1024 * 1024 * 1024} HTTP/1.1\r\nHost: x\r\n\r\n")
    Timeout.timeout(10) { sock.read(1024 * 1024) }
    sock.close
    status = wait_until(20, "the body to be closed") do
      s = stream_status("gone")
      s if s.include?("closed=true")
    end
    assert_includes status, "each_done=false"
  end

  # A client that stops reading: the queue fills up to
  # streaming_body_buffer_limit, the producer waits (memory stays bounded),
  # and once the client took nothing for the write timeout (10 s) the
  # reactor drops it and the waiting producer's iteration ends.
  def test_a_client_that_stops_reading_ends_the_iteration_after_the_write_timeout
    limit = 1024 * 1024
    Dir.mktmpdir do |dir|
      config = File.join(dir, "stream.rb")
      File.write(config, "streaming_body_buffer_limit #{limit}\n")
      start_server("-t", "2:2", "-C", config)
    end
    slow = slow_reader_socket
    slow.write("GET /stream?id=stuck&n=#{10 * 1024 * 1024 * 1024} HTTP/1.1\r\nHost: x\r\n\r\n")
    Timeout.timeout(10) { slow.gets("\r\n\r\n") }
    started = now
    status = wait_until(30, "the body to be closed") do
      s = stream_status("stuck")
      s if s.include?("closed=true")
    end
    assert_includes status, "each_done=false"
    yielded = Integer(status[/yielded=(\d+)/, 1])
    assert_operator yielded, :<, limit + (8 * 1024 * 1024), "the queue bounded what the app could produce"
    assert_operator now - started, :>=, 5, "ended by the write timeout, not at once"
  ensure
    slow&.close
  end

  # after_reply runs once the response is on the wire: for a streamed body,
  # once the reactor has written all of it, not when `each` returns.
  def test_after_reply_waits_until_a_streamed_body_is_written
    start_server("-t", "2:2")
    total = 4_000_000
    slow = slow_reader_socket
    slow.write("GET /stream?id=ar&n=#{total}&after_reply=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    wait_until(20, "the app's each to return") { stream_status("ar").include?("each_done=true") }
    refute_includes stream_status("ar"), "after_reply", "after_reply ran before the client had the body"
    res = RawHTTP.read_response(slow, timeout: 30)
    assert_equal total, res.body.bytesize
    wait_until(10, "after_reply to run") { stream_status("ar").include?("after_reply=true") }
  ensure
    slow&.close
  end

  # The queue held part of the body when `each` raised: the client gets
  # what was queued, then the connection closes, with no last chunk and no
  # byte of the pipelined request's response.
  def test_a_body_raising_mid_stream_closes_the_connection_after_what_was_sent
    start_server("-t", "1:1")
    size = 64 * 1024
    sock = @srv.connect
    sock.write("GET /stream?id=r&n=10000000&raise_after=1000000 HTTP/1.1\r\nHost: x\r\n\r\n" \
               "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = Timeout.timeout(20) do
      data = +""
      data << sock.readpartial(65_536) while true
    rescue EOFError, Errno::ECONNRESET
      data
    end
    head, body = raw.b.split("\r\n\r\n", 2)
    assert_match(%r{\AHTTP/1.1 200 }, head)
    assert_match(/^transfer-encoding: chunked$/i, head)
    refute_match(%r{HTTP/1.1}, body, "a byte of another response was sent")
    decoded = +""
    rest = body
    while (m = rest.match(/\A([0-9a-f]+)\r\n/))
      n = m[1].to_i(16)
      break if n.zero? || rest.bytesize < m.end(0) + n + 2

      decoded << rest.byteslice(m.end(0), n)
      rest = rest.byteslice(m.end(0) + n + 2..)
    end
    assert_equal "", rest, "nothing but whole chunks, and no last chunk"
    chunks = (1_000_000.0 / size).ceil
    assert decoded == expected_body(chunks * size, size), "the chunks yielded before the raise arrive whole"
  ensure
    sock&.close
  end
end
