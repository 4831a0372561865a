# frozen_string_literal: true

require "support/helper"
require "tmpdir"
require "fileutils"
require "socket"

# unix:// binds as in Puma: `umask`, `mode` and `backlog` query options, a
# stale socket file (nobody listening) replaced, a live one refused.
class TestUnixSockets < Minitest::Test
  HELLO = File.join(ServerProcess::ROOT, "examples", "hello.ru")

  def setup
    @dir = Dir.mktmpdir("rustpuma-unix")
  end

  def teardown
    @servers&.each(&:stop)
    FileUtils.remove_entry(@dir)
  end

  def start(bind)
    (@servers ||= []) << ServerProcess.new(HELLO, bind: bind).start
    @servers.last
  end

  def get(path)
    socket = UNIXSocket.new(path)
    RawHTTP.request(socket, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
  ensure
    socket&.close
  end

  def test_mode_and_backlog_options
    path = File.join(@dir, "mode.sock")
    start("unix://#{path}?mode=0600&backlog=16")
    assert_equal 0o600, File.stat(path).mode & 0o777
    assert_equal "Hello World\n", get(path).body
  end

  def test_umask_option
    path = File.join(@dir, "umask.sock")
    start("unix://#{path}?umask=0077")
    assert_equal 0, File.stat(path).mode & 0o077, "group and others get nothing under umask 0077"
  end

  def test_stale_socket_file_is_replaced_and_live_one_is_an_error
    path = File.join(@dir, "stale.sock")
    UNIXServer.new(path).close # leaves the file, with nobody listening
    assert File.socket?(path)
    start("unix://#{path}")
    assert_equal 200, get(path).status

    second = ServerProcess.new(HELLO, bind: "unix://#{path}", wait_for: nil).start
    status = second.wait(15)
    refute status.success?
    assert_includes second.output, "There is already a server bound to: #{path}"
    assert_equal 200, get(path).status, "the first server keeps its socket"
  end

  def test_socket_file_is_removed_on_stop
    path = File.join(@dir, "gone.sock")
    server = start("unix://#{path}")
    assert File.socket?(path)
    server.stop
    refute File.exist?(path)
  end
end
