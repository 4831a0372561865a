# frozen_string_literal: true

require "support/helper"

# A process whose reactor thread died would keep its listener open and serve
# nobody. It must log why and exit non-zero instead (the cluster variant,
# where the master replaces the worker, is in test/cluster/).
class TestReactorDeath < Minitest::Test
  APP = File.join(FIXTURES, "faults.ru")

  def teardown
    @srv&.stop
  end

  def test_single_mode_process_exits_non_zero_when_the_reactor_panics
    @srv = ServerProcess.new("-t", "1:1", APP, env: { "RUSTPUMA_TEST_HOOKS" => "1" }).start
    sock = TCPSocket.new(@srv.host, @srv.port)
    sock.write("GET /crash HTTP/1.1\r\nHost: x\r\n\r\n")
    status = @srv.wait(15)
    sock.close
    refute_nil status, "the process must end"
    assert_equal 1, status.exitstatus, @srv.output
    assert_match(/! Reactor thread panicked: crash requested through the test hook/, @srv.output)
    # The panic message itself comes through the native logger, not Rust's
    # default hook (which holds std's stderr lock while it prints: a fork
    # at that moment would leave the lock held in the child).
    assert_match(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 thread 'rustpuma-reactor' panicked at /, @srv.output)
    refute_match(/^thread 'rustpuma-reactor' panicked/, @srv.output)
  end

  def test_hook_is_absent_without_the_env_var
    @srv = ServerProcess.new("-t", "1:1", APP).start
    sock = TCPSocket.new(@srv.host, @srv.port)
    res = RawHTTP.request(sock, "GET /crash HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_equal 500, res.status
    res = RawHTTP.request(sock, "GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_equal @srv.pid.to_s, res.body
    refute @srv.exited?
  ensure
    sock&.close
  end
end
