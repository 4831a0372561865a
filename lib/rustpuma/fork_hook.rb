# frozen_string_literal: true

module Rustpuma
  # Every Ruby-level fork (`fork`, `Process.fork`, `IO.popen("-")`) goes
  # through `Process._fork` (Ruby 3.1+), which this wraps: just before the
  # fork, each native server of this process parks its reactor thread where
  # it holds no lock; in the child, the native core closes exactly the
  # descriptors it owned (its epoll and eventfd, listener copies, client
  # connections, relayed-hijack sockets, spilled bodies: ext's fds.rs), and
  # the inherited native objects become inert; in the parent the reactors
  # go on.
  #
  # Also keeps the descriptors the core handed to Ruby (hijacked sockets,
  # body files for rack.input): a worker forked by worker 0 (fork_worker)
  # closes them with `close_handed_out`; other forks leave them to the app,
  # which may fork on purpose to hand a hijacked socket to a child.
  module ForkHook
    @servers = ObjectSpace::WeakMap.new
    @handed_out = ObjectSpace::WeakMap.new

    class << self
      # A started Native::Server of this process.
      def server_started(native)
        @servers[native] = true
      end

      # An IO wrapping a descriptor the core gave the app.
      def handed_out(io)
        @handed_out[io] = true
        io
      end

      def close_handed_out
        @handed_out.each_key { |io| io.close unless io.closed? }
        @handed_out = ObjectSpace::WeakMap.new
      end

      def before_fork
        @servers.each_key(&:pause_for_fork)
      end

      def after_fork_parent
        @servers.each_key(&:resume_after_fork)
      end

      def after_fork_child
        Native.after_fork_child
        @servers = ObjectSpace::WeakMap.new
      end
    end

    # Prepended to Process's singleton class.
    module Wrapper
      def _fork
        ForkHook.before_fork
        pid = super
        pid.zero? ? ForkHook.after_fork_child : ForkHook.after_fork_parent
        pid
      rescue StandardError
        ForkHook.after_fork_parent # the fork failed: the reactors go on
        raise
      end
    end

    Process.singleton_class.prepend(Wrapper)
  end
end
