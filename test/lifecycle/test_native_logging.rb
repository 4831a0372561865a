# frozen_string_literal: true

require "support/helper"

# Native log lines go through a queue to a logger thread: a supervisor that
# never reads our stderr must not freeze the reactor (before, the reactor
# itself wrote to fd 2 and blocked once the pipe was full).
class TestNativeLogging < Minitest::Test
  F_SETPIPE_SZ = 1031 # Linux fcntl: shrink the pipe so a few lines fill it
  F_GETPIPE_SZ = 1032

  def test_full_stderr_pipe_does_not_block_the_reactor
    err_r, err_w = IO.pipe
    err_w.fcntl(F_SETPIPE_SZ, 4096)
    pipe_size = err_w.fcntl(F_GETPIPE_SZ)
    srv = ServerProcess.new("-t", "1:1", File.join(FIXTURES, "faults.ru"), spawn_options: { err: err_w }).start
    err_w.close
    # Each malformed request makes the reactor log one line to stderr.
    300.times do
      sock = TCPSocket.new(srv.host, srv.port)
      sock.write("NOT HTTP AT ALL\r\n\r\n")
      Timeout.timeout(10) { sock.read }
      sock.close
    end
    sock = TCPSocket.new(srv.host, srv.port)
    res = RawHTTP.request(sock, "GET /pid HTTP/1.1\r\nHost: x\r\n\r\n", timeout: 10)
    assert_equal 200, res.status
    sock.close
    refute srv.exited?
    drained = Thread.new { err_r.read }
    srv.stop
    logged = drained.value
    assert_match(/malformed request/, logged)
    assert_operator logged.bytesize, :>, pipe_size, "the pipe must have been full while nobody read it"
  ensure
    srv&.stop
    err_r&.close
  end

  # The logger thread writes asynchronously; a process that ends right
  # after logging (TERM just after a rejected request) must still print the
  # line: the exit waits for the queue (Native.flush_log in an at_exit).
  def test_lines_logged_just_before_term_are_not_lost
    10.times do
      srv = ServerProcess.new("-t", "1:1", File.join(FIXTURES, "faults.ru")).start
      sock = TCPSocket.new(srv.host, srv.port)
      sock.write("NOT HTTP AT ALL\r\n\r\n")
      Timeout.timeout(10) { sock.read }
      sock.close
      srv.stop
      assert_match(/malformed request/, srv.output, "the parse-error line must reach stderr before the exit")
    ensure
      srv&.stop
    end
  end
end
