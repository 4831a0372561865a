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
      # Changed under @lock; the request loop reads them without it.
      @workers = []
      @room = true # can_spawn?, kept up to date under @lock
      # Threads serving a request, changed by each of them without a lock
      # (`+= 1` on an Integer runs whole under the GVL): lets give_way skip
      # looking at the others when there are none.
      @serving = 0
      @trim_requested = 0
      @spawned_total = 0
      @lock = Mutex.new
    end

    # One pool thread's state. Only that thread changes `state` and it does
    # so without a lock (one attribute write, whole under the GVL): counting
    # waiting and busy threads is left to the rare readers (stats, trim,
    # growth), so a request costs the pool no Mutex. `io`: marked
    # I/O-bound; changed under the pool's lock.
    class Worker
      attr_accessor :thread, :state, :io
    end

    # Worker#state: inside Native::Server#next_request, or serving a
    # request (nil: starting, or between the two).
    WAITING = :waiting
    BUSY = :busy

    def spawn
      @lock.synchronize { @min.clamp(1, @max).times { spawn_thread } }
      start_trimmer
      self
    end

    def busy
      @lock.synchronize { count(BUSY) }
    end

    def running
      @lock.synchronize { @workers.count { |w| w.thread.alive? } }
    end

    def io_threads
      @lock.synchronize { @workers.count(&:io) }
    end

    # Puma's pool_capacity: requests the pool could take right now.
    def capacity
      @lock.synchronize { (count(WAITING) + (@max - @workers.count { |w| w.thread.alive? })).clamp(0, nil) }
    end

    # The runtime half of Puma's update_thread_pool_min_max: the pool grows
    # to the new max on demand and trims down to the new min when idle.
    def update_min_max(min, max)
      @lock.synchronize do
        @min = min
        @max = max
        @room = can_spawn?
      end
      start_trimmer
    end

    # Gives back one idle thread above min (Puma's trim), but never the
    # last waiting one: Puma starts a thread when a request is queued, this
    # pool only when a thread takes one and leaves nobody waiting. With
    # nobody waiting, new requests would queue behind the busy threads, and
    # with no thread left (min 0, the default) go unanswered for good.
    def trim
      @lock.synchronize do
        waiting = @workers.select { |w| w.state == WAITING }
        if waiting.size - @trim_requested > 1 && @workers.size - @trim_requested > @min
          @trim_requested += 1
          # next_request returns false; the thread sees the request.
          waiting.first.thread.wakeup
        end
      end
    rescue ThreadError
      nil
    end

    # env["puma.mark_as_io_bound"]: this thread waits on I/O; another may be
    # started in its place at once.
    def mark_as_io_bound(worker)
      @lock.synchronize do
        next if worker.io

        worker.io = true
        @room = can_spawn?
        spawn_thread if @room && count(WAITING).zero?
      end
    end

    def join(timeout = nil)
      deadline = timeout && (Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout)
      # Threads may still be added while we wait; look again until none is.
      loop do
        threads = @lock.synchronize { @workers.map(&:thread) }
        threads.each do |t|
          left = deadline && [deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC), 0].max
          t.join(left)
        end
        return true if @lock.synchronize { @workers.none? { |w| w.thread.alive? } }
        return false if deadline && Process.clock_gettime(Process::CLOCK_MONOTONIC) >= deadline
      end
    end

    def kill
      @trimmer&.kill
      @lock.synchronize { @workers.map(&:thread) }.each(&:kill)
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

    def count(state)
      @workers.count { |w| w.state == state }
    end

    # Puma's rule: threads marked I/O-bound beyond max_io_threads count
    # against max again. Called with @lock held.
    def can_spawn?
      io = @workers.count(&:io)
      extra_io = [io - @max_io_threads, 0].max
      (@workers.size - io) < (@max - extra_io)
    end

    # Called with @lock held.
    def spawn_thread
      number = (@spawned_total += 1)
      worker = Worker.new
      @workers << worker
      @room = can_spawn?
      worker.thread = Thread.new do
        Thread.current.name = "rustpuma threadpool #{format('%03d', number)}"
        @thread_hook&.call(:before_thread_start, @control)
        work(worker)
      ensure
        @lock.synchronize do
          @workers.delete(worker)
          @room = can_spawn?
        end
        @thread_hook&.call(:before_thread_exit)
      end
    rescue StandardError, NoMemoryError
      # No thread after all (ThreadError: resources): forget its place.
      @workers.delete(worker)
      @room = can_spawn?
      raise
    end

    # The request loop. A thread that takes a request and leaves nobody
    # waiting starts another while the pool has room.
    def work(worker)
      template = @handler.env_template(-> { mark_as_io_bound(worker) })
      while true # not `loop`: a block call per request
        worker.state = WAITING
        req = @native.next_request
        if req
          worker.state = BUSY
          @serving += 1
          grow if @room && @workers.none? { |w| w.state == WAITING }
          begin
            # (Inline, not a method: one call less per request.)
            if @fiber_per_request
              Fiber.new(blocking: true) { @handler.handle(req, template) }.resume
            else
              @handler.handle(req, template)
            end
          rescue StandardError => e
            @log_writer.unknown_error(e, "thread pool")
          ensure
            @serving -= 1
          end
          went_idle(worker) if @out_of_band
          break if worker.io && !rejoin_after_io(worker)

          give_way(worker) if @serving.positive?
        elsif req.nil? || leave_for_trim?(worker) # false: interrupted; Ruby has handled it
          break
        end
      end
    end

    def grow
      @lock.synchronize { spawn_thread if @room && count(WAITING).zero? }
    end

    # Runs the out_of_band hooks when this thread was the last busy one and
    # nothing is queued.
    def went_idle(worker)
      idle = @lock.synchronize do
        worker.state = nil
        count(BUSY).zero?
      end
      @thread_hook&.call(:out_of_band) if idle && @native.backlog.zero?
    end

    # Lets a pool thread that Ruby's timer stopped mid-request finish before
    # this one takes the next queued request with the GVL still held. Ruby
    # 3.1 hands the GVL over only when its holder blocks or after a 100 ms
    # time slice, so that request would wait whole slices while this thread
    # served dozens (docs/performance.md, "Rails p99"). Runnable (not
    # `stop?`) tells such a thread from one sleeping or blocked in I/O,
    # which has no use for the GVL. With nothing queued, parking releases
    # the GVL anyway.
    def give_way(worker)
      worker.state = nil # not BUSY while passing: nobody gives way to it
      return unless @workers.any? { |w| w.state == BUSY && !w.thread.stop? } && @native.backlog.positive?

      Thread.pass
    end

    # A trim asked a waiting thread to leave (it woke this one). It stays
    # if no other thread is waiting by now (see #trim); one that took a
    # request meanwhile either is seen busy here, or sees this one not
    # waiting any more and grows the pool.
    def leave_for_trim?(worker)
      @lock.synchronize do
        next false unless @trim_requested.positive?

        @trim_requested -= 1
        next false unless @workers.any? { |w| !w.equal?(worker) && w.state == WAITING }

        # Gone from the counts now, so that such a thread finds room.
        @workers.delete(worker)
        @room = can_spawn?
        worker.state = nil
        true
      end
    end

    # An I/O-bound thread becomes an ordinary one again if the pool has
    # room; otherwise it was an extra and ends (as in Puma).
    def rejoin_after_io(worker)
      @lock.synchronize do
        worker.io = false
        @room = can_spawn?
        @workers.size - 1 - @workers.count(&:io) < @max
      end
    end
  end
end
