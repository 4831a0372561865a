# frozen_string_literal: true

require "support/helper"
require "net/http"
require "json"
require "support/certificates"
require "tmpdir"
require "fileutils"

# rustpumactl's commands and messages, as pumactl's: `status`, `info` (the
# backtrace signal), `start` (runs the server from the config file) and
# `restart` of a server that is not running (starts it).
class TestRustpumactl < Minitest::Test
  CTL = File.join(ServerProcess::ROOT, "exe", "rustpumactl")
  LIB = File.join(ServerProcess::ROOT, "lib")

  def setup
    @dir = Dir.mktmpdir("rustpumactl")
    @pidfile = File.join(@dir, "server.pid")
    @port = ServerProcess.free_port
    @config = File.join(@dir, "puma.rb")
    File.write(@config, <<~RUBY)
      bind "tcp://127.0.0.1:#{@port}"
      pidfile #{@pidfile.inspect}
      rackup #{File.join(FIXTURES, 'app.ru').inspect}
    RUBY
  end

  def teardown
    @server&.stop
    FileUtils.rm_rf(@dir)
  end

  def test_status_and_info_by_pid
    @server = ServerProcess.new("-C", @config, bind: nil).start
    out, status = ctl("-P", @pidfile, "status")
    assert_equal ["Puma is started\n", 0], [out, status]

    out, status = ctl("-P", @pidfile, "info")
    assert_equal ["Command info sent success\n", 0], [out, status]
    @server.wait_for_output(/^Thread: TID-\w+.*\n  .+/, 10) # each thread's name, then its backtrace indented

    pid = @server.pid
    @server.stop
    @server = nil
    File.write(@pidfile, "#{pid}\n") # the stale pidfile a crash leaves
    out, status = ctl("-P", @pidfile, "status")
    assert_equal ["Puma is not running\n", 1], [out, status]
  end

  def test_start_runs_the_server_from_the_config_file_and_stop_ends_it
    @server = ServerProcess.new(bind: nil, dir: @dir, command: [RbConfig.ruby, "-I", LIB, CTL, "-F", @config, "start"]).start
    assert_includes @server.output, "Listening on http://127.0.0.1:#{@port}"
    assert_equal "200", Net::HTTP.get_response(URI("http://127.0.0.1:#{@port}/env")).code
    assert_equal @server.pid, File.read(@pidfile).to_i, "the server runs in the rustpumactl process"

    out, status = ctl("-F", @config, "stop")
    assert_equal ["Command stop sent success\n", 0], [out, status]
    Timeout.timeout(15) { Process.wait(@server.pid) }
    @server = nil
  end

  def test_restart_of_a_server_that_is_not_running_starts_it
    dead = Process.spawn(RbConfig.ruby, "-e", "exit")
    Process.wait(dead)
    File.write(@pidfile, "#{dead}\n")
    @server = ServerProcess.new(bind: nil, dir: @dir, command: [RbConfig.ruby, "-I", LIB, CTL, "-F", @config, "restart"]).start
    assert_equal "200", Net::HTTP.get_response(URI("http://127.0.0.1:#{@port}/env")).code
  end

  def test_commands_without_a_signal_need_the_control_app
    File.write(@pidfile, "#{Process.pid}\n")
    out, status = ctl("-Q", "-P", @pidfile, "stats")
    assert_equal ["'stats' not available via pid only\n", 0], [out, status], "printed even with -Q, as pumactl"
  end

  # pumactl talks TLS to a control app bound on ssl://.
  def test_ssl_control_url
    certs = Certificates.write(@dir)
    control_port = ServerProcess.free_port
    control = "ssl://127.0.0.1:#{control_port}?cert=#{certs[:cert]}&key=#{certs[:key]}"
    File.write(@config, File.read(@config) + "activate_control_app #{control.inspect}, no_token: true\n")
    @server = ServerProcess.new("-C", @config, bind: nil).start
    out, status = ctl("-C", "ssl://127.0.0.1:#{control_port}", "stats")
    assert_equal 0, status, out
    assert_equal "Command stats sent success", out.lines.first.chomp
    assert_equal 0, JSON.parse(out.lines.last)["backlog"]
  end

  private

  def ctl(*args)
    out = IO.popen([RbConfig.ruby, "-I", LIB, CTL, *args], chdir: @dir, err: %i[child out], &:read)
    [out, $?.exitstatus]
  end
end
