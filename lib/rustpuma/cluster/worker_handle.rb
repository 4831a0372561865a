# frozen_string_literal: true

require_relative "../runner"

module Rustpuma
  class Cluster < Runner
    # The master's view of one worker process: its index and pid, the phase
    # (code generation) it was started in, whether it has booted, and the last
    # status it checked in with. Timeouts are computed from the last check-in.
    class WorkerHandle
      # Stats that are maxima: a worker resets its own at every check-in, so
      # the master keeps the highest seen until its stats are read (Puma's
      # WORKER_MAX_KEYS).
      MAX_KEYS = %i[backlog_max reactor_max].freeze

      attr_reader :index, :signal, :last_checkin, :last_status, :started_at
      # The Process::Status once reaped (after_worker_shutdown reads it).
      attr_accessor :pid, :phase, :process_status
      # Resident memory as the master last measured it; the request count
      # after which this worker is replaced (worker_max_requests), or nil.
      attr_accessor :rss_bytes, :max_requests
      # Why it is being replaced (a Recycler reason) while its replacement
      # boots; nil for a worker in service.
      attr_reader :retiring

      def initialize(index, pid, phase, options)
        @index = index
        @pid = pid
        @phase = phase
        @options = options
        @booted = false
        @term = false
        @signal = "TERM"
        @first_term_at = nil
        @started_at = Time.now
        @last_checkin = Time.now
        @last_status = {}
        @max = Hash.new(0)
        @retiring = nil
      end

      def retire!(reason)
        @retiring = reason
      end

      def retiring?
        !@retiring.nil?
      end

      def booted?
        @booted
      end

      def boot!
        @booted = true
        @last_checkin = Time.now
      end

      def uptime
        Time.now - @started_at
      end

      # Status: a Hash from the worker's check-in (Pipe::CHECK_IN).
      def ping!(status)
        @last_checkin = Time.now
        MAX_KEYS.each do |key|
          next unless status.key?(key)

          @max[key] = [@max[key], status[key].to_i].max
          status[key] = @max[key]
        end
        @last_status = status
      end

      def reset_max
        @max.clear
      end

      # When the worker is overdue: worker_boot_timeout until it has booted,
      # worker_timeout after.
      def ping_timeout
        @last_checkin + (@booted ? @options[:worker_timeout] : @options[:worker_boot_timeout]).to_f
      end

      # The worker said it is shutting down (it got TERM from elsewhere).
      def term!
        @term = true
      end

      def term?
        @term
      end

      # TERM, then KILL once worker_shutdown_timeout has passed since the
      # first TERM (called repeatedly while waiting).
      def term
        if @first_term_at && Time.now - @first_term_at > @options[:worker_shutdown_timeout].to_f
          @signal = "KILL"
        else
          @term = true
          @first_term_at ||= Time.now
        end
        Process.kill(@signal, @pid) if @pid
      rescue Errno::ESRCH
        nil
      end

      def kill
        @signal = "KILL"
        @term = true
        Process.kill("KILL", @pid) if @pid
      rescue Errno::ESRCH
        nil
      end

      def hup
        Process.kill("HUP", @pid) if @pid
      rescue Errno::ESRCH
        nil
      end

      def to_status
        {
          started_at: @started_at.utc.iso8601,
          pid: @pid,
          index: @index,
          phase: @phase,
          booted: @booted,
          last_checkin: @last_checkin.utc.iso8601,
          last_status: @last_status,
          # rustpuma's (Puma's keys above unchanged):
          rss_bytes: @rss_bytes,
          max_requests: @max_requests,
          retiring: @retiring,
        }
      end
    end
  end
end
