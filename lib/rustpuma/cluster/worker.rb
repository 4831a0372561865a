# frozen_string_literal: true

require "json"
require "socket"
require_relative "../runner"
require_relative "../advice_sampler"

module Rustpuma
  class Cluster < Runner
    # One worker process, from just after the fork until it exits: runs the
    # worker hooks, loads the app unless the master preloaded it, serves it
    # with its own Server (native reactor + thread pool, created here, never
    # in the master), tells the master it booted and checks in every
    # worker_check_interval. It dies with the master: when the master's end
    # of the check pipe closes, the worker exits at once.
    #
    # It talks to the master in the messages of cluster/pipe.rb. With
    # `fork_worker`, worker 0 also reads the master's fork pipe: a worker it
    # forks is a normal worker from then on.
    # Worker 0 keeps serving while it forks. The fork hook (fork_hook.rb)
    # parks worker 0's reactor for the fork and, in the child, closes the
    # descriptors worker 0's native core owns and makes its native objects
    # inert; the child also closes the sockets and files worker 0's server
    # handed to its app (hijacks, uploads), then builds its own Server,
    # exactly as a worker forked by the master does.
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
        @fork_pipe = pipes[:fork_pipe]
        @write_lock = Mutex.new
        @children = {} # pid => index, the workers this one forked (worker 0)
        @stopping = false
      end

      def run
        Process.setproctitle(title)
        @stop_reader, @stop_writer = IO.pipe
        trap_signals
        watch_master

        @config.run_hooks(:before_worker_boot, @index)
        begin
          @app ||= @config.app
          @server = Server.new(@app, @options, @binder, @log_writer,
                               thread_hook: ->(name, *args) { @config.run_hooks(name, *args) })
          @server.run
          # The native server holds duplicates; without these the listening
          # sockets close as soon as the server stops (new clients are then
          # refused, or served by the other workers, not left waiting).
          # Worker 0 under fork_worker keeps them for the workers it forks
          # and closes them when it stops.
          @binder.close(unlink: false) unless fork_parent?
        rescue Exception => e # rubocop:disable Lint/RescueException -- as Puma: any boot failure ends the worker
          @log_writer.log "! Unable to start worker"
          @log_writer.log "#{e.class}: #{e.message}"
          @log_writer.log Array(e.backtrace).first.to_s
          exit 1
        end

        return unless tell("#{Pipe::BOOTED}#{Process.pid}:#{@index}")
        @log_writer.debug_loaded_extensions("Loaded Extensions - worker #{@index}:")

        if (idle = @options[:idle_timeout])
          @server.watch_idle(idle, on_idle: -> { tell("#{Pipe::IDLE}#{Process.pid}") },
                                   on_active: -> { tell("#{Pipe::ACTIVE}#{Process.pid}") })
        end

        start_check_in
        start_fork_loop if fork_parent?
        @stop_reader.read(1) # TERM (or the master's death) arrives here
        @stopping = true
        tell("#{Pipe::TERM_RECEIVED}#{Process.pid}")
        # force_shutdown_after applies in workers too (as Puma's pool
        # shutdown).
        @server.shutdown do
          if fork_parent?
            @binder.close(unlink: false)
            @fork_pipe.close unless @fork_pipe.closed? # ends the fork loop
          end
        end
        @config.run_hooks(:before_worker_shutdown, @index)
      ensure
        tell("#{Pipe::EXITING}#{Process.pid}")
        @worker_write.close unless @worker_write.closed?
      end

      private

      # Worker 0 in fork_worker mode: the one that forks the others.
      def fork_parent?
        !@fork_pipe.nil?
      end

      def title
        @launcher.process_title("rustpuma: cluster worker #{@index}: #{@master}")
      end

      # The master's traps were inherited with the fork; a worker has its own.
      def trap_signals
        Signal.trap("TERM") { @stop_writer.write_nonblock(".", exception: false) }
        Signal.trap("INT", "IGNORE") # Ctrl-C reaches the whole group; the master decides
        %w[USR1 USR2 TTIN TTOU URG].each { |sig| Signal.trap(sig, "IGNORE") }
        if fork_parent?
          @chld_reader, @chld_writer = IO.pipe
          Signal.trap("CHLD") { @chld_writer.write_nonblock(".", exception: false) }
        else
          Signal.trap("CHLD", "DEFAULT")
        end
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
            # `process`: CPU figures taken with the stats, for /advice.
            status = @server.stats.merge(process: Advice::Sampler.process_figures)
            break unless tell("#{Pipe::CHECK_IN}#{Process.pid}#{JSON.generate(status)}")

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

      # -- fork_worker (worker 0) ------------------------------------------------

      def start_fork_loop
        Thread.new do
          Thread.current.name = "rustpuma worker fork"
          buffer = +""
          loop do
            ready, = IO.select([@fork_pipe, @chld_reader])
            reap_children if ready.include?(@chld_reader)
            next unless ready.include?(@fork_pipe)

            buffer << @fork_pipe.read_nonblock(4096)
            while (nl = buffer.index("\n"))
              fork_request(buffer.slice!(0, nl + 1).chomp)
            end
          rescue IO::WaitReadable
            next
          rescue IOError, Errno::EBADF # EOFError included
            break # stopping: the pipe was closed
          rescue StandardError => e
            @log_writer.unknown_error(e, "fork loop")
          end
        end
      end

      def fork_request(line)
        case line[0]
        when Pipe::REFORK_START then @config.run_hooks(:before_refork, nil)
        when Pipe::REFORK_DONE then @config.run_hooks(:after_refork, nil)
        else
          idx = Integer(line, exception: false)
          fork_worker(idx) if idx&.positive? && !@stopping
        end
      end

      def fork_worker(idx)
        @config.run_hooks(:before_worker_fork, idx)
        pid = Process.fork { forked_worker(idx) }
        @children[pid] = idx
        @config.run_hooks(:after_worker_fork, idx)
        tell("#{Pipe::FORKED}#{pid}:#{idx}")
      rescue SystemCallError => e
        @log_writer.log "! Could not fork worker #{idx}: #{e.message}"
      end

      # A worker this one forked has exited: reap it (only our own children,
      # never the app's) and wake the master up so it replaces it now.
      def reap_children
        @chld_reader.read_nonblock(1024, exception: false)
        reaped = @children.keys.select do |pid|
          Process.wait(pid, Process::WNOHANG)
        rescue Errno::ECHILD
          true
        end
        reaped.each { |pid| @children.delete(pid) }
        tell(Pipe::WAKEUP) unless reaped.empty?
      end

      # In a worker forked by worker 0, right after the fork (the fork hook
      # has closed worker 0's native descriptors): drop what else belongs to
      # worker 0 and become a normal worker.
      def forked_worker(idx)
        Signal.trap("CHLD", "DEFAULT")
        [@fork_pipe, @chld_reader, @chld_writer, @stop_reader, @stop_writer].each do |io|
          io.close unless io.closed?
        end
        # Worker 0's hijacked connections and uploads: held open here, a
        # connection worker 0 closes would never end for its client.
        ForkHook.close_handed_out
        Worker.new(index: idx, master: @master, launcher: @launcher, log_writer: @log_writer,
                   binder: @binder, app: @app,
                   pipes: { check_pipe: @check_pipe, worker_write: @worker_write }).run
      end
    end
  end
end
