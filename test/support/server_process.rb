# frozen_string_literal: true

require "rbconfig"
require "timeout"

# A real rustpuma process for integration tests: started through the same
# executable users run, on an ephemeral port, and ready once it has printed
# "Use Ctrl-C to stop" (it prints that after binding and starting the
# reactor) — readiness is a line, never a sleep.
class ServerProcess
  ROOT = File.expand_path("../..", __dir__)
  EXE = File.join(ROOT, "exe", "rustpuma")
  BOOT_TIMEOUT = 20

  attr_reader :pid, :port, :output, :unix_path

  # `args`: extra CLI flags and the rackup file. Binds 127.0.0.1 on a free
  # port unless `bind:` is given.
  # `command:` replaces `ruby -I lib exe/rustpuma` (e.g. `bundle exec
  # rustpuma` in an app directory).
  # `spawn_options:` extra Process.spawn options (fd redirections).
  def initialize(*args, bind: "tcp://127.0.0.1:0", env: {}, dir: ROOT, wait_for: "Use Ctrl-C to stop", command: nil,
                 spawn_options: {})
    @command = command
    @spawn_options = spawn_options
    @args = args
    @bind = bind
    @env = env
    @dir = dir
    @wait_for = wait_for
    @output = +""
    @lock = Mutex.new
  end

  def start
    cmd = @command || [RbConfig.ruby, "-I", File.join(ROOT, "lib"), EXE]
    cmd += ["-b", @bind] if @bind
    cmd += @args
    @reader, writer = IO.pipe
    @pid = Process.spawn(@env, *cmd, chdir: @dir, out: writer, err: writer, pgroup: true, **@spawn_options)
    writer.close
    @pump = Thread.new { pump }
    wait_for_output(@wait_for, BOOT_TIMEOUT) if @wait_for
    if (m = @output.match(%r{Listening on http://[^\s]*:(\d+)}))
      @port = Integer(m[1])
    end
    if (m = @output.match(%r{Listening on unix://(\S+)}))
      @unix_path = m[1]
    end
    self
  end

  def host
    "127.0.0.1"
  end

  def connect
    TCPSocket.new(host, port)
  end

  # A port nobody listens on right now, for servers told their port by
  # configuration (PORT=...) rather than binding port 0.
  def self.free_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end

  # Waits (bounded) until the server's output matches `pattern`.
  def wait_for_output(pattern, timeout = 10)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      return true if @lock.synchronize { pattern.is_a?(Regexp) ? @output.match?(pattern) : @output.include?(pattern) }
      raise "server exited early:\n#{@output}" if exited?
      raise "timed out waiting for #{pattern.inspect}; output so far:\n#{@output}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.02 # polling the captured output, not synchronising with the server
    end
  end

  def signal(sig)
    Process.kill(sig, @pid)
  end

  def exited?
    return true if @status

    pid, status = Process.waitpid2(@pid, Process::WNOHANG)
    @status = status if pid
    !@status.nil?
  end

  # Waits for the process to end; returns its Process::Status.
  def wait(timeout = 15)
    Timeout.timeout(timeout) do
      _, @status = Process.waitpid2(@pid) unless @status
    end
    @pump&.join(2)
    @status
  end

  # Stops the server (TERM, then KILL for the whole group) and returns the
  # exit status. Always safe to call.
  def stop(timeout = 10)
    return @status if @pid.nil? || exited?

    signal("TERM")
    wait(timeout)
  rescue Timeout::Error
    Process.kill("KILL", -@pid) rescue nil
    wait(5)
  end

  private

  def pump
    while (chunk = @reader.readpartial(4096))
      @lock.synchronize { @output << chunk }
    end
  rescue IOError # EOFError included
    nil
  end
end
