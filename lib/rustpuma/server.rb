# frozen_string_literal: true

module Rustpuma
  # One serving process's server: the native reactor on the bound sockets
  # and the thread pool that runs the app. Used by the single-mode runner
  # (and by each cluster worker, after fork: nothing native starts before).
  class Server
    attr_reader :native, :pool

    def initialize(app, options, binder, log_writer, thread_hook: nil)
      @thread_hook = thread_hook
      @app = app
      @options = options
      @binder = binder
      @log_writer = log_writer
    end

    # Starts the reactor thread and the pool; returns immediately.
    def run
      @native = Native::Server.new(@binder.native_listeners, native_options)
      handler = Handler.new(@app, @options, @log_writer)
      max = [@options[:max_threads].to_i, 1].max
      @pool = ThreadPool.new(@native, handler,
                             max: max,
                             min: @options.fetch(:min_threads, max).to_i,
                             log_writer: @log_writer,
                             thread_hook: @thread_hook,
                             fiber_per_request: @options[:fiber_per_request] || @options[:clean_thread_locals],
                             out_of_band: !Array(@options[:out_of_band]).empty?,
                             max_io_threads: @options[:max_io_threads].to_i,
                             auto_trim: @options[:auto_trim_time] || ThreadPool::AUTO_TRIM_SECONDS,
                             control: ServerPluginControl.new(self))
      @native.start
      ForkHook.server_started(@native)
      @pool.spawn
      self
    end

    # How often idleness is checked: idle_timeout fires within this of the
    # deadline.
    IDLE_CHECK_INTERVAL = 0.05

    # `idle_timeout`: calls `on_idle` once no request has arrived for
    # `seconds` (and none is in progress), then `on_active` when one
    # arrives again (cluster workers report both to the master, as Puma's).
    def watch_idle(seconds, on_idle:, on_active: nil)
      Thread.new do
        Thread.current.name = "rustpuma idle timeout"
        clock = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) }
        last_count = @native.requests_count
        last_change = clock.call
        idle = false
        loop do
          sleep IDLE_CHECK_INTERVAL
          count = @native.requests_count
          if count != last_count || @pool.busy.positive?
            last_count = count
            last_change = clock.call
            if idle
              idle = false
              on_active&.call
            end
          elsif !idle && clock.call - last_change >= seconds
            idle = true
            on_idle.call
            break unless on_active # single mode: once is enough
          end
        end
      end
    end

    # Graceful: listeners close, requests in flight finish, then the pool
    # threads end. Safe to call from a signal handler.
    def stop
      @native&.stop
    end

    def join(timeout = nil)
      @pool ? @pool.join(timeout) : true
    end

    # `shutdown_debug`: every thread's backtrace, written straight to fd 1
    # (as Puma, with the pid on each line) so it gets out even mid-stop.
    def dump_threads(message)
      pid = Process.pid
      threads = Thread.list
      out = +"#{pid}: #{message}\n#{pid}: === Begin thread backtrace dump ===\n"
      threads.each_with_index do |thread, i|
        out << "#{pid}: Thread #{i + 1}/#{threads.size}: #{thread.inspect}\n"
        out << "#{pid}: #{Array(thread.backtrace).join("\n#{pid}: ")}\n\n"
      end
      out << "#{pid}: === End thread backtrace dump ===\n"
      $stdout.syswrite(out)
    rescue IOError, SystemCallError
      nil
    end

    # Ends the pool threads now (force_shutdown_after ran out).
    def kill
      @pool&.kill
    end

    # The end of serving, in single mode and in each cluster worker: the
    # listeners close, then requests in flight have force_shutdown_after to
    # finish before the pool threads are killed (`on_force` runs just
    # before). The block runs in between: the caller closes its own copies
    # of the listeners there. shutdown_debug dumps the threads at the start,
    # or (`:on_force`) only when they had to be killed.
    def shutdown(on_force: nil)
      stop
      dump_threads("Shutdown initiated") if @options[:shutdown_debug] == true
      yield if block_given?
      return if join(force_shutdown_after)

      dump_threads("Shutdown timeout exceeded") if @options[:shutdown_debug] == :on_force
      on_force&.call
      kill
    end

    # Puma 8's per-server stats, key for key. The maxima are since the
    # last call (Puma resets them on every read).
    def stats
      return {} unless @native

      backlog_max, reactor_max = @native.take_maxima
      backlog = @native.backlog
      {
        backlog: backlog,
        running: @pool.running,
        pool_capacity: @pool.capacity,
        busy_threads: @pool.busy + backlog,
        io_threads: @pool.io_threads,
        backlog_max: backlog_max,
        max_threads: @pool.max,
        requests_count: @native.requests_count,
        reactor_max: reactor_max,
        metrics: metrics,
      }
    end

    # rustpuma's own figures (docs/observability.md, "Data"): the native
    # server's request metrics, and what Ruby knows (threads_max, RSS).
    def metrics
      return {} unless @native

      @native.metrics.merge(threads_max: @pool.max, rss_bytes: Metrics.rss_bytes)
    end

    def min_threads
      @pool ? @pool.min : @options[:min_threads].to_i
    end

    def max_threads
      @pool ? @pool.max : @options[:max_threads].to_i
    end

    # Puma's Server#update_thread_pool_min_max (plugins and before_thread_start
    # hooks reach it through ServerPluginControl); refuses impossible values
    # with Puma's messages.
    def update_thread_pool_min_max(min: min_threads, max: max_threads)
      return @log_writer.log("`min' value cannot be greater than `max' value.") if min > max
      return @log_writer.log("`min' value cannot be less than 0") if min.negative?

      @pool&.update_min_max(min, max)
      @options[:min_threads] = min
      @options[:max_threads] = max
      nil
    end

    private

    # nil (wait for every request) unless `force_shutdown_after` says.
    def force_shutdown_after
      limit = @options[:force_shutdown_after]
      limit.nil? || limit.negative? ? nil : limit
    end

    def supported_methods
      methods = @options[:supported_http_methods]
      return nil if methods == :any

      methods || Const::SUPPORTED_HTTP_METHODS
    end

    # Every value the native core uses, defaults included: Native::Server.new
    # has none of its own and raises KeyError for a missing key.
    def native_options
      {
        first_data_timeout: @options[:first_data_timeout],
        persistent_timeout: @options[:persistent_timeout],
        write_timeout: Const::WRITE_TIMEOUT,
        http_content_length_limit: @options[:http_content_length_limit],
        max_keep_alive: @options[:max_keep_alive],
        # queue_requests false: Puma reads each request on a pool thread
        # with no reactor, so it never keeps a connection open; our reactor
        # always reads, and the observable part is the same: no keep-alive.
        enable_keep_alives: @options.fetch(:enable_keep_alives, true) && @options[:queue_requests] != false,
        errors_to_app: !@options[:lowlevel_error_handler].nil?,
        supported_http_methods: supported_methods,
        proxy_protocol: @options[:remote_address] == :proxy_protocol,
        debug: @log_writer.debug?,
        drain_on_shutdown: @options[:drain_on_shutdown] ? true : false,
        max_threads: @options[:max_threads].to_i,
        accept_delay: accept_delay,
        slow_reader_buffer_limit: @options[:slow_reader_buffer_limit],
        request_metrics: request_metrics?,
        streaming_body_buffer_limit: @options[:streaming_body_buffer_limit],
      }
    end

    # `request_metrics false`, or RUSTPUMA_REQUEST_METRICS=off in the
    # environment when the server starts (read here, after the app is
    # loaded, so a rackup file can set it: bench/apps/hello_metrics_off.ru).
    def request_metrics?
      @options.fetch(:request_metrics, true) != false && ENV["RUSTPUMA_REQUEST_METRICS"] != "off"
    end

    # wait_for_less_busy_worker applies with two workers or more, as in Puma.
    def accept_delay
      return nil unless @options[:workers].to_i >= 2

      @options[:wait_for_less_busy_worker].to_f
    end
  end
end
