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
      @pool = ThreadPool.new(@native, handler,
                             max: [@options[:max_threads].to_i, 1].max,
                             log_writer: @log_writer,
                             thread_hook: @thread_hook)
      @native.start
      @pool.spawn
      self
    end

    # Graceful: listeners close, requests in flight finish, then the pool
    # threads end. Safe to call from a signal handler.
    def stop
      @native&.stop
    end

    def join(timeout = nil)
      @pool ? @pool.join(timeout) : true
    end

    def stats
      return {} unless @native

      {
        backlog: @native.backlog,
        running: @pool.running,
        pool_capacity: @pool.max - @pool.busy,
        busy_threads: @pool.busy,
        max_threads: @pool.max,
        requests_count: @native.requests_count,
      }
    end

    private

    def native_options
      {
        first_data_timeout: @options[:first_data_timeout],
        persistent_timeout: @options[:persistent_timeout],
        http_content_length_limit: @options[:http_content_length_limit],
        max_keep_alive: @options[:max_keep_alive],
        enable_keep_alives: @options.fetch(:enable_keep_alives, true),
        errors_to_app: !@options[:lowlevel_error_handler].nil?,
      }
    end
  end
end
