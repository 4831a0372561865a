# Load generators: wrk for request rates, a socket client for the upload,
# and a helper process that holds idle connections. All of them are bounded.
require "socket"
require "rbconfig"
require "io/wait"

module Bench
  def self.now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  # Share of all CPUs busy over `secs`, from /proc/stat (idle + iowait count as idle).
  def self.cpu_busy_percent(secs = 0.5)
    sample = lambda do
      f = File.read("/proc/stat")[/^cpu\s+(.*)$/, 1].split.map(&:to_i)
      [f.sum, f[3] + f[4]]
    end
    t0, i0 = sample.call
    sleep secs
    t1, i1 = sample.call
    t1 == t0 ? 0.0 : 100.0 * (1 - (i1 - i0).fdiv(t1 - t0))
  end

  # Runs argv, returns [output, status]; kills its process group at the
  # deadline so a hung load tool cannot hang the suite.
  def self.run_bounded(argv, deadline)
    r, w = IO.pipe
    pid = Process.spawn(*argv, out: w, err: w, in: File::NULL, pgroup: true)
    w.close
    reader = Thread.new { r.read }
    limit = now + deadline
    sleep 0.05 until (done = Process.waitpid(pid, Process::WNOHANG)) || now > limit
    unless done
      Process.kill(:KILL, -pid) rescue nil
      Process.waitpid(pid)
    end
    [reader.value, $?]
  ensure
    r&.close
  end

  module Wrk
    UNITS_MS = { "us" => 0.001, "ms" => 1.0, "s" => 1000.0, "m" => 60_000.0, "h" => 3_600_000.0 }.freeze

    module_function

    # Returns {rps:, requests:, p50:, p99:, max:, errors:} with latencies in ms, or
    # {error: "..."} when wrk did not produce a result.
    def run(port, path: "/", threads: 2, conns: 64, duration: 10, timeout: 5)
      argv = ["wrk", "-t#{threads}", "-c#{conns}", "-d#{duration}s", "--timeout", "#{timeout}s",
              "--latency", "http://127.0.0.1:#{port}#{path}"]
      out, status = Bench.run_bounded(argv, duration + timeout + 15)
      parse(out).tap { |r| r[:error] ||= "wrk exit #{status.exitstatus}: #{out.lines.last&.strip}" unless r[:rps] }
    end

    def parse(out)
      r = {}
      r[:rps] = out[/^Requests\/sec:\s+([\d.]+)/, 1]&.to_f
      r[:max] = ms(out[/^\s+Latency\s+\S+\s+\S+\s+(\S+)/, 1])
      r[:p50] = ms(out[/^\s+50%\s+(\S+)/, 1])
      r[:p99] = ms(out[/^\s+99%\s+(\S+)/, 1])
      # Counts, not text, so they can be summed over rounds.
      errors = out[/Socket errors: (.*)$/, 1].to_s.scan(/(\w+) (\d+)/).to_h { |k, v| [k, v.to_i] }
      non2xx = out[/Non-2xx or 3xx responses: (\d+)/, 1]
      errors["non-2xx"] = non2xx.to_i if non2xx
      errors.reject! { |_, v| v.zero? }
      r[:errors] = errors unless errors.empty?
      # A fast error page is not a result.
      total = r[:requests] = out[/(\d+) requests in/, 1].to_i
      r[:error] = "#{non2xx} of #{total} responses not 2xx" if non2xx && non2xx.to_i * 100 > total
      r
    end

    def ms(text)
      return nil unless text && (m = text.match(/\A([\d.]+)([a-z]+)\z/))
      m[1].to_f * UNITS_MS.fetch(m[2])
    end
  end

  # Streams a body of `bytes` from a reused buffer (so the client is not the
  # bottleneck) and times it from connect to the last byte of the answer.
  module Upload
    CHUNK = ("u" * (1 << 20)).freeze

    module_function

    def run(port, bytes, path: "/upload", deadline: 60)
      limit = Bench.now + deadline
      t0 = Bench.now
      Socket.tcp("127.0.0.1", port, connect_timeout: 5) do |s|
        write_all(s, "POST #{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n" \
                     "Content-Length: #{bytes}\r\nConnection: close\r\n\r\n", limit)
        left = bytes
        while left > 0
          part = left >= CHUNK.bytesize ? CHUNK : CHUNK.byteslice(0, left)
          write_all(s, part, limit)
          left -= part.bytesize
        end
        head, body = read_response(s, limit)
        secs = Bench.now - t0
        status = head[/\AHTTP\/1\.\d (\d+)/, 1]
        return { error: "HTTP #{status.inspect}" } unless status == "200"
        # The Ruby app answers the byte count it read; nginx just discards.
        return { error: "app read #{body} of #{bytes} bytes" } if body =~ /\A\d+\z/ && body.to_i != bytes
        { mibps: bytes / 1048576.0 / secs, secs: secs }
      end
    rescue SystemCallError, IOError, Timeout => e
      { error: "#{e.class}: #{e.message}" }
    end

    class Timeout < StandardError; end

    def write_all(s, data, limit)
      until data.empty?
        n = s.write_nonblock(data, exception: false)
        if n == :wait_writable
          s.wait_writable([limit - Bench.now, 0].max) or raise Timeout, "write deadline"
        else
          data = data.byteslice(n..)
        end
      end
    end

    def read_response(s, limit)
      buf = +""
      loop do
        if (i = buf.index("\r\n\r\n"))
          head, body = buf[0, i], buf[(i + 4)..]
          len = head[/^content-length:\s*(\d+)/i, 1]
          return [head, body] if len && body.bytesize >= len.to_i
        end
        s.wait_readable([limit - Bench.now, 0].max) or raise Timeout, "read deadline"
        chunk = s.read_nonblock(65536, exception: false)
        break if chunk.nil?
        buf << chunk unless chunk == :wait_readable
      end
      # No Content-Length: the answer ends at EOF (we sent Connection: close).
      i = buf.index("\r\n\r\n") or raise Timeout, "incomplete response"
      [buf[0, i], buf[(i + 4)..]]
    end
  end

  # A child process holds the idle sockets, so their fds and CPU are not
  # charged to this harness and it cannot outlive its deadline.
  class IdleConns
    SCRIPT = File.join(__dir__, "idle_conns.rb")

    attr_reader :opened, :failed

    def initialize(port, count, deadline: 60)
      @io = IO.popen([RbConfig.ruby, SCRIPT, port.to_s, count.to_s, deadline.to_s], "r+")
      line = @io.wait_readable(deadline + 10) && @io.gets
      _, opened, failed = line.to_s.split
      @opened, @failed = opened.to_i, failed.to_i
    end

    # How many sockets the server has not closed by now.
    def alive
      @io.puts "CHECK"
      @io.flush
      line = @io.wait_readable(30) && @io.gets
      line.to_s.split[1].to_i
    end

    def close
      @io.close
    rescue IOError
      nil # the helper process already went away
    end
  end

  # A child process holds the slow readers (see slow_readers.rb), so their
  # CPU is not charged to the harness and they die with their deadline.
  class SlowReaders
    SCRIPT = File.join(__dir__, "slow_readers.rb")

    attr_reader :opened, :failed, :receiving

    def initialize(port, count, path:, rate:, lifetime:)
      @io = IO.popen([RbConfig.ruby, SCRIPT, port.to_s, count.to_s, path, rate.to_s, lifetime.to_s], "r+")
      line = @io.wait_readable(30) && @io.gets
      _, opened, failed, receiving = line.to_s.split
      @opened, @failed, @receiving = opened.to_i, failed.to_i, receiving.to_i
    end

    # Bytes read so far by all the slow readers together.
    def bytes_read
      @io.puts "CHECK"
      @io.flush
      line = @io.wait_readable(10) && @io.gets
      line.to_s.split[1].to_i
    end

    def close
      @io.close
    rescue IOError
      nil # the helper process already went away
    end
  end
end
