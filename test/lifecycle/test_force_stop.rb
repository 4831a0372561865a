# frozen_string_literal: true

require "helper"

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
end
