# frozen_string_literal: true

require "support/cluster_support"
require "support/prometheus"

# /metrics in cluster mode: the master adds up what each worker reported at
# its last check-in, labelled worker="N", and never asks a worker anything,
# so a stuck worker cannot hold /metrics up.
class TestClusterMetrics < Minitest::Test
  include ClusterSupport

  def setup
    @dir = Dir.mktmpdir("rustpuma-cluster-metrics")
  end

  def teardown
    @stopped&.each { |pid| Process.kill("CONT", pid) rescue nil }
    super
    FileUtils.rm_rf(@dir)
  end

  def control_server
    @control_port = ServerProcess.free_port
    start("-C", File.join(FIXTURES, "cluster", "control.rb"), ClusterSupport::APP,
          env: { "CONTROL_PORT" => @control_port.to_s, "STATE_PATH" => File.join(@dir, "puma.state") })
  end

  def metrics
    status, body = get(@control_port, "/metrics?token=sekret", timeout: 5)
    assert_equal 200, status
    Prometheus.parse(body)
  end

  def requests_total(families, worker)
    Prometheus.samples(families, "rustpuma_requests", "rustpuma_requests_total", worker: worker).sum { |s| s[2] }
  end

  def test_master_serves_every_workers_figures_labelled_by_index
    srv = control_server
    assert_equal 403, get(@control_port, "/metrics").first
    20.times { assert_equal 200, get(srv.port, "/").first }
    # Workers report every worker_check_interval (1 s here).
    families = wait_until(10, "20 requests in /metrics") do
      f = metrics
      f if requests_total(f, "0") + requests_total(f, "1") >= 20
    end
    assert_equal "counter", families.dig("rustpuma_worker_restarts", "type")
    %w[rustpuma_requests rustpuma_request_phase_seconds rustpuma_threads_busy rustpuma_threads_max rustpuma_backlog
       rustpuma_connections_open rustpuma_worker_rss_bytes].each do |name|
      assert families.key?(name), "#{name} in #{families.keys}"
      workers = families[name]["samples"].map { |_, labels, _| labels["worker"] }.uniq.sort
      assert_equal %w[0 1], workers, name
    end
    %w[0 1].each do |w|
      count = Prometheus.samples(families, "rustpuma_request_phase_seconds", "rustpuma_request_phase_seconds_count",
                                 worker: w, phase: "app")
      assert_equal [requests_total(families, w)], count.map { |s| s[2] }
      rss = Prometheus.samples(families, "rustpuma_worker_rss_bytes", "rustpuma_worker_rss_bytes", worker: w)
      assert_operator rss.first[2], :>, 1024 * 1024
    end
    # A check-in is one pipe write: past PIPE_BUF (4096 bytes) lines from
    # two workers could interleave. Its JSON is the worker's last_status.
    _, body = get(@control_port, "/stats?token=sekret")
    JSON.parse(body)["worker_status"].each do |w|
      assert_operator JSON.generate(w["last_status"]).bytesize, :<, 3000, "check-in line near PIPE_BUF"
    end
  end

  def test_a_stopped_worker_does_not_hold_up_metrics_and_a_dead_one_is_counted
    srv = control_server
    workers = booted_workers(srv)
    Process.kill("STOP", workers[0])
    (@stopped ||= []) << workers[0]
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    families = metrics
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 3
    assert_equal 2, families["rustpuma_threads_max"]["samples"].size

    Process.kill("CONT", workers[0])
    Process.kill("KILL", workers[1])
    wait_until(20, "worker 1 replaced") { booted_workers(srv)[1] != workers[1] }
    restarts = Prometheus.samples(metrics, "rustpuma_worker_restarts", "rustpuma_worker_restarts_total")
                         .to_h { |_, labels, n| [labels["reason"], n] }
    assert_equal({ "memory" => 0, "max_requests" => 0, "timeout" => 0, "exited" => 1 }, restarts)
  end
end
