# Starting, probing, measuring and stopping one server under test.
require "socket"
require "fileutils"

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
    attr_reader :name, :port, :pid, :error

    def initialize(name, argv, port:, tmpdir:)
      @name, @argv, @port, @tmpdir = name, argv, port, tmpdir
      @log = File.join(tmpdir, "#{name}.log")
    end

    # Spawns in its own process group so stop can take down workers and
    # anything else the server forked, leaving no orphans.
    def start(deadline: 30)
      @pid = Process.spawn(*@argv, chdir: ROOT, pgroup: true, in: File::NULL,
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
    rescue SystemCallError, IOError, EOFError
      false
    end
  end

  # Builds the command line for each kind of server; returns
  # [server, nil] or [nil, reason-to-skip].
  module Servers
    # RUSTPUMA_BIN lets the suite be tried against another build or a stand-in.
    RUSTPUMA = ENV["RUSTPUMA_BIN"] || File.join(ROOT, "bin", "rustpuma")
    NAMES = %w[rustpuma puma nginx].freeze

    module_function

    def build(name, app:, threads:, workers:, tmpdir:)
      port = Bench.free_port
      case name
      when "rustpuma"
        return [nil, "bin/rustpuma not found"] unless File.executable?(RUSTPUMA)
        [Server.new(name, [RUSTPUMA, *puma_args(port, app, threads, workers)], port: port, tmpdir: tmpdir), nil]
      when "puma"
        [Server.new(name, ["puma", *puma_args(port, app, threads, workers)], port: port, tmpdir: tmpdir), nil]
      when "nginx"
        dir = File.join(tmpdir, "nginx")
        conf = Nginx.write_config(dir, port, [workers, 1].max)
        [Server.new(name, ["nginx", "-c", conf, "-p", "#{dir}/", "-e", "#{dir}/error.log"],
                    port: port, tmpdir: tmpdir), nil]
      end
    end

    # Identical flags for both Ruby servers, so only the server differs.
    def puma_args(port, app, threads, workers)
      args = ["-b", "tcp://127.0.0.1:#{port}", "-t", threads, "-e", "production"]
      args += ["-w", workers.to_s] if workers > 0
      args + [File.join(ROOT, "bench", "apps", app)]
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
