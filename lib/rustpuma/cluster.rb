# frozen_string_literal: true

require "json"
require "time"
require_relative "runner"
require_relative "cluster/pipe"
require_relative "cluster/worker_handle"
require_relative "cluster/worker"
require_relative "cluster/recycler"
require_relative "control_app"
require_relative "metrics"
require_relative "state_file"
require_relative "systemd"

module Rustpuma
  # Cluster mode (`workers N`), as Puma's Cluster: this master process binds
  # every listener, preloads the app if asked, and forks N workers, each of
  # which serves with its own Server. The master itself serves no app and
  # never starts a native thread (its control server is plain Ruby, see
  # control_server.rb), since it forks at any time; it supervises: it respawns dead
  # workers, kills the ones that stop checking in, and turns signals into
  # restarts and worker-count changes.
  #
  # Signals: TERM/INT graceful stop; USR2 hot restart (through the
  # Launcher: workers stop, then the master re-execs with the listeners
  # inherited); USR1 phased restart (one worker at a time; a hot restart
  # when the app is preloaded, as in Puma); TTIN/TTOU one more/less worker;
  # HUP reopens redirected logs (in the workers too), or stops when nothing
  # is redirected; CHLD wakes the supervisor loop; URG reforks (fork_worker).
  #
  # With `fork_worker` the master forks worker 0 only; worker 0 forks every
  # other worker when the master asks (a line with the index on the fork
  # pipe) and reports its pid (Pipe::FORKED); the forked worker then
  # talks to the master like any other. A refork (URG, the control app's
  # /refork, or automatically once worker 0 has served `fork_worker`
  # requests) bumps the phase, runs before_refork in worker 0 and replaces
  # the other workers one at a time with fresh forks of worker 0.
  #
  # `worker_memory_limit` / `worker_max_requests` (cluster/recycler.rb): a
  # worker past a limit is replaced one at a time, its replacement (same
  # index) booted first; then the old one gets TERM and finishes its
  # in-flight requests. Under fork_worker, worker 0 (the others' parent) is
  # stopped first and forked again, as in a phased restart.
  #
  # Created by Launcher#select_runner when workers > 0.
  class Cluster < Runner
    # Cluster lines carry the pid of the process that wrote them, as Puma's.
    class PidLogWriter < LogWriter
      def log(str)
        super("[#{Process.pid}] #{str}")
      end
    end

    # Delay before replacing a worker that died before booting.
    RESPAWN_BACKOFF = 1

    # Why the master replaced a worker (stats' worker_restarts): a limit of
    # the Recycler, no check-in in time, or an unexpected exit.
    RESTART_REASONS = [*Recycler::REASONS, :timeout, :exited].freeze

    attr_reader :phase, :workers, :started_at

    def initialize(launcher)
      super(launcher, PidLogWriter.new(launcher.log_writer.stdout, launcher.log_writer.stderr))
      @log_writer.debug = launcher.log_writer.debug?
      @log_writer.formatter = launcher.log_writer.formatter
      @log_writer.custom_logger = launcher.log_writer.custom_logger
      @phase = 0
      @workers = []
      @status = :run
      @phased_restart = false
      @booted = false
      @started_at = Time.now
      @master_pid = Process.pid
      @buffer = +""
      @refork_requested = false
      @reforking = nil
      @idle_pids = []
      @recycler = Recycler.new(@options)
      @restarts = Hash.new(0)
    end

    def run
      log_banner
      load_app # with preload_app, before binding, as Puma
      @binder = @launcher.bind_listeners(@log_writer)

      @read, @write = IO.pipe            # workers -> master, and wake-ups
      @check_pipe, @suicide_pipe = IO.pipe # EOF in the workers when the master dies
      @fork_pipe, @fork_writer = IO.pipe if fork_worker? # master -> worker 0
      trap_signals
      Process.setproctitle(title)

      # As Puma: before the workers boot (tools wait for the ready line, then
      # for one "booted" line per worker); the workers inherit the files
      # stdout_redirect opens.
      log_ready
      StateFile.write(@launcher)
      @control = ControlServer.bind(@launcher, @log_writer)

      @config.run_hooks(:before_fork)
      nakayoshi_gc if @options[:nakayoshi_fork]
      spawn_workers
      supervise
    ensure
      [@read, @write, @check_pipe, @suicide_pipe, @fork_pipe, @fork_writer].each { |io| io&.close unless io&.closed? }
    end

    # Graceful stop of everything (or, with Launcher#restart, of the workers
    # before the re-exec). Safe in a signal handler.
    def stop
      @status = :stop if @status == :run
      wakeup!
    end

    # Exit now; the workers follow as soon as they see the master gone.
    def halt
      @status = :halt
      wakeup!
    end

    # Replaces the workers one at a time, reloading the app in each. Not
    # possible with a preloaded app: returns false, and the caller restarts.
    def phased_restart
      return false if @options[:preload_app]

      @phased_restart = true
      wakeup!
      true
    end

    # fork_worker: replaces every worker but worker 0 with a fresh fork of
    # worker 0 (phase + 1). False when fork_worker is off.
    def refork
      return false unless fork_worker?

      @refork_requested = true
      wakeup!
      true
    end

    def fork_worker?
      @options[:fork_worker] ? true : false
    end

    def reload_worker_directory
      dir = @launcher.restart_dir || Dir.pwd
      log "+ Changing to #{dir}"
      Dir.chdir(dir)
      true
    end

    def stats
      worker_status = @workers.map(&:to_status)
      @workers.each(&:reset_max)
      {
        started_at: @started_at.utc.iso8601,
        workers: @workers.size,
        phase: @phase,
        booted_workers: worker_status.count { |w| w[:booted] },
        old_workers: @workers.count { |w| w.phase != @phase },
        worker_status: worker_status,
        # rustpuma's: workers replaced by the master, by reason.
        worker_restarts: RESTART_REASONS.to_h { |r| [r, @restarts[r]] },
      }.merge(Rustpuma.versions_stats)
    end

    # /metrics: each worker's figures from its last check-in (never asked
    # for: a stuck worker cannot block the master), labelled by index, with
    # the RSS the master itself reads; restarts by reason.
    def metrics_sources
      servers = @workers.sort_by(&:index).map do |w|
        metrics = w.last_status[:metrics] || {}
        metrics = metrics.merge(rss_bytes: w.rss_bytes) if w.rss_bytes
        [{ worker: w.index.to_s }, metrics]
      end
      [servers, RESTART_REASONS.to_h { |r| [r, @restarts[r]] }]
    end

    # /advice (advice_sampler.rb): each serving worker's request phases and
    # CPU as of its last check-in; the master never asks a worker.
    def advice_processes
      @workers.select { |w| w.booted? && !w.term? }.filter_map do |w|
        Advice::Sampler.process(w.pid, w.last_status[:process], w.last_status[:metrics])
      end
    end

    private

    def wakeup!
      @write&.write_nonblock("#{Pipe::WAKEUP}\n", exception: false)
    rescue IOError
      nil
    end

    def log_banner
      log_banner_head("cluster")
      log "*   Master PID: #{Process.pid}"
      log "*      Workers: #{@options[:workers]}"
      mark = ->(yes) { yes ? "\u2714" : "\u2716" }
      log "*     Restarts: (#{mark.call(true)}) hot (#{mark.call(!@options[:preload_app])}) phased " \
          "(#{mark.call(fork_worker?)}) refork"
    end

    def load_app
      if @options[:preload_app]
        log "* Preloading application"
        before = Thread.list
        @app = @launcher.load_app(@log_writer)
        started = Thread.list - before
        unless started.empty?
          log "! WARNING: Detected #{started.size} Thread(s) started in app boot:"
          started.each { |t| log "! #{t.inspect} - #{t.backtrace&.first}" }
        end
      elsif !@config.app_configured?
        @log_writer.error "No application configured, nothing to run"
      end
    rescue ConfigError => e
      @log_writer.error(e.message)
    end

    def title
      @launcher.process_title
    end

    # -- supervision -----------------------------------------------------------

    def supervise
      @next_check = Time.now
      while @status == :run
        start_phased_restart if @phased_restart
        start_refork if @refork_requested
        check_workers
        timeout = [@next_check - Time.now, 0].max
        read_messages if @read.wait_readable(timeout)
      end

      after_loop
    end

    def after_loop
      restarting = @launcher.restarting?
      @control&.stop
      # The workers go as soon as they see the master gone.
      return halt_now if @status == :halt

      notify_systemd_stopping
      # New connections are refused from now on, unless a new master image
      # takes the sockets over.
      @binder.close unless restarting
      stop_workers
      return if restarting

      after_stopped
    end

    def read_messages
      @buffer << @read.read_nonblock(64 * 1024)
      while (nl = @buffer.index("\n"))
        handle_message(@buffer.slice!(0, nl + 1).chomp)
      end
    rescue IO::WaitReadable, EOFError
      nil
    end

    # One line from a worker (see cluster/pipe.rb).
    def handle_message(line)
      kind = line[0]
      return @next_check = Time.now if kind == Pipe::WAKEUP || kind.nil?

      rest = line[1..]
      pid = rest.to_i
      announces_index = [Pipe::BOOTED, Pipe::FORKED].include?(kind)
      if announces_index
        pid, idx = rest.split(":").map(&:to_i)
        # A replacement shares its index with the worker it replaces.
        w = @workers.find { |x| x.index == idx && x.pid.nil? }
        w.pid = pid if w
      end
      w = @workers.find { |x| x.pid == pid }
      unless w
        @log_writer.debug "Out-of-sync worker list, no #{pid} worker"
        stray_worker(pid) if announces_index
        return
      end

      case kind
      when Pipe::BOOTED
        w.boot!
        log "- Worker #{w.index} (PID: #{pid}) booted in #{w.uptime.round(2)}s, phase: #{w.phase}"
        @next_check = Time.now
      when Pipe::IDLE then idle!(pid)
      when Pipe::ACTIVE then @idle_pids.delete(pid)
      when Pipe::TERM_RECEIVED then w.term!
      when Pipe::EXITING
        w.term unless w.term?
        @next_check = Time.now # reap and replace it (fork_worker: once worker 0 has)
      when Pipe::CHECK_IN
        w.ping!(parse_status(rest.sub(/\A\d+/, "")))
        booted! if !@booted && @workers.size >= @options[:workers] && @workers.all? { |x| x.booted? && !x.last_status.empty? }
        auto_refork(w)
      end
    end

    # A worker forked by worker 0 for an index the master no longer waits
    # for (it gave up on it): nobody would supervise it.
    def stray_worker(pid)
      return unless fork_worker?

      log "! Stopping unexpected worker #{pid}"
      Process.kill("TERM", pid)
    rescue SystemCallError
      nil
    end

    # `fork_worker N`: the first refork happens once worker 0 has served N
    # requests (as Puma: only while worker 0 is in phase 0).
    def auto_refork(w)
      limit = @options[:fork_worker].to_i
      return unless fork_worker? && limit.positive? && w.index.zero? && w.phase.zero?
      return unless @status == :run && @booted && !@reforking && !@refork_requested
      return unless w.last_status[:requests_count].to_i >= limit

      refork
    end

    def parse_status(json)
      JSON.parse(json, symbolize_names: true)
    rescue JSON::ParserError
      {}
    end

    # The first time every worker has booted and checked in.
    def booted!
      @booted = true
      # Bound before forking (as Puma), served from here, once there are
      # workers to report on.
      @control&.serve
      Systemd.ready(@log_writer)
      @log_writer.debug_loaded_extensions("Loaded Extensions - master:")
      @config.run_hooks(:after_booted)
      stop_if_all_idle
    end

    def boot_warnings
      return unless @options[:workers] == 1 && !@options[:silence_single_worker_warning]

      log "! WARNING: Detected running cluster mode with 1 worker."
      log "! Running rustpuma in cluster mode with a single worker is often a misconfiguration."
      log "! Consider running rustpuma in single-mode (workers = 0) in order to reduce memory overhead."
      log "! Set the `silence_single_worker_warning` option to silence this warning message."
    end

    def check_workers
      return if @next_check > Time.now

      @next_check = Time.now + [@options[:worker_check_interval].to_f, 0.1].max
      timeout_workers
      wait_workers
      cull_workers
      recycle_workers
      spawn_workers if @status == :run && (@respawn_after.nil? || Time.now >= @respawn_after)
      phase_out_worker

      deadlines = @workers.reject(&:term?).map(&:ping_timeout)
      deadlines << @respawn_after if @respawn_after && @respawn_after > Time.now
      @next_check = [*deadlines, @next_check].min
    end

    # `idle_timeout`: each worker reports when it has served nothing for that
    # long (and when it serves again); once all of them are idle, stop.
    def idle!(pid)
      @idle_pids |= [pid]
      stop_if_all_idle
    end

    def stop_if_all_idle
      return unless @options[:idle_timeout] && @status == :run && @booted

      live = @workers.reject(&:term?).map(&:pid)
      return unless live.size >= @options[:workers] && (live - @idle_pids).empty?

      log "- All workers reached idle timeout"
      stop
    end

    def spawn_workers
      # A retiring worker's replacement is one of the missing.
      missing = @options[:workers] - @workers.count { |w| !w.retiring? }
      return if missing < 1

      missing.times do
        idx = next_worker_index
        if fork_worker? && idx != 0
          # Worker 0 forks it (once it is up); the pid comes with FORKED/BOOTED.
          w0 = worker_zero
          break unless w0&.booted? && !w0.term?

          tell_worker_zero(idx.to_s)
          pid = nil
        else
          drain_fork_pipe if fork_worker?
          pid = spawn_worker(idx)
        end
        @log_writer.debug "Spawned worker: #{pid}"
        handle = WorkerHandle.new(idx, pid, @phase, @options)
        handle.max_requests = @recycler.request_limit
        @workers << handle
      end
    end

    # Puma 6's nakayoshi_fork: age what the master holds into the old
    # generation and compact it, so forked workers share more pages.
    def nakayoshi_gc
      log "! Promoting existing objects to old generation..."
      4.times { GC.start(full_mark: false) }
      if GC.respond_to?(:compact)
        log "! Compacting..."
        GC.compact
      end
      log "! Friendly fork preparation complete."
    end

    def worker_zero
      @workers.find { |w| w.index.zero? }
    end

    def tell_worker_zero(line)
      @fork_writer.write_nonblock("#{line}\n", exception: false)
    rescue IOError, SystemCallError
      nil
    end

    # Before forking a new worker 0: requests meant for the previous one
    # must not reach it.
    def drain_fork_pipe
      loop { break unless @fork_pipe.read_nonblock(4096, exception: false).is_a?(String) }
    rescue IOError, SystemCallError
      nil
    end

    def spawn_worker(idx)
      @config.run_hooks(:before_worker_fork, idx)
      pid = Process.fork { worker(idx) }
      @config.run_hooks(:after_worker_fork, idx)
      pid
    end

    # In the child, right after the fork.
    def worker(idx)
      @workers = []
      @read.close
      @suicide_pipe.close
      @control&.close_in_child
      pipes = { check_pipe: @check_pipe, worker_write: @write }
      if fork_worker?
        @fork_writer.close
        pipes[:fork_pipe] = @fork_pipe
      end
      Worker.new(index: idx, master: @master_pid, launcher: @launcher, log_writer: @log_writer,
                 binder: @binder, app: @app, pipes: pipes).run
    end

    # A retiring worker's index goes to its replacement.
    def next_worker_index
      used = @workers.reject(&:retiring?).map(&:index)
      (0..).find { |i| !used.include?(i) }
    end

    def timeout_workers
      now = Time.now
      @workers.each do |w|
        next if w.term? || w.ping_timeout > now

        details = if w.booted?
                    "(worker failed to check in within #{@options[:worker_timeout]} seconds)"
                  else
                    "(worker failed to boot within #{@options[:worker_boot_timeout]} seconds)"
                  end
        log "! Terminating timed out worker #{details}: #{w.pid}"
        @restarts[:timeout] += 1
        w.kill
      end
    end

    # Reaps exited workers; re-signals the ones told to stop (TERM turns into
    # KILL after worker_shutdown_timeout).
    def wait_workers
      @workers.reject! do |w|
        # Not forked yet by worker 0: dropped if it timed out.
        next w.term? if w.pid.nil?

        begin
          if Process.wait(w.pid, Process::WNOHANG)
            exited_unexpectedly(w, "(#{$?.inspect})") unless w.term?
            w.process_status = $?
            @config.run_hooks(:after_worker_shutdown, w, @log_writer)
            # A worker that cannot boot must not turn into a fork loop.
            @respawn_after = Time.now + RESPAWN_BACKOFF unless w.booted?
            true
          else
            w.term if w.term?
            false
          end
        rescue Errno::ECHILD
          # Not our child (fork_worker: worker 0's): gone once it is not
          # running any more; a zombie waits for its parent to reap it.
          if running?(w.pid)
            w.term if w.term?
            false
          else
            exited_unexpectedly(w) unless w.term?
            @respawn_after = Time.now + RESPAWN_BACKOFF unless w.booted?
            true
          end
        end
      end
      # Requests to a worker 0 that is gone will not be served.
      @workers.reject! { |w| w.pid.nil? } if fork_worker? && !worker_zero
    end

    def exited_unexpectedly(worker, details = nil)
      log "! Worker #{worker.index} (PID: #{worker.pid}) exited unexpectedly#{" #{details}" if details}"
      @restarts[:exited] += 1
    end

    def running?(pid)
      Process.kill(0, pid)
      state = File.read("/proc/#{pid}/stat")[/\) (\w)/, 1] rescue nil
      state != "Z" && state != "X"
    rescue Errno::ESRCH, Errno::EPERM
      false
    end

    def cull_workers
      # Workers on their way out (told to stop, or retiring) do not count.
      sorted = @workers.reject { |w| w.term? || w.retiring? }.sort_by(&:started_at)
      extra = sorted.size - @options[:workers]
      return if extra < 1

      # fork_worker: worker 0 is the others' parent; it stays.
      sorted.reject! { |w| w.index.zero? } if fork_worker?
      victims = @options[:worker_culling_strategy].to_s == "oldest" ? sorted.first(extra) : sorted.last(extra)
      victims.each do |w|
        log "- Worker #{w.index} (PID: #{w.pid}) terminating"
        w.term
      end
    end

    # worker_memory_limit / worker_max_requests: measures every worker, stops
    # the retiring ones whose replacement has booted, and picks at most one
    # worker to replace, only while the cluster is otherwise settled (no
    # boot, phased restart or refork under way).
    def recycle_workers
      @workers.each { |w| w.rss_bytes = Metrics.rss_bytes(w.pid) if w.pid && !w.term? }
      stop_replaced_workers
      return unless @recycler.enabled? && @status == :run && @booted && !@reforking
      return if @workers.size != @options[:workers] || @workers.any? { |w| w.term? || !w.booted? || w.phase != @phase }

      due = @workers.lazy.map { |w| [w, *@recycler.due(w)] }.find { |_, reason| reason }
      recycle(*due) if due
    end

    def recycle(worker, reason, why)
      @restarts[reason] += 1
      if fork_worker? && worker.index.zero?
        # The others' parent cannot have a twin reading the fork pipe: it
        # goes first and is forked again once reaped.
        log "- Worker #{worker.index} (PID: #{worker.pid}) #{why}; stopping it, a new worker #{worker.index} follows"
        worker.term
      else
        log "- Worker #{worker.index} (PID: #{worker.pid}) #{why}; booting its replacement"
        worker.retire!(reason)
      end
    end

    def stop_replaced_workers
      @workers.each do |old|
        next unless old.retiring? && !old.term?

        fresh = @workers.find { |w| w.index == old.index && !w.retiring? && w.booted? }
        next unless fresh

        log "- Worker #{old.index} (PID: #{old.pid}) replaced by PID #{fresh.pid}; stopping it gracefully"
        old.term
      end
    end

    def start_phased_restart
      @phased_restart = false
      @phase += 1
      log "- Starting phased worker restart, phase: #{@phase}"
      Systemd.notify("RELOADING=1")
      reload_worker_directory
      @phase_announced = false
      @next_check = Time.now
    end

    # fork_worker: worker 0 runs before_refork, then the others are replaced
    # by phase_out_worker one at a time, forked from worker 0 as usual.
    def start_refork
      @refork_requested = false
      w0 = worker_zero
      if @reforking
        @log_writer.debug "Refork already in progress (phase #{@reforking})"
        return
      end
      unless w0&.booted? && !w0.term?
        log "! Refork not possible now: worker 0 is not running"
        return
      end

      @phase += 1
      w0.phase = @phase
      @reforking = @phase
      log "- Starting worker refork, phase: #{@phase}"
      Systemd.notify("RELOADING=1")
      reload_worker_directory
      tell_worker_zero("#{Pipe::REFORK_START}#{@phase}")
      @phase_announced = false
      @next_check = Time.now
    end

    # One old-phase worker at a time, and only once all the others are up.
    def phase_out_worker
      return unless @status == :run
      return unless @workers.size >= @options[:workers] && @workers.all?(&:booted?)

      # In index order, as Puma: with fork_worker, worker 0 (the others'
      # parent) must be replaced first, or the others would be forked again
      # from the old code.
      w = @workers.sort_by(&:index).find { |x| x.phase != @phase }
      unless w
        if @phase.positive? && !@phase_announced
          @phase_announced = true
          if @reforking
            @reforking = nil
            log "- Worker refork complete, phase: #{@phase}"
            tell_worker_zero("#{Pipe::REFORK_DONE}#{@phase}")
          else
            log "- Phased restart complete, phase: #{@phase}"
          end
          Systemd.notify("READY=1")
        end
        return
      end
      return if w.term?

      log "- Stopping #{w.pid} for #{@reforking ? 'refork' : 'phased upgrade'}..."
      w.term
      log "- #{w.signal} sent to #{w.pid}..."
    end

    def stop_workers
      log "- Gracefully shutting down workers..."
      @workers.each(&:term)
      loop do
        wait_workers
        break if @workers.none?(&:pid)

        read_messages if @read.wait_readable(0.2)
      end
    end

    # -- signals -----------------------------------------------------------------

    # A worker that has not installed its own trap yet just goes.
    def before_stop_signal(_sig)
      exit!(0) if Process.pid != @master_pid
    end

    def hup
      @launcher.hup { @workers.each(&:hup) }
    end

    def trap_signals
      super
      Signal.trap("USR1") do
        unless phased_restart
          log "* phased-restart called but not available, restarting normally."
          @launcher.restart
        end
      end
      Signal.trap("TTIN") do
        @options[:workers] += 1
        wakeup!
      end
      Signal.trap("TTOU") do
        @options[:workers] -= 1 if @options[:workers] >= 2
        wakeup!
      end
      Signal.trap("CHLD") { wakeup! }
      Signal.trap("URG") { refork } if fork_worker?
      Signal.trap("QUIT") { halt } # pumactl halt without a control app
    end
  end
end
