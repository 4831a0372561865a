# frozen_string_literal: true

require "support/helper"
require "tmpdir"
require "fileutils"

# Hot restart in single mode (USR2, and tmp/restart.txt with
# `plugin :tmp_restart`): the process re-execs itself with its listening
# sockets inherited, so the app is reloaded and no connection is refused.
class TestRestart < Minitest::Test
  APP = File.join(FIXTURES, "pid.ru")

  def boot_id(server)
    RawHTTP.get(server.host, server.port, "/").body
  end

  def wait_for_new_boot(server, old_id, timeout: 20)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      id = boot_id(server)
      return id if id != old_id

      flunk "no restart within #{timeout}s:\n#{server.output}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
    end
  end

  def test_usr2_reexecs_with_inherited_socket_and_refuses_nobody
    server = ServerProcess.new(APP).start
    begin
      first = boot_id(server)
      failures = []
      served = 0
      stop = false
      clients = 4.times.map do
        Thread.new do
          until stop
            begin
              response = RawHTTP.get(server.host, server.port, "/")
              response.status == 200 ? served += 1 : failures << response.status
            rescue SystemCallError, IOError => e
              failures << e.class
            end
          end
        end
      end
      server.signal("USR2")
      second = wait_for_new_boot(server, first)
      stop = true
      clients.each(&:join)

      assert_equal first.split("-").first, second.split("-").first, "a hot restart keeps the pid (exec)"
      assert_empty failures, "requests failed during the restart"
      assert_operator served, :>, 0
      assert_includes server.output, "* Restarting..."
      assert_includes server.output, "* Inherited tcp://127.0.0.1:0"
    ensure
      stop = true
      server.stop
    end
  end

  def test_touching_tmp_restart_txt_restarts
    Dir.mktmpdir("rustpuma-restart") do |dir|
      FileUtils.mkdir_p(File.join(dir, "tmp"))
      File.write(File.join(dir, "puma.rb"), "plugin :tmp_restart\n")
      server = ServerProcess.new("-C", "puma.rb", APP, dir: dir).start
      begin
        first = boot_id(server)
        FileUtils.touch(File.join(dir, "tmp", "restart.txt"))
        wait_for_new_boot(server, first)
        assert_includes server.output, "* Restarting..."
      ensure
        server.stop
      end
    end
  end
end
