# frozen_string_literal: true

require "support/helper"
require "tmpdir"

# A second Ctrl-C does not wait: while a graceful stop waits for a long
# request, INT again ends the process at once (Puma's behaviour).
class TestForceStop < Minitest::Test
  APP = File.join(FIXTURES, "app.ru")

  def test_second_int_forces_exit_without_waiting_for_the_request
    server = ServerProcess.new("-t", "2:2", APP).start
    socket = server.connect
    socket.write("GET /slow?s=30&token=force HTTP/1.1\r\nHost: x\r\n\r\n")
    server.wait_for_output("slow request started force")
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    server.signal("INT")
    server.wait_for_output("- Gracefully stopping")
    server.signal("INT")
    status = server.wait(10)
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    refute status.success?, "a forced stop exits non-zero"
    assert_includes server.output, "- Force stopping"
    assert_operator elapsed, :<, 30, "did not wait for the 30 s request"
  ensure
    socket&.close
    server&.stop
  end

  # force_shutdown_after kills the pool threads: the busy one (in the app)
  # and the idle ones parked in the native queue without the GVL, which only
  # a real unblocking function can wake.
  def test_force_shutdown_after_kills_busy_and_parked_pool_threads
    Dir.mktmpdir("rustpuma-force") do |dir|
      config = File.join(dir, "puma.rb")
      File.write(config, "force_shutdown_after 1\n")
      server = ServerProcess.new("-C", config, "-t", "3:3", APP).start
      socket = server.connect
      socket.write("GET /slow?s=30&token=forced HTTP/1.1\r\nHost: x\r\n\r\n")
      server.wait_for_output("slow request started forced")
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      server.signal("TERM")
      status = server.wait(15)
      elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
      assert_operator elapsed, :<, 10, "threads parked without the GVL must be killable"
      assert_includes server.output, "- Forcing shutdown"
      assert_clean_stop(status, "TERM", "a forced stop still ends by SIGTERM, as Puma 8")
    ensure
      socket&.close
      server&.stop
    end
  end
end
