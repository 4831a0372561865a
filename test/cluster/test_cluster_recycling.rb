# frozen_string_literal: true

require "support/cluster_support"

# worker_memory_limit and worker_max_requests: a worker past a limit is
# replaced with its replacement booted first, then stopped gracefully, so
# clients see no failure; the stats show why and how often.
class TestClusterRecycling < Minitest::Test
  include ClusterSupport

  CONFIG = File.join(FIXTURES, "cluster", "recycle.rb")
  APP = File.join(FIXTURES, "cluster", "recycle.ru")

  def recycling_server(**env)
    @control_port = ServerProcess.free_port
    env = env.to_h { |k, v| [k.to_s, v.to_s] }.merge("CONTROL_PORT" => @control_port.to_s)
    start("-C", CONFIG, APP, env: env)
  end

  def control_stats
    JSON.parse(get(@control_port, "/stats")[1])
  end

  # One worker, so the replacement is the only other process that can
  # serve: the old one must keep serving until the new one has booted.
  def test_worker_over_the_memory_limit_is_replaced_without_failed_requests
    srv = recycling_server(MEMORY_LIMIT: "100MB")
    old = booted_workers(srv).fetch(0)
    wait_until(10, "the first RSS reading") { control_stats["worker_status"].first["rss_bytes"].to_i.positive? }
    ok, failed = under_load(srv.port, threads: 6, path: "/work?s=0.02") do
      sleep 0.5 # pacing: requests in flight before the growth
      assert_equal 200, get(srv.port, "/grow?mb=120").first
      wait_until(30, "a new worker 0") { booted_workers(srv)[0] != old }
      wait_gone([old], 30)
      sleep 0.5 # the replacement serves alone for a moment
    end
    assert_empty failed, "#{failed.size} failed requests (of #{ok + failed.size}), e.g. #{failed.first}"
    assert_operator ok, :>, 20

    out = srv.output
    fresh = booted_workers(srv).fetch(0)
    assert_match(/Worker 0 \(PID: #{old}\) uses [\d.]+ MB of memory \(RSS\), above worker_memory_limit 100\.0 MB; booting its replacement/, out)
    replaced = out.index("Worker 0 (PID: #{old}) replaced by PID #{fresh}; stopping it gracefully")
    assert replaced, "no log line for the old worker's stop"
    assert_operator out.index(/Worker 0 \(PID: #{fresh}\) booted/), :<, replaced, "the replacement boots before the old worker is stopped"
    refute_includes out, "exited unexpectedly"

    stats = control_stats
    assert_equal 1, stats["worker_restarts"]["memory"]
    status = stats["worker_status"]
    assert_equal [fresh], status.map { |w| w["pid"] }
    assert_operator status.first["rss_bytes"], :<, 100 * 1024 * 1024
    assert_nil status.first["retiring"]
  end

  def test_worker_is_replaced_after_max_requests
    srv = recycling_server(WORKERS: 2, MAX_REQUESTS: 20)
    old = booted_workers(srv)
    assert_equal [20, 20], control_stats["worker_status"].map { |w| w["max_requests"] }

    # Fewer than 20 in all: nobody is due (two check intervals pass).
    10.times { assert_equal 200, get(srv.port).first }
    sleep 2.5 # a negative check: waiting for checks that must not act
    assert_equal old, booted_workers(srv)

    wait_until(30, "a worker replaced after 20 requests") do
      3.times { assert_equal 200, get(srv.port).first }
      (booted_workers(srv).values & old.values).size < 2
    end
    line = srv.output[/Worker \d \(PID: (\d+)\) has served (\d+) requests \(worker_max_requests: 20\); booting its replacement/]
    assert line, "no recycling line in:\n#{srv.output}"
    assert_operator Integer(Regexp.last_match(2)), :>=, 20
    replaced = Integer(Regexp.last_match(1))
    assert_includes old.values, replaced
    wait_gone([replaced], 30)
    assert_operator control_stats["worker_restarts"]["max_requests"], :>=, 1
  end

  # fork_worker: worker 0 (the others' parent) is stopped, then forked
  # again by the master; worker 1 is replaced by a fresh fork of worker 0,
  # booted first. Clients see no failure either way.
  def test_max_requests_under_fork_worker
    srv = recycling_server(WORKERS: 2, MAX_REQUESTS: 10, FORK_WORKER: 1)
    old = booted_workers(srv)
    ok, failed = under_load(srv.port, threads: 4) do
      wait_until(40, "both workers replaced") { (booted_workers(srv).values & old.values).empty? }
    rescue Minitest::Assertion => e
      # Failed once in a full clean-machine run (not reproduced alone, 0 of
      # 14): say what the master did, for the next look.
      raise e.class, "#{e.message}; old workers #{old.inspect}, master's last lines:\n#{srv.output.lines.last(40).join}"
    end
    assert_empty failed, "#{failed.size} failed requests (of #{ok + failed.size}), e.g. #{failed.first}"
    out = srv.output
    assert_match(/Worker 0 \(PID: #{old[0]}\) has served \d+ requests \(worker_max_requests: 10\); stopping it, a new worker 0 follows/, out)
    assert_match(/Worker 1 \(PID: #{old[1]}\) has served \d+ requests \(worker_max_requests: 10\); booting its replacement/, out)
    assert_match(/Worker 1 \(PID: #{old[1]}\) replaced by PID \d+; stopping it gracefully/, out)
    refute_includes out, "exited unexpectedly"
    wait_gone(old.values, 30)
  end

  # The jitter spreads each worker's limit over count..count+jitter.
  def test_max_requests_jitter_draws_a_limit_per_worker
    recycling_server(WORKERS: 2, MAX_REQUESTS: 1000, JITTER: 500)
    limits = control_stats["worker_status"].map { |w| w["max_requests"] }
    assert_equal 2, limits.size
    limits.each { |l| assert_includes 1000..1500, l }
  end
end
