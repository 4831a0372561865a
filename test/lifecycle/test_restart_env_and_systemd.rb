# frozen_string_literal: true

require "support/helper"
require "socket"
require "tmpdir"
require "timeout"

# A hot restart (USR2) starts the next image with the environment the
# server was launched with, as Puma does: what the app put in ENV does not
# leak. And systemd's notify socket gets Puma's messages, one per datagram:
# READY=1, STATUS=… every second, RELOADING=1 on USR2, STOPPING=1.
class TestRestartEnvAndSystemd < Minitest::Test
  APP = File.join(FIXTURES, "restart_env.ru")

  def setup
    @dir = Dir.mktmpdir("rustpuma-restart-env")
  end

  def teardown
    @server&.stop
    @notify&.close
    FileUtils.rm_rf(@dir)
  end

  def seen
    RawHTTP.get(@server.host, @server.port, "/").body
  end

  def restarted(before)
    Timeout.timeout(20) do
      loop do
        now = seen
        return now if now != before
      rescue SystemCallError, IOError
        nil # the new image is not answering yet; the listener is inherited, so retry
      end
    end
  end

  def assert_launch_env_restored(*args)
    @server = ServerProcess.new(*args, APP, env: { "LAUNCH_VALUE" => "original" }).start
    first = seen
    assert_match(/LAUNCH_VALUE="original" APP_SET=nil\z/, first)
    @server.signal("USR2")
    second = restarted(first)
    assert_match(/LAUNCH_VALUE="original" APP_SET=nil\z/, second, "the app's ENV changes leaked into the restart")
  end

  def test_usr2_restores_the_launch_environment_in_single_mode
    assert_launch_env_restored("-t", "1:2")
  end

  def test_usr2_restores_the_launch_environment_in_cluster_mode_with_preload
    assert_launch_env_restored("-w", "2", "--preload")
  end

  # Datagrams until one matches +pattern+; every one must be a single
  # notification (no newline-joined states).
  def next_notification(pattern, seen_list)
    Timeout.timeout(10) do
      loop do
        message = @notify.recv(4096)
        seen_list << message
        refute_includes message, "\n", "one notification per datagram"
        return message if message.match?(pattern)
      end
    end
  end

  def test_systemd_receives_pumas_messages_one_per_datagram
    path = File.join(@dir, "notify.sock")
    @notify = Socket.new(:UNIX, :DGRAM, 0)
    @notify.bind(Socket.sockaddr_un(path))
    @server = ServerProcess.new("-t", "2:3", APP, env: { "NOTIFY_SOCKET" => path }).start
    all = []
    assert_equal "READY=1", next_notification(/./, all)
    status = next_notification(/\ASTATUS=/, all)
    assert_match(/\ASTATUS=Puma [\d.]+: worker: \{ \d+\/3 threads, \d+ available, 0 backlog \}\z/, status)
    assert_includes @server.output, "* Enabling systemd notification integration"
    assert_includes @server.output, "Sending status to systemd every 1.0 sec"

    @server.signal("USR2")
    next_notification(/\ARELOADING=1\z/, all)
    next_notification(/\AREADY=1\z/, all)
    @server.signal("TERM")
    next_notification(/\ASTOPPING=1\z/, all)
    assert_equal 0, @server.wait.exitstatus unless @server.wait.signaled?
  end

  def test_systemd_status_in_cluster_mode_lists_each_worker
    path = File.join(@dir, "notify.sock")
    @notify = Socket.new(:UNIX, :DGRAM, 0)
    @notify.bind(Socket.sockaddr_un(path))
    @server = ServerProcess.new("-w", "2", "-t", "1:4", APP, env: { "NOTIFY_SOCKET" => path }).start
    all = []
    status = next_notification(%r{\ASTATUS=.*cluster: 2/2}, all)
    worker = '\{ \d+/4 threads, \d+ available, 0 backlog \}'
    assert_match(/\ASTATUS=Puma [\d.]+: cluster: 2\/2, worker_status: \[#{worker},#{worker}\]\z/, status)
    assert_equal "READY=1", all.first
  end
end
