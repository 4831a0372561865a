# frozen_string_literal: true

module Rustpuma
  # What a before_thread_start hook (and a plugin) may do to its server, as
  # Puma's ServerPluginControl: read the pool's size and change it at run
  # time, e.g. `update_thread_pool_min_max(max: 16)`.
  class ServerPluginControl
    def initialize(server)
      @server = server
    end

    def max_threads
      @server.max_threads
    end

    def min_threads
      @server.min_threads
    end

    def update_thread_pool_min_max(min: min_threads, max: max_threads)
      @server.update_thread_pool_min_max(min: min, max: max)
    end
  end
end
