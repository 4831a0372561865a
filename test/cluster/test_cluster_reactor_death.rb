# frozen_string_literal: true

require "support/cluster_support"

# A worker whose reactor thread dies exits with status 1 (instead of keeping
# its listener and checking in while serving nobody), and the master
# replaces it like any dead worker.
class TestClusterReactorDeath < Minitest::Test
  include ClusterSupport

  def test_worker_with_a_dead_reactor_is_replaced
    srv = start("-w", "1", "-t", "1:1", File.join(FIXTURES, "faults.ru"), env: { "RUSTPUMA_TEST_HOOKS" => "1" })
    old = booted_workers(srv)[0]
    # The reactor panics on the turn that takes this response back, after
    # writing it: the answer comes, then the worker dies.
    assert_equal [200, "crashing"], get(srv.port, "/crash")
    srv.wait_for_output("! Reactor thread panicked", 10)
    srv.wait_for_output(/Worker 0 \(PID: (?!#{old}\))\d+\) booted/, 20)
    refute alive?(old)
    status, body = get(srv.port, "/pid")
    assert_equal 200, status
    refute_equal old, Integer(body), "a replacement worker serves"
  end
end
