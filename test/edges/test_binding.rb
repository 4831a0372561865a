# frozen_string_literal: true

require "support/helper"
require "support/server_test_case"
require "tmpdir"
require "fileutils"
require "socket"
require "rustpuma/default_bind"

# Where the server listens, as Puma 8's binder: `localhost` is every
# loopback address of the interfaces (whatever /etc/hosts lists), the
# default host is `[::]` (or `0.0.0.0` without IPv6), each listener gets its
# own "Listening on" line, and unix sockets are connectable by anyone
# unless `umask`/`mode` narrow them.
class TestBinding < Minitest::Test
  include ServerTestCase

  def loopbacks
    Socket.ip_address_list.select { |a| a.ipv4_loopback? || a.ipv6_loopback? }.map(&:ip_address).uniq
  end

  def get(sock)
    RawHTTP.request(sock, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
  ensure
    sock.close
  end

  def shown(addr)
    addr.include?(":") ? "[#{addr}]" : addr
  end

  def test_localhost_binds_every_loopback_address
    port = ServerProcess.free_port
    srv = start(HELLO, bind: "tcp://localhost:#{port}")
    lines = srv.output.scan(/^\* Listening on .*$/)
    assert_equal loopbacks.map { |a| "* Listening on http://#{shown(a)}:#{port}" }, lines
    loopbacks.each do |addr|
      assert_equal "Hello World\n", get(TCPSocket.new(addr, port)).body, "served on #{addr}"
    end
  end

  def test_port_flag_binds_the_default_host
    port = ServerProcess.free_port
    srv = start("-p", port.to_s, HELLO, bind: nil)
    host = Rustpuma::DefaultBind.ipv6_available? ? "[::]" : "0.0.0.0"
    assert_includes srv.output, "* Listening on http://#{host}:#{port}\n"
    assert_equal "Hello World\n", get(TCPSocket.new("127.0.0.1", port)).body, "IPv4 clients are served too"
  end

  def test_port_in_config_file_binds_the_default_host
    port = ServerProcess.free_port
    config = File.join(@dir, "puma.rb")
    File.write(config, "port #{port}\n")
    srv = start("-C", config, HELLO, bind: nil)
    host = Rustpuma::DefaultBind.ipv6_available? ? "[::]" : "0.0.0.0"
    assert_includes srv.output, "* Listening on http://#{host}:#{port}\n"
  end

  def test_unix_socket_is_connectable_by_anyone_by_default
    path = File.join(@dir, "open.sock")
    # A restrictive umask in the server's process must not leak into the
    # socket: nginx, running as another user, has to connect.
    srv = start(HELLO, bind: "unix://#{path}", spawn_options: { umask: 0o077 })
    assert_equal 0o777, File.stat(path).mode & 0o777
    assert_includes srv.output, "* Listening on unix://#{path}\n"
    assert_equal 200, get(UNIXSocket.new(path)).status
  end

  def test_umask_and_mode_still_narrow_the_socket
    narrow = File.join(@dir, "narrow.sock")
    start(HELLO, bind: "unix://#{narrow}?umask=0027")
    assert_equal 0o750, File.stat(narrow).mode & 0o777
    moded = File.join(@dir, "moded.sock")
    srv = start(HELLO, bind: "unix://#{moded}?mode=0660")
    assert_equal 0o660, File.stat(moded).mode & 0o777
    assert_includes srv.output, "* Listening on unix://#{moded}?mode=0660\n", "Puma shows the bind as given"
  end

  def test_socket_file_created_at_boot_is_removed_at_stop
    path = File.join(@dir, "mine.sock")
    srv = start(HELLO, bind: "unix://#{path}")
    assert File.socket?(path)
    srv.stop
    refute File.exist?(path)
  end

  def test_stale_socket_file_from_before_boot_is_reused_and_left_in_place
    path = File.join(@dir, "stale.sock")
    UNIXServer.new(path).close # a file with nobody behind it
    srv = start(HELLO, bind: "unix://#{path}")
    assert_equal 200, get(UNIXSocket.new(path)).status
    srv.stop
    assert File.socket?(path), "as Puma: a file that existed before boot is not this server's to remove"
  end

  def test_halt_removes_the_socket_file
    path = File.join(@dir, "halt.sock")
    srv = start("-w", "2", HELLO, bind: "unix://#{path}")
    srv.wait_for_output(/Worker 0 \(PID: \d+\) booted/, 20)
    srv.signal("QUIT")
    status = srv.wait(15)
    assert_equal 0, status.exitstatus
    assert_includes srv.output, "* Stopping immediately!"
    refute File.exist?(path)
  end
end
