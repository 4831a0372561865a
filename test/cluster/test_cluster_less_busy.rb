# frozen_string_literal: true

require "support/cluster_support"

# wait_for_less_busy_worker: a worker with requests in flight delays its
# accept, so an idle worker takes new connections (Puma's cluster accept
# delay, done in our reactor). nakayoshi_fork runs before the first fork.
class TestClusterLessBusy < Minitest::Test
  include ClusterSupport

  CONFIG = File.join(FIXTURES, "cluster", "less_busy.rb")

  def test_idle_worker_takes_new_connections_while_the_other_is_busy
    srv = start("-C", CONFIG, ClusterSupport::APP)
    assert_equal [0, 1], booted_workers(srv).keys.sort
    assert_includes srv.output, "! Promoting existing objects to old generation..."
    slow = Thread.new { get(srv.port, "/slow?s=4&token=busy", timeout: 15) }
    srv.wait_for_output(/slow request started busy in (\d+)/)
    busy_pid = Integer(srv.output[/slow request started busy in (\d+)/, 1])
    served = Array.new(6) { Integer(get(srv.port)[1]) }
    refute_includes served, busy_pid, "the busy worker accepted a connection the idle one could serve"
    assert_equal 200, slow.value.first
  ensure
    slow&.kill
  end
end
