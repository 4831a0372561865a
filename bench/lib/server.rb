# Starting, probing, measuring and stopping one server under test.
require "socket"
require "fileutils"
require "rbconfig"
require "tmpdir"
require_relative "pinning"

module Bench
  ROOT = File.expand_path("../..", __dir__)

  # Memory and fd figures cover the whole process tree: in cluster mode the
  # workers hold the app, and a wrapper script may sit above the real server.
  module ProcTree
    module_function

    def pids(root)
      children = Hash.new { |h, k| h[k] = [] }
      Dir.glob("/proc/[0-9]*/stat").each do |f|
        stat = File.read(f) rescue next
        # comm may contain spaces or parens, so split after the last ")".
        ppid = stat[stat.rindex(")") + 2..].split[1].to_i
        children[ppid] << File.basename(File.dirname(f)).to_i
      end
      out = []
      todo = [root]
      while (pid = todo.shift)
        out << pid
        todo.concat(children[pid])
      end
      out
    end

    def rss_kb(root)
      pids(root).sum do |pid|
        File.read("/proc/#{pid}/status")[/^VmRSS:\s+(\d+)/, 1].to_i
      rescue SystemCallError
        0
      end
    end

    # CPU time of every thread of the tree, in ns (schedstat; a thread
    # that ended meanwhile takes its time with it).
    def cpu_ns(root)
      pids(root).sum do |pid|
        Dir.glob("/proc/#{pid}/task/*/schedstat").sum { |f| File.read(f).to_i rescue 0 }
      end
    end

    def fd_count(root)
      pids(root).sum { |pid| Dir.children("/proc/#{pid}/fd").size rescue 0 }
    end
  end

  # Samples tree RSS in the background so short peaks (an upload being
  # buffered) are seen, not just the state after the load has finished.
  class RssSampler
    def initialize(pid, interval: 0.1)
      @pid, @interval, @peak = pid, interval, 0
    end

    def start
      @peak = ProcTree.rss_kb(@pid)
      @thread = Thread.new do
        loop do
          @peak = [@peak, ProcTree.rss_kb(@pid)].max
          sleep @interval
        end
      end
      self
    end

    # Peak in MiB.
    def stop
      @thread&.kill&.join
      @peak = [@peak, ProcTree.rss_kb(@pid)].max
      @peak / 1024.0
    end
  end

  def self.free_port
    s = TCPServer.new("127.0.0.1", 0)
    s.addr[1]
  ensure
    s&.close
  end

  class Server
    # Puma's `-e production` sets RACK_ENV; Iodine has no such flag. Every
    # server gets it from the environment, so Rails and Sinatra boot in
    # production on all of them, not in development under Iodine.
    ENV_VARS = { "RACK_ENV" => "production", "RAILS_ENV" => "production" }.freeze

    attr_reader :name, :port, :pid, :error

    def initialize(name, argv, port:, tmpdir:)
      @name, @argv, @port, @tmpdir = name, argv, port, tmpdir
      @log = File.join(tmpdir, "#{name}.log")
    end

    # Spawns in its own process group so stop can take down workers and
    # anything else the server forked, leaving no orphans.
    def start(deadline: 30)
      @pid = Process.spawn(ENV_VARS, *@argv, chdir: ROOT, pgroup: true, in: File::NULL,
                                   out: [@log, "w"], err: [:child, :out])
      limit = now + deadline
      until now > limit
        if Process.waitpid(@pid, Process::WNOHANG)
          @pid = nil
          return fail!("exited during boot (#{$?.exitstatus || $?.termsig})")
        end
        return true if answers?
        sleep 0.05
      end
      stop
      fail!("did not answer within #{deadline}s")
    end

    def rss_mib = ProcTree.rss_kb(@pid) / 1024.0
    def fd_count = ProcTree.fd_count(@pid)

    def stop(deadline: 10)
      return unless @pid
      signal(:TERM)
      limit = now + deadline
      sleep 0.05 until Process.waitpid(@pid, Process::WNOHANG) || now > limit
      # Whatever survived the TERM (or outlived its parent) gets KILL.
      signal(:KILL)
      Process.waitpid(@pid) rescue Errno::ECHILD
      @pid = nil
    end

    private

    def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

    def signal(sig)
      Process.kill(sig, -@pid)
    rescue Errno::ESRCH
      nil # the server's process group is already gone
    end

    def fail!(why)
      tail = File.exist?(@log) ? File.readlines(@log).last(5).map(&:strip).join(" | ") : ""
      @error = tail.empty? ? why : "#{why}: #{tail}"
      false
    end

    # Readiness means a real HTTP answer, not just an open port: a forking
    # server may bind long before a worker can serve.
    def answers?
      Socket.tcp("127.0.0.1", @port, connect_timeout: 0.5) do |s|
        s.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return false unless s.wait_readable(2)
        s.readpartial(64).start_with?("HTTP/1.")
      end
    rescue SystemCallError, IOError # EOFError included
      false
    end
  end

  # Builds the command line for each kind of server; returns
  # [server, nil] or [nil, reason-to-skip].
  module Servers
    # RUSTPUMA_BIN lets the suite be tried against another build or a stand-in.
    RUSTPUMA = ENV["RUSTPUMA_BIN"] || File.join(ROOT, "bin", "rustpuma")
    # Where ../shared/peers/build puts Puma 8.0.2 and Iodine 0.7.58
    # (bench/run --peers DIR changes it).
    DEFAULT_PEERS = ENV["RUSTPUMA_PEERS"] || "/var/tmp/rustpuma-peers"
    NAMES = %w[rustpuma puma8 iodine puma nginx].freeze
    # What each column means, for the report's legend.
    LABELS = {
      "rustpuma" => "rustpuma (this checkout)",
      "puma8" => "Puma 8.0.2 (built from its released source)",
      "iodine" => "Iodine 0.7.58 (built from its released source)",
      "puma" => "Debian's Puma 5.6 (/usr/bin/puma)",
      "nginx" => "nginx (no Ruby: the ceiling)"
    }.freeze

    class << self
      attr_writer :peers_dir

      def peers_dir = @peers_dir || DEFAULT_PEERS
    end

    module_function

    def build(name, app:, threads:, workers:, tmpdir:)
      port = Bench.free_port
      argv, skip = command(name, port, app, threads, workers, tmpdir)
      return [nil, skip] unless argv

      [Server.new(name, Pin.wrap(argv), port: port, tmpdir: tmpdir), nil]
    end

    def command(name, port, app, threads, workers, tmpdir)
      case name
      when "rustpuma"
        return [nil, "bin/rustpuma not found"] unless File.executable?(RUSTPUMA)

        [[RUSTPUMA, *puma_args(port, app, threads, workers)]]
      when "puma"
        [["puma", *puma_args(port, app, threads, workers)]]
      when "puma8"
        lib, bin = peer_paths("puma-8.0.2", "lib/puma/puma_http11.so", "bin/puma")
        return [nil, not_built("Puma 8.0.2")] unless lib

        [[RbConfig.ruby, "-I", lib, bin, *puma_args(port, app, threads, workers)]]
      when "iodine"
        lib, bin = peer_paths("iodine-0.7.58", "lib/iodine/iodine_ext.so", "exe/iodine")
        return [nil, not_built("Iodine 0.7.58")] unless lib

        [[RbConfig.ruby, "-I", lib, bin, *iodine_args(port, app, threads, workers)]]
      when "nginx"
        dir = File.join(tmpdir, "nginx")
        conf = Nginx.write_config(dir, port, [workers, 1].max)
        [["nginx", "-c", conf, "-p", "#{dir}/", "-e", "#{dir}/error.log"]]
      end
    end

    # Where the build script is: the shared directory sits next to the main
    # checkout (../shared) or next to the worktrees' parent (../../shared).
    def build_script
      %w[../shared ../../shared].map { |d| File.expand_path("#{d}/peers/build", ROOT) }.find { |f| File.file?(f) } ||
        "../shared/peers/build"
    end

    def not_built(what) = "#{what} is not built in #{peers_dir}; build it with `#{build_script} #{peers_dir}`"

    # One line per peer, printed before the rows so a missing one is seen
    # at once rather than as a "skipped" column at the end.
    def peer_lines
      %w[puma8 iodine].map do |name|
        _, skip = command(name, 0, "hello.ru", "1:1", 0, Dir.tmpdir)
        "peer #{name}: #{skip ? "skipped (#{skip})" : "built in #{peers_dir}"}"
      end
    end

    # [lib dir, executable] of a peer built by ../shared/peers/build, or nil.
    def peer_paths(dir, built_marker, exe)
      root = File.join(peers_dir, dir)
      return nil unless File.file?(File.join(root, built_marker))

      [File.join(root, "lib"), File.join(root, exe)]
    end

    # Identical flags for all Puma-style servers, so only the server differs.
    def puma_args(port, app, threads, workers)
      args = ["-b", "tcp://127.0.0.1:#{port}", "-t", threads, "-e", "production"]
      args += ["-w", workers.to_s] if workers > 0
      args + [File.join(ROOT, "bench", "apps", app)]
    end

    # Iodine has one thread count (the max of MIN:MAX) and counts the single
    # process as one worker; its default 50 MB body limit would fail the
    # 100 MiB upload row.
    def iodine_args(port, app, threads, workers)
      ["-b", "127.0.0.1", "-p", port.to_s, "-t", threads.split(":").last, "-w", [workers, 1].max.to_s,
       "-maxbd", "1024", File.join(ROOT, "bench", "apps", app)]
    end
  end

  module Nginx
    BIG_BYTES = 8 * 1024 * 1024

    module_function

    # The no-Ruby ceiling: "/" answers like hello.ru, "/big" serves a static
    # 8 MiB file, "/upload" reads (and discards) any request body.
    def write_config(dir, port, workers)
      FileUtils.mkdir_p(dir)
      # Started as root, nginx workers run as "nobody" and must reach big.bin.
      [File.dirname(dir), dir].each { |d| File.chmod(0o755, d) }
      big = File.join(dir, "big.bin")
      File.binwrite(big, "x" * BIG_BYTES) unless File.size?(big) == BIG_BYTES
      conf = File.join(dir, "nginx.conf")
      File.write(conf, <<~CONF)
        daemon off;
        worker_processes #{workers};
        # The idle row holds 10,000 connections on one worker.
        worker_rlimit_nofile 30000;
        pid #{dir}/nginx.pid;
        error_log #{dir}/error.log warn;
        events { worker_connections 20000; }
        http {
          # Neither Ruby server logs requests, so nginx does not either.
          access_log off;
          client_body_temp_path #{dir}/client_body;
          proxy_temp_path #{dir}/proxy;
          fastcgi_temp_path #{dir}/fastcgi;
          uwsgi_temp_path #{dir}/uwsgi;
          scgi_temp_path #{dir}/scgi;
          # Puma never closes a busy keep-alive connection; nginx would after 1000 requests.
          keepalive_requests 100000000;
          sendfile on;
          server {
            listen 127.0.0.1:#{port};
            location / { default_type text/plain; return 200 "Hello World"; }
            location = /big { default_type application/octet-stream; alias #{big}; }
            location = /upload { client_max_body_size 0; default_type text/plain; return 200 "discarded"; }
          }
        }
      CONF
      conf
    end
  end
end
