# frozen_string_literal: true

require "support/helper"
require "socket"

# systemd socket activation: a listening socket passed as fd 3 with
# LISTEN_FDS/LISTEN_PID is used for the matching bind instead of binding
# again (so systemd can hold the port across restarts), as Puma does.
class TestSocketActivation < Minitest::Test
  HELLO = File.join(ServerProcess::ROOT, "examples", "hello.ru")
  # systemd sets LISTEN_PID to the service's pid; exec keeps the pid, so a
  # tiny wrapper can set it before becoming rustpuma.
  WRAPPER = 'ENV["LISTEN_PID"] = Process.pid.to_s; exec(*ARGV)'

  def start_activated(socket, *args)
    command = [RbConfig.ruby, "-e", WRAPPER, RbConfig.ruby, "-I", File.join(ServerProcess::ROOT, "lib"), ServerProcess::EXE]
    ServerProcess.new(*args, HELLO, bind: nil, command: command, env: { "LISTEN_FDS" => "1" },
                                    spawn_options: { 3 => socket }).start
  end

  def test_matching_bind_uses_the_activated_socket
    socket = TCPServer.new("127.0.0.1", 0)
    port = socket.addr[1]
    server = start_activated(socket, "-b", "tcp://127.0.0.1:#{port}")
    socket.close # only the server's copy is left
    assert_includes server.output, "* Activated tcp://127.0.0.1:#{port}"
    assert_equal "Hello World\n", RawHTTP.get("127.0.0.1", port, "/").body
  ensure
    server&.stop
  end

  def test_bind_to_activated_sockets_only
    socket = TCPServer.new("127.0.0.1", 0)
    port = socket.addr[1]
    server = start_activated(socket, "--bind-to-activated-sockets=only", "-b", "tcp://127.0.0.1:0")
    socket.close
    assert_includes server.output, "* Activated tcp://127.0.0.1:#{port}"
    # As Puma: an activated socket is announced by its "Activated" line only.
    assert_equal 0, server.output.scan("* Listening on").size, "the configured bind is skipped with 'only'"
    assert_equal 200, RawHTTP.get("127.0.0.1", port, "/").status
  ensure
    server&.stop
  end
end
