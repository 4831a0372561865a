# frozen_string_literal: true

module Rustpuma
  # The Ruby threads that run the app. Each one parks inside
  # Native::Server#next_request with the GVL released, so an idle pool costs
  # Ruby nothing; it holds the GVL only while Handler runs the app.
  #
  # Created by Server; threads end by themselves once the native server has
  # stopped and handed out its last request.
  class ThreadPool
    # Puma's auto_trim_time: how often a pool with min < max gives back one
    # idle thread above min.
    AUTO_TRIM_SECONDS = 30

    attr_reader :min, :max

    # `thread_hook` is called with :before_thread_start (and a
    # ServerPluginControl, as Puma passes) / :before_thread_exit on each pool
    # thread, and with :out_of_band when the pool has gone idle (Puma's
    # out_of_band hooks). `fiber_per_request` runs every request in a new
    # Fiber, so fiber-local values do not outlive it.
    #
    # Like Puma, the pool starts `min` threads (at least one: somebody has to
    # take the first request) and grows up to `max`: a thread that takes a
    # request and leaves nobody waiting starts another, so one thread is
    # always ready for the next request. (Puma grows when its queue is
    # longer than the number of waiting threads; our queue is in Rust, so
    # the spare thread is what notices it.) Threads that marked themselves
    # I/O-bound (env["puma.mark_as_io_bound"]) do not count against `max`,
    # up to `max_io_threads` of them.
    def initialize(native, handler, max:, log_writer:, min: max, thread_hook: nil, fiber_per_request: false,
                   out_of_band: false, max_io_threads: 0, control: nil, auto_trim: AUTO_TRIM_SECONDS)
      @native = native
      @handler = handler
      @max = max
      @min = min.clamp(0, max)
      @log_writer = log_writer
      @thread_hook = thread_hook
      @fiber_per_request = fiber_per_request
      @out_of_band = out_of_band
      @max_io_threads = max_io_threads.to_i
      @control = control
      @auto_trim = auto_trim
      @threads = []
      @io_threads = []
      @parked = [] # threads inside next_request
      @trim_requested = 0
      @busy = 0
      @waiting = 0
      @spawned_total = 0
      @lock = Mutex.new
    end

    def spawn
      @lock.synchronize { @min.clamp(1, @max).times { spawn_thread } }
      start_trimmer
      self
    end

    def busy
      @lock.synchronize { @busy }
    end

    def running
      @lock.synchronize { @threads.count(&:alive?) }
    end

    def io_threads
      @lock.synchronize { @io_threads.size }
    end

    # Puma's pool_capacity: requests the pool could take right now.
    def capacity
      @lock.synchronize { (@waiting + (@max - @threads.count(&:alive?))).clamp(0, nil) }
    end

    # The runtime half of Puma's update_thread_pool_min_max: the pool grows
    # to the new max on demand and trims down to the new min when idle.
    def update_min_max(min, max)
      @lock.synchronize do
        @min = min
        @max = max
      end
      start_trimmer
    end

    # Gives back one idle thread above min (Puma's trim).
    def trim
      @lock.synchronize do
        if (@waiting - @trim_requested).positive? && @threads.size - @trim_requested > @min
          @trim_requested += 1
          @parked.first&.wakeup # next_request returns false; the thread sees the request
        end
      end
    rescue ThreadError
      nil
    end

    # env["puma.mark_as_io_bound"]: this thread waits on I/O; another may be
    # started in its place at once.
    def mark_as_io_bound(thread)
      @lock.synchronize do
        next if @io_threads.include?(thread)

        @io_threads << thread
        spawn_thread if @waiting.zero? && can_spawn?
      end
    end

    def join(timeout = nil)
      deadline = timeout && (Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout)
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
      @trimmer&.kill
      @lock.synchronize { @threads.dup }.each(&:kill)
    end

    private

    def start_trimmer
      return if @trimmer&.alive? || !@auto_trim || @min == @max

      @trimmer = Thread.new do
        Thread.current.name = "rustpuma threadpool trim"
        loop do
          sleep @auto_trim
          trim
        end
      end
    end

    # Puma's rule: threads marked I/O-bound beyond max_io_threads count
    # against max again.
    def can_spawn?
      io = @io_threads.size
      extra_io = [io - @max_io_threads, 0].max
      (@threads.size - io) < (@max - extra_io)
    end

    # Called with @lock held.
    def spawn_thread
      number = (@spawned_total += 1)
      @threads << Thread.new do
        Thread.current.name = "rustpuma threadpool #{format('%03d', number)}"
        @thread_hook&.call(:before_thread_start, @control)
        work
      ensure
        @lock.synchronize do
          @threads.delete(Thread.current)
          @io_threads.delete(Thread.current)
          @parked.delete(Thread.current)
        end
        @thread_hook&.call(:before_thread_exit)
      end
    end

    def work
      me = Thread.current
      mark_io = -> { mark_as_io_bound(me) }
      loop do
        @lock.synchronize do
          @waiting += 1
          @parked << me
        end
        req = @native.next_request
        leave = @lock.synchronize do
          @waiting -= 1
          @parked.delete(me)
          if req
            @busy += 1
            spawn_thread if @waiting.zero? && can_spawn?
            false
          elsif req == false && @trim_requested.positive?
            @trim_requested -= 1
            true
          end
        end
        break if leave || req.nil?
        next if req == false # interrupted: Ruby has handled the interrupt

        begin
          run(req, mark_io)
        rescue StandardError => e
          @log_writer.unknown_error(e, "thread pool")
        ensure
          idle = @lock.synchronize { (@busy -= 1).zero? }
          @thread_hook&.call(:out_of_band) if @out_of_band && idle && @native.backlog.zero?
        end
        break unless rejoin_after_io(me)
      end
    end

    def run(req, mark_io)
      if @fiber_per_request
        Fiber.new(blocking: true) { @handler.handle(req, mark_io) }.resume
      else
        @handler.handle(req, mark_io)
      end
    end

    # An I/O-bound thread becomes an ordinary one again if the pool has
    # room; otherwise it was an extra and ends (as in Puma).
    def rejoin_after_io(me)
      @lock.synchronize do
        next true unless @io_threads.include?(me)

        @io_threads.delete(me)
        @threads.size - 1 - @io_threads.size < @max
      end
    end
  end
end
