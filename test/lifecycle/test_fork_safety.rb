# frozen_string_literal: true

require "support/helper"
require "json"

# An app that forks while the native core serves (single mode here; worker
# 0 under fork_worker in test/cluster/test_cluster_fork_safety.rb): the
# reactor is parked at a point where it holds no lock while the fork
# happens, and the child keeps none of the core's descriptors and cannot use
# the server it inherited.
class TestForkSafety < Minitest::Test
  APP = File.join(FIXTURES, "fork_in_request.ru")

  def teardown
    @srv&.stop
  end

  def test_a_child_forked_by_the_app_inherits_a_parked_reactor_and_no_core_descriptor
    @srv = ServerProcess.new("-t", "2:2", APP, env: { "RUSTPUMA_TEST_HOOKS" => "1" }).start
    # A second connection the reactor holds (keep-alive) while the app forks.
    idle = TCPSocket.new(@srv.host, @srv.port)
    assert_equal 200, RawHTTP.request(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").status

    sock = TCPSocket.new(@srv.host, @srv.port)
    res = RawHTTP.request(sock, "GET /fork HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_equal 200, res.status
    child = JSON.parse(res.body)
    assert_equal true, child["parked"], "the reactor must be parked at the fork"
    assert_equal false, child["usable"], "the inherited server is inert in the child"
    # Only the listening socket (Ruby's) remains: not the core's copy of
    # it, nor this request's connection, nor the idle one.
    assert_equal({ "socket" => 1 }, child["fds"].slice("socket"))
    assert_nil child["fds"]["anon_inode:[eventpoll]"], "the reactor's epoll instances"
    # Ruby has eventfds of its own (made anew in the child); the reactor's
    # is one of the parent's.
    assert_equal child["parent_fds"]["anon_inode:[eventfd]"] - 1, child["fds"]["anon_inode:[eventfd]"],
                 "the reactor's eventfd"

    # The parent's reactor goes on after the fork.
    assert_equal 200, RawHTTP.request(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").status
  ensure
    idle&.close
    sock&.close
  end
end
