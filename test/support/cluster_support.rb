# frozen_string_literal: true

# Shared plumbing for the cluster tests (no tests of its own): servers with
# workers, worker pids read from the boot lines, plain GETs on fresh
# connections, and bounded waits for processes to go away.
require "support/helper"
require "json"
require "tmpdir"
require "rustpuma/version"
require "support/polling"

module ClusterSupport
  include Polling

  APP = File.join(FIXTURES, "cluster", "app.ru")
  CTL = File.join(ServerProcess::ROOT, "exe", "rustpumactl")
  BOOTED = /Worker (\d+) \(PID: (\d+)\) booted in [\d.]+s, phase: (\d+)/

  # Ready once "Use Ctrl-C to stop" is out and then (as Puma prints them
  # after that line) one boot line per worker. `wait_for: nil` skips both.
  def start(*args, **opts)
    srv = ServerProcess.new(*args, **opts).start
    (@servers ||= []) << srv
    wait_for_workers(srv) if opts.fetch(:wait_for, true)
    srv
  end

  def wait_for_workers(srv, timeout = 20)
    count = Integer(srv.output[/\*      Workers: (\d+)/, 1] || 0)
    wait_until(timeout, "#{count} worker boot lines") { booted_workers(srv).size >= count }
  end

  def teardown
    (@servers || []).each do |srv|
      pids = booted_workers(srv).values
      srv.stop
      pids.each { |pid| Process.kill("KILL", pid) rescue nil } # never leave orphans behind
    end
    super
  end

  # index => pid of the latest boot of each worker index.
  def booted_workers(srv)
    srv.output.scan(BOOTED).to_h { |idx, pid, _| [Integer(idx), Integer(pid)] }
  end

  def all_booted_pids(srv)
    srv.output.scan(BOOTED).map { |_, pid, _| Integer(pid) }
  end

  def master_pid(srv)
    Integer(srv.output[/\*   Master PID: (\d+)/, 1])
  end

  # One GET on a new connection; [status, body]. Raises on any failure.
  def get(port, path = "/", timeout: 10)
    Timeout.timeout(timeout) do
      sock = TCPSocket.new("127.0.0.1", port)
      begin
        sock.write("GET #{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = sock.read
        head, body = raw.split("\r\n\r\n", 2)
        raise "bad response: #{raw.inspect}" unless head&.start_with?("HTTP/1.1 ")

        [Integer(head[9, 3]), body]
      ensure
        sock.close
      end
    end
  end

  def alive?(pid)
    Process.kill(0, pid)
    # A zombie still answers kill(0); it is gone for our purposes.
    state = File.read("/proc/#{pid}/stat")[/\) (\w)/, 1] rescue nil
    state != "Z"
  rescue Errno::ESRCH
    false
  end

  # The names of a process's threads, as the kernel has them (15 bytes:
  # native threads are "rustpuma-reacto", "rustpuma-log").
  def thread_names(pid)
    Dir.glob("/proc/#{pid}/task/*/comm").map { |f| File.read(f).chomp rescue nil }.compact
  end

  # Runs rustpumactl; [output, exit status].
  def ctl(*args)
    out = IO.popen([RbConfig.ruby, "-I", File.join(ServerProcess::ROOT, "lib"), ClusterSupport::CTL, *args],
                   err: %i[child out], &:read)
    [out, $?.exitstatus]
  end

  def wait_gone(pids, timeout = 10)
    wait_until(timeout, "processes #{pids.inspect} to exit") { pids.none? { |p| alive?(p) } }
  end

  # Runs `threads` clients, each sending GETs for `path` on new connections,
  # until the block returns; returns [successes, failures (messages)].
  def under_load(port, threads: 8, path: "/")
    stop = false
    ok = Queue.new
    failed = Queue.new
    clients = Array.new(threads) do
      Thread.new do
        until stop
          begin
            status, = get(port, path)
            status == 200 ? ok << 1 : failed << "status #{status}"
          rescue StandardError => e # Timeout::Error included
            failed << "#{e.class}: #{e.message}"
          end
        end
      end
    end
    begin
      yield
    ensure
      stop = true
      clients.each { |t| t.join(15) }
    end
    [ok.size, Array.new(failed.size) { failed.pop }]
  end
end
