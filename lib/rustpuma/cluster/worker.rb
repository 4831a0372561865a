# frozen_string_literal: true

require "json"

module Rustpuma
  class Cluster
    # One worker process, from just after the fork until it exits: runs the
    # worker hooks, loads the app unless the master preloaded it, serves it
    # with its own Server (native reactor + thread pool, created here, never
    # in the master), tells the master it booted and checks in every
    # worker_check_interval. It dies with the master: when the master's end
    # of the check pipe closes, the worker exits at once.
    #
    # Messages to the master, one line each (atomic pipe writes):
    #   b<pid>:<index>   booted          p<pid><json>   check-in with stats
    #   e<pid>           got TERM        t<pid>         exiting
    class Worker
      attr_reader :index, :master

      def initialize(index:, master:, launcher:, log_writer:, binder:, app:, pipes:)
        @index = index
        @master = master
        @launcher = launcher
        @config = launcher.config
        @options = launcher.options
        @log_writer = log_writer
        @binder = binder
        @app = app
        @check_pipe = pipes[:check_pipe]
        @worker_write = pipes[:worker_write]
        @write_lock = Mutex.new
      end

      def run
        Process.setproctitle(title)
        @stop_reader, @stop_writer = IO.pipe
        trap_signals
        watch_master

        @config.run_hooks(:before_worker_boot, @index)
        begin
          app = @app || @config.app
          @server = Server.new(app, @options, @binder, @log_writer,
                               thread_hook: ->(name) { @config.run_hooks(name) })
          @server.run
          # The native server holds duplicates; without these the listening
          # sockets close as soon as the server stops (new clients are then
          # refused, or served by the other workers, not left waiting).
          @binder.close(unlink: false)
        rescue Exception => e # rubocop:disable Lint/RescueException -- as Puma: any boot failure ends the worker
          @log_writer.log "! Unable to start worker"
          @log_writer.log "#{e.class}: #{e.message}"
          @log_writer.log Array(e.backtrace).first.to_s
          exit 1
        end

        return unless tell("b#{Process.pid}:#{@index}")

        start_check_in
        @stop_reader.read(1) # TERM (or the master's death) arrives here
        tell("e#{Process.pid}")
        @server.stop
        @server.join
        @config.run_hooks(:before_worker_shutdown, @index)
      ensure
        tell("t#{Process.pid}")
        @worker_write.close unless @worker_write.closed?
      end

      private

      def title
        @launcher.process_title("rustpuma: cluster worker #{@index}: #{@master}")
      end

      # The master's traps were inherited with the fork; a worker has its own.
      def trap_signals
        Signal.trap("TERM") { @stop_writer.write_nonblock(".", exception: false) }
        Signal.trap("INT", "IGNORE") # Ctrl-C reaches the whole group; the master decides
        %w[USR1 USR2 TTIN TTOU URG].each { |sig| Signal.trap(sig, "IGNORE") }
        Signal.trap("CHLD", "DEFAULT")
        Signal.trap("HUP") do
          @launcher.redirect_io if @options[:redirect_stdout] || @options[:redirect_stderr]
        end
      end

      # The master holds the only write end of the check pipe: EOF on it
      # means the master has died, and a worker without a master must go.
      def watch_master
        Thread.new do
          Thread.current.name = "rustpuma worker check"
          @check_pipe.wait_readable
          @log_writer.log "! Detected parent died, dying"
          exit!(1)
        end
      end

      def start_check_in
        interval = [@options[:worker_check_interval].to_f, 0.1].max
        Thread.new do
          Thread.current.name = "rustpuma worker stat"
          loop do
            break unless tell("p#{Process.pid}#{JSON.generate(@server.stats)}")

            sleep interval
          end
        end
      end

      # Returns false once the master is gone.
      def tell(line)
        @write_lock.synchronize { @worker_write.syswrite("#{line}\n") }
        true
      rescue SystemCallError, IOError
        false
      end
    end
  end
end
