# frozen_string_literal: true

# What every test file loads first (`require "support/helper"`): minitest,
# the server-process and raw-HTTP helpers, a time bound on every test.
TEST_DIR = File.expand_path("..", __dir__)
$LOAD_PATH.unshift File.expand_path("../lib", TEST_DIR)
$LOAD_PATH.unshift TEST_DIR

require "minitest/autorun"
require "socket"
require "timeout"
require_relative "server_process"
require_relative "raw_http"

# Every integration test is bounded: a hung server fails the test instead of
# hanging CI.
module BoundedTest
  TEST_TIMEOUT = Integer(ENV.fetch("RUSTPUMA_TEST_TIMEOUT", 60))

  # A class that needs longer (a full cargo build) defines TIME_LIMIT.
  def run
    limit = self.class.const_defined?(:TIME_LIMIT) ? self.class::TIME_LIMIT : TEST_TIMEOUT
    Timeout.timeout(limit, Timeout::Error, "test exceeded #{limit}s") { super }
  end
end

# How a server stopped by a signal ends, as Puma 8 with its default
# raise_exception_on_sigterm true: TERM ends the process by SIGTERM (143 in
# a shell) once the graceful stop is over; INT exits 0.
module StopStatus
  def assert_clean_stop(status, sig = "TERM", msg = nil)
    if sig == "TERM"
      assert status.signaled? && status.termsig == Signal.list["TERM"], msg || "expected to end by SIGTERM: #{status.inspect}"
    else
      assert_equal 0, status.exitstatus, msg || status.inspect
    end
  end
end

module Minitest
  class Test
    prepend BoundedTest
    include StopStatus
  end
end

FIXTURES = File.join(TEST_DIR, "fixtures")

require "rustpuma/default_bind"
# Puma 8's default host as it appears in a bind: `[::]` where the machine
# has IPv6, else `0.0.0.0`.
DEFAULT_HOST = Rustpuma::DefaultBind.ipv6_available? ? "[::]" : "0.0.0.0" unless defined?(DEFAULT_HOST)
