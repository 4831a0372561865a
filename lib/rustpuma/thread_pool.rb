# frozen_string_literal: true

module Rustpuma
  # The Ruby threads that run the app. Each one parks inside
  # Native::Server#next_request with the GVL released, so an idle pool costs
  # Ruby nothing; it holds the GVL only while Handler runs the app.
  #
  # Created by Server; threads end by themselves once the native server has
  # stopped and handed out its last request.
  class ThreadPool
    attr_reader :max, :busy

    # `thread_hook` is called with :before_thread_start / :before_thread_exit
    # on each pool thread, and with :out_of_band when the pool has gone idle
    # (Puma's out_of_band hooks). `clean_thread_locals` resets thread-local
    # variables after every request, as Puma's option does.
    def initialize(native, handler, max:, log_writer:, thread_hook: nil, clean_thread_locals: false,
                   out_of_band: false)
      @native = native
      @handler = handler
      @max = max
      @log_writer = log_writer
      @thread_hook = thread_hook
      @clean_thread_locals = clean_thread_locals
      @out_of_band = out_of_band
      @threads = []
      @busy = 0
      @busy_lock = Mutex.new
    end

    def spawn
      @max.times do |i|
        @threads << Thread.new do
          Thread.current.name = "rustpuma threadpool #{format('%03d', i + 1)}"
          @thread_hook&.call(:before_thread_start)
          work
        ensure
          @thread_hook&.call(:before_thread_exit)
        end
      end
      self
    end

    def running
      @threads.count(&:alive?)
    end

    def join(timeout = nil)
      deadline = timeout && Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      @threads.each do |t|
        left = deadline && [deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC), 0].max
        t.join(left)
      end
      @threads.none?(&:alive?)
    end

    def kill
      @threads.each(&:kill)
    end

    private

    def clean_thread_locals
      Thread.current.keys.each { |key| Thread.current[key] = nil unless key == :__recursive_key__ }
    end

    def work
      loop do
        req = @native.next_request
        break if req.nil?
        next if req == false # interrupted: Ruby has handled the interrupt

        @busy_lock.synchronize { @busy += 1 }
        begin
          @handler.handle(req)
        rescue StandardError => e
          @log_writer.unknown_error(e, "thread pool")
        ensure
          idle = @busy_lock.synchronize { (@busy -= 1).zero? }
          clean_thread_locals if @clean_thread_locals
          @thread_hook&.call(:out_of_band) if @out_of_band && idle && @native.backlog.zero?
        end
      end
    end
  end
end
