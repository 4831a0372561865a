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
                             clean_thread_locals: @options[:clean_thread_locals],
                             out_of_band: !Array(@options[:out_of_band]).empty?)
      @native.start
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

    # Ends the pool threads now (force_shutdown_after ran out).
    def kill
      @pool&.kill
    end

    def stats
      return {} unless @native

      {
        backlog: @native.backlog,
        running: @pool.running,
        pool_capacity: @pool.capacity,
        busy_threads: @pool.busy,
        max_threads: @pool.max,
        requests_count: @native.requests_count,
      }
    end

    private

    def supported_methods
      methods = @options[:supported_http_methods]
      return nil if methods == :any

      methods || Const::SUPPORTED_HTTP_METHODS
    end

    def native_options
      {
        first_data_timeout: @options[:first_data_timeout],
        persistent_timeout: @options[:persistent_timeout],
        http_content_length_limit: @options[:http_content_length_limit],
        max_keep_alive: @options[:max_keep_alive],
        enable_keep_alives: @options.fetch(:enable_keep_alives, true),
        errors_to_app: !@options[:lowlevel_error_handler].nil?,
        supported_http_methods: supported_methods,
        proxy_protocol: @options[:remote_address] == :proxy_protocol,
        debug: @log_writer.debug?,
        drain_on_shutdown: @options[:drain_on_shutdown] ? true : false,
      }
    end
  end
end
