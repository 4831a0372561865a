# --pin: the load side on one CPU, the server under test on the other, so a
# cluster row shows what the server does with a core of its own instead of
# a share it fights wrk for (issue 12, point 4: -w 2 against -w 1). The
# harness pins itself; wrk, the upload client's threads and the helper
# processes inherit its affinity. Uses taskset(1) from util-linux.
require "etc"

module Bench
  module Pin
    LOAD_CPU = 0
    SERVER_CPU = 1

    class << self
      def enabled? = @enabled || false

      def enable!
        abort "--pin needs taskset (util-linux)" unless system("command -v taskset >/dev/null")
        abort "--pin needs 2 CPUs, this machine has #{Etc.nprocessors}" if Etc.nprocessors < 2
        # -a: every thread this process already has, not only the main one.
        ok = system("taskset", "-a", "-p", "-c", LOAD_CPU.to_s, Process.pid.to_s, out: File::NULL)
        abort "--pin: taskset could not pin bench/run to CPU #{LOAD_CPU}" unless ok
        @enabled = true
      end

      # The server's command line; its workers inherit the affinity.
      def wrap(argv) = enabled? ? ["taskset", "-c", SERVER_CPU.to_s, *argv] : argv

      def describe
        return "none (wrk, the helpers and the server share every CPU)" unless enabled?

        "bench/run, wrk and the helpers on CPU #{LOAD_CPU}, the server on CPU #{SERVER_CPU} (--pin)"
      end
    end
  end
end
