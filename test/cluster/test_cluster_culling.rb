# frozen_string_literal: true

require "support/cluster_support"

# Fewer workers (TTOU) stops the youngest or the oldest worker, as
# worker_culling_strategy says, and the master runs after_worker_shutdown
# with the reaped worker's handle.
class TestClusterCulling < Minitest::Test
  include ClusterSupport

  CONFIG = File.join(FIXTURES, "cluster", "culling.rb")

  def cull_one(strategy)
    srv = start("-C", CONFIG, ClusterSupport::APP, env: { "CULLING" => strategy })
    workers = booted_workers(srv)
    assert_equal [0, 1, 2], workers.keys.sort
    srv.signal("TTOU")
    srv.wait_for_output(/- Worker (\d) \(PID: (\d+)\) terminating/)
    index, pid = srv.output.match(/- Worker (\d) \(PID: (\d+)\) terminating/).captures.map(&:to_i)
    assert_equal workers[index], pid
    srv.wait_for_output(/after_worker_shutdown index=#{index} pid=#{pid} success=(true|false)/)
    wait_gone([pid])
    assert_equal 200, get(srv.port).first
    index
  end

  def test_youngest_strategy_stops_the_newest_worker
    assert_equal 2, cull_one("youngest")
  end

  def test_oldest_strategy_stops_the_first_worker
    assert_equal 0, cull_one("oldest")
  end
end
