# frozen_string_literal: true

# Bounded waiting for what no line or answer announces (a process gone, a
# count in /proc, a hook's file): polls the block until it returns a true
# value (returned) and fails the test at the deadline.
module Polling
  INTERVAL = 0.05

  def wait_until(timeout = 10, message = "condition")
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    until (value = yield)
      flunk "timed out waiting for #{message}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      sleep INTERVAL
    end
    value
  end
end
