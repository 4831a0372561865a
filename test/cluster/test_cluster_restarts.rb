# frozen_string_literal: true

require "support/cluster_support"

# Hot (USR2) and phased (USR1) restarts while clients keep connecting: no
# request may fail, and the workers must be new processes afterwards.
class TestClusterRestarts < Minitest::Test
  include ClusterSupport

  LOAD_SECONDS = 5

  def test_usr2_hot_restart_under_load
    srv = start("-w", "2", "-t", "4:4", ClusterSupport::APP)
    old = booted_workers(srv).values
    master = master_pid(srv)
    ok, failed = under_load(srv.port) do
      sleep 1 # let the load build up before the restart (pacing, not synchronisation)
      srv.signal("USR2")
      # "Use Ctrl-C to stop" comes before the worker lines, as in Puma.
      wait_until(20, "the second boot") { srv.output.scan("Use Ctrl-C to stop").size >= 2 && all_booted_pids(srv).size >= 4 }
      sleep LOAD_SECONDS - 1
    end
    assert_empty failed, "#{failed.size} failed requests (of #{ok + failed.size}), e.g. #{failed.first}"
    assert_operator ok, :>, 50
    assert_includes srv.output, "* Restarting..."
    assert_includes srv.output, "* Inherited tcp://127.0.0.1:0"
    fresh = booted_workers(srv).values
    assert_empty fresh & old, "workers were not replaced"
    wait_gone(old)
    assert alive?(master), "a hot restart keeps the master's pid"
  end

  def test_usr1_phased_restart_under_load
    srv = start("-C", File.join(FIXTURES, "cluster", "phased.rb"), "-t", "4:4", ClusterSupport::APP)
    assert srv.output.b.include?("(\u2714) phased".b), "phased restarts should be announced as available"
    old = booted_workers(srv).values
    ok, failed = under_load(srv.port) do
      sleep 1 # pacing
      srv.signal("USR1")
      srv.wait_for_output("- Starting phased worker restart, phase: 1")
      srv.wait_for_output(/Worker 0 \(PID: \d+\) booted in [\d.]+s, phase: 1/, 20)
      srv.wait_for_output(/Worker 1 \(PID: \d+\) booted in [\d.]+s, phase: 1/, 20)
      sleep 1
    end
    assert_empty failed, "#{failed.size} failed requests (of #{ok + failed.size}), e.g. #{failed.first}"
    assert_operator ok, :>, 50
    assert_includes srv.output, "- Stopping #{old[0]} for phased upgrade..."
    fresh = booted_workers(srv).values
    assert_empty fresh & old
    wait_gone(old)
    stats = JSON.parse(get(srv.port, "/stats")[1])
    assert_equal 1, stats["phase"] if stats["phase"] # inside a worker the master's list is empty
  end

  def test_usr1_with_preloaded_app_falls_back_to_hot_restart
    srv = start("-w", "2", ClusterSupport::APP)
    old = booted_workers(srv).values
    srv.signal("USR1")
    srv.wait_for_output("* phased-restart called but not available, restarting normally.")
    wait_until(20, "the second boot") { srv.output.scan("Use Ctrl-C to stop").size >= 2 && all_booted_pids(srv).size >= 4 }
    assert_empty booted_workers(srv).values & old
    assert_equal 200, get(srv.port).first
  end
end
