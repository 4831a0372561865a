# frozen_string_literal: true

module Rustpuma
  # The launcher's lifecycle events, as Puma's Events: plugins subscribe with
  # `launcher.events.after_booted { … }` (or the older on_booted, on_restart,
  # on_stopped). Owned by the Configuration, which fires them together with
  # the config file's hooks of the same names (Configuration#run_hooks).
  class Events
    LIFECYCLE = %i[after_booted before_restart after_stopped].freeze
    OLD_NAMES = { on_booted: :after_booted, on_restart: :before_restart, on_stopped: :after_stopped }.freeze

    def initialize
      @hooks = Hash.new { |h, k| h[k] = [] }
    end

    # Runs the callbacks registered for +hook+, in registration order.
    def fire(hook, *args)
      @hooks[hook].each { |callback| callback.call(*args) }
    end

    # Registers an object responding to #call, or a block, for +hook+.
    def register(hook, obj = nil, &block)
      raise ArgumentError, "Specify either an object or a block, not both" if obj && block

      callback = obj || block
      @hooks[hook] << callback
      callback
    end

    LIFECYCLE.each do |name|
      define_method(name) { |&block| register(name, &block) }
      define_method(:"fire_#{name}!") { fire(name) }
    end

    # Puma 8 still accepts the Puma 6 names and warns, so do we.
    OLD_NAMES.each do |old, new|
      define_method(old) do |&block|
        warn "Use '#{new}', '#{old}' is deprecated and will be removed in v8"
        register(new, &block)
      end
    end
  end
end
