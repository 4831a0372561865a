# frozen_string_literal: true

module Rustpuma
  # The Ruby threads that run the app. Each one parks inside
  # Native::Server#next_request with the GVL released, so an idle pool costs
  # Ruby nothing; it holds the GVL only while Handler runs the app.
  #
  # Created by Server; threads end by themselves once the native server has
  # stopped and handed out its last request.
  class ThreadPool
    attr_reader :min, :max

    # `thread_hook` is called with :before_thread_start / :before_thread_exit
    # on each pool thread, and with :out_of_band when the pool has gone idle
    # (Puma's out_of_band hooks). `clean_thread_locals` resets thread-local
    # variables after every request, as Puma's option does.
    #
    # Like Puma, the pool starts `min` threads (at least one: somebody has to
    # take the first request) and grows up to `max`: a thread that takes a
    # request and leaves nobody waiting starts another, so one thread is
    # always ready for the next request. (Puma grows when its queue is
    # longer than the number of waiting threads; our queue is in Rust, so
    # the spare thread is what notices it.)
    def initialize(native, handler, max:, log_writer:, min: max, thread_hook: nil, clean_thread_locals: false,
                   out_of_band: false)
      @native = native
      @handler = handler
      @max = max
      @min = min.clamp(1, max)
      @log_writer = log_writer
      @thread_hook = thread_hook
      @clean_thread_locals = clean_thread_locals
      @out_of_band = out_of_band
      @threads = []
      @busy = 0
      @waiting = 0
      @lock = Mutex.new
    end

    def spawn
      @lock.synchronize { @min.times { spawn_thread } }
      self
    end

    def busy
      @lock.synchronize { @busy }
    end

    def running
      @lock.synchronize { @threads.count(&:alive?) }
    end

    # Puma's pool_capacity: requests the pool could take right now.
    def capacity
      @lock.synchronize { @waiting + (@max - @threads.count(&:alive?)) }
    end

    def join(timeout = nil)
      deadline = timeout && Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      # Threads may still be added while we wait; look again until none is.
      loop do
        threads = @lock.synchronize { @threads.dup }
        threads.each do |t|
          left = deadline && [deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC), 0].max
          t.join(left)
        end
        return true if @lock.synchronize { @threads.none?(&:alive?) }
        return false if deadline && Process.clock_gettime(Process::CLOCK_MONOTONIC) >= deadline
      end
    end

    def kill
      @lock.synchronize { @threads.dup }.each(&:kill)
    end

    private

    def clean_thread_locals
      Thread.current.keys.each { |key| Thread.current[key] = nil unless key == :__recursive_key__ }
    end

    # Called with @lock held.
    def spawn_thread
      number = @threads.size + 1
      @threads << Thread.new do
        Thread.current.name = "rustpuma threadpool #{format('%03d', number)}"
        @thread_hook&.call(:before_thread_start)
        work
      ensure
        @thread_hook&.call(:before_thread_exit)
      end
    end

    def work
      loop do
        @lock.synchronize { @waiting += 1 }
        req = @native.next_request
        @lock.synchronize do
          @waiting -= 1
          if req
            @busy += 1
            spawn_thread if @waiting.zero? && @threads.size < @max
          end
        end
        break if req.nil?
        next if req == false # interrupted: Ruby has handled the interrupt

        begin
          @handler.handle(req)
        rescue StandardError => e
          @log_writer.unknown_error(e, "thread pool")
        ensure
          idle = @lock.synchronize { (@busy -= 1).zero? }
          clean_thread_locals if @clean_thread_locals
          @thread_hook&.call(:out_of_band) if @out_of_band && idle && @native.backlog.zero?
        end
      end
    end
  end
end
