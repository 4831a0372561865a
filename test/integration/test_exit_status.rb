# frozen_string_literal: true

require "support/helper"
require "support/server_test_case"
require "tmpdir"
require "fileutils"

# raise_exception_on_sigterm, as Puma 8: true by default, so a server
# stopped by TERM finishes its graceful stop and then ends by SIGTERM
# (status 143 in a shell, which is what systemd and container runtimes
# expect); false makes it exit 0. INT always exits 0.
class TestExitStatus < Minitest::Test
  include ServerTestCase

  def term(srv)
    srv.signal("TERM")
    srv.wait(20)
  end

  def test_single_term_ends_by_sigterm
    pidfile = File.join(@dir, "server.pid")
    srv = start("--pidfile", pidfile, HELLO)
    status = term(srv)
    assert status.signaled?, status.inspect
    assert_equal Signal.list["TERM"], status.termsig
    assert_includes srv.output, "- Gracefully stopping, waiting for requests to finish"
    refute File.exist?(pidfile), "the graceful stop still runs to the end"
  end

  def test_single_term_with_raise_off_exits_0
    srv = start("-C", write_config("raise_exception_on_sigterm false\n"), HELLO)
    status = term(srv)
    assert_equal 0, status.exitstatus, status.inspect
    assert_includes srv.output, "- Goodbye!"
  end

  def test_cluster_term_ends_by_sigterm
    srv = start("-w", "2", HELLO)
    srv.wait_for_output(/Worker 1 \(PID: \d+\) booted/, 20)
    status = term(srv)
    assert_equal Signal.list["TERM"], status.termsig, status.inspect
    assert_includes srv.output, "- Gracefully shutting down workers..."
  end

  def test_cluster_term_with_raise_off_exits_0
    srv = start("-w", "2", "-C", write_config("raise_exception_on_sigterm false\n"), HELLO)
    srv.wait_for_output(/Worker 1 \(PID: \d+\) booted/, 20)
    assert_equal 0, term(srv).exitstatus
  end

  def test_int_exits_0
    srv = start(HELLO)
    srv.signal("INT")
    assert_equal 0, srv.wait(20).exitstatus
  end

  def test_shell_sees_143
    port = ServerProcess.free_port
    cmd = [RbConfig.ruby, "-I", File.join(ServerProcess::ROOT, "lib"), ServerProcess::EXE, "-b", "tcp://127.0.0.1:#{port}", HELLO]
    script = "#{cmd.map { |a| "'#{a}'" }.join(' ')} & pid=$!; " \
             "for i in $(seq 1 200); do (echo > /dev/tcp/127.0.0.1/#{port}) 2>/dev/null && break; sleep 0.05; done; " \
             "kill -TERM $pid; wait $pid; echo \"status=$?\""
    out = Timeout.timeout(30) { IO.popen(["bash", "-c", script], err: File::NULL, &:read) }
    assert_includes out, "status=143"
  end
end
