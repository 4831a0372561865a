# frozen_string_literal: true

require "etc"
require_relative "advice"

module Rustpuma
  module Advice
    # Reads the samples Advice.window compares: per server process its
    # request phases (Native::Server#metrics, docs/observability.md "Data"),
    # its CPU time and the time its threads waited for a CPU; for the
    # machine, /proc/stat. The runner gives the processes
    # (Single#advice_processes: this one; Cluster#advice_processes: each
    # worker's last check-in, which carries `process_figures`).
    #
    # Called by the control app's /advice (ControlApp#advice) in the process
    # that serves it: a single-mode server or a cluster master.
    module Sampler
      module_function

      def sample(launcher)
        runner = launcher.runner
        {
          at: clock,
          cores: Configuration.available_processors,
          workers: launcher.options[:workers].to_i,
          machine: machine,
          processes: runner.respond_to?(:advice_processes) ? runner.advice_processes : [],
        }
      end

      # This process now: what a worker adds to its check-in, and what a
      # single-mode server reads for itself.
      def process_figures
        { clock: clock, cpu_seconds: Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID),
          runqueue_seconds: runqueue_seconds }
      end

      # One entry of a sample's processes from a server's metrics Hash and
      # the process figures taken with it.
      def process(id, figures, metrics)
        return nil unless figures && metrics && metrics[:phases]

        { id: id, at: figures[:clock], cpu_seconds: figures[:cpu_seconds],
          runqueue_seconds: figures[:runqueue_seconds], threads_max: metrics[:threads_max],
          phases: metrics[:phases] }
      end

      def clock
        Process.clock_gettime(Process::CLOCK_MONOTONIC)
      end

      # Seconds this process's threads spent runnable but not running (the
      # second field of each thread's /proc schedstat, in ns); nil where the
      # kernel does not keep it.
      def runqueue_seconds
        Dir.glob("/proc/self/task/*/schedstat").sum do |f|
          Integer(File.read(f).split[1]) / 1e9
        rescue SystemCallError, ArgumentError, TypeError
          0.0 # a thread that just ended
        end.then { |s| File.exist?("/proc/self/schedstat") ? s : nil }
      end

      # Jiffies since boot over all CPUs: { busy:, total: } (idle and iowait
      # are not busy), or nil without /proc.
      def machine
        fields = File.foreach("/proc/stat").first.split[1..].map { |v| Integer(v) }
        total = fields.first(8).sum
        { busy: total - fields[3] - fields[4].to_i, total: total }
      rescue SystemCallError, ArgumentError, TypeError, NoMethodError
        nil
      end
    end
  end
end
