# frozen_string_literal: true

require_relative "../runner"

module Rustpuma
  class Cluster < Runner
    # `worker_memory_limit` and `worker_max_requests`: says which worker is
    # due for a replacement and why. The master measures each worker's RSS
    # itself (from /proc, at every check), so a worker too busy or too
    # swollen to check in is still seen; the request count comes from the
    # worker's last check-in. Acting on the answer (booting the replacement
    # first, then stopping the old worker gracefully) is the Cluster's job.
    class Recycler
      REASONS = %i[memory max_requests].freeze

      def initialize(options, random: Random.new)
        @memory_limit = options[:worker_memory_limit]
        @max_requests = options[:worker_max_requests]
        @jitter = options[:worker_max_requests_jitter].to_i
        @random = random
      end

      def enabled?
        !(@memory_limit.nil? && @max_requests.nil?)
      end

      # The request limit of a worker about to be started: drawn once per
      # worker, so workers booted together are replaced at different times.
      def request_limit
        @max_requests && (@max_requests + @random.rand(0..@jitter))
      end

      # [reason, words for the log] when the worker is past a limit, else nil.
      def due(worker)
        rss = worker.rss_bytes
        if @memory_limit && rss && rss > @memory_limit
          return [:memory, "uses #{Recycler.megabytes(rss)} of memory (RSS), above " \
                           "worker_memory_limit #{Recycler.megabytes(@memory_limit)}"]
        end

        served = worker.last_status[:requests_count].to_i
        limit = worker.max_requests
        return unless limit && served >= limit

        [:max_requests, "has served #{served} requests (worker_max_requests: #{limit})"]
      end

      def self.megabytes(bytes)
        format("%.1f MB", bytes / 1024.0 / 1024)
      end
    end
  end
end
