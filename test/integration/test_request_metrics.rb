# frozen_string_literal: true

require "support/helper"
require "support/server_test_case"
require "support/polling"
require "support/prometheus"
require "support/raw_http"
require "support/slow_reader_socket"
require "json"
require "net/http"

# Per-request phases (queue, gvl_wait, app, write) measured by the native
# core, as the app sees them (env["rustpuma.timings"] in callbacks), in the
# request log (`log_requests :phases`), and as /metrics and /stats report
# them in single mode (cluster mode: test/cluster/test_cluster_metrics.rb).
class TestRequestMetrics < Minitest::Test
  include ServerTestCase
  include Polling

  APP = File.join(FIXTURES, "timings.ru")
  TOKEN = "metrics-token"
  # Phases are wall-clock times on a busy machine: generous bounds, the
  # lower one is what proves the phase was measured where it should be.
  SLEPT = (0.045..1.0).freeze

  def get(port, path)
    Net::HTTP.start("127.0.0.1", port, open_timeout: 5, read_timeout: 10) { |http| http.get(path) }
  end

  def timings(srv)
    JSON.parse(get(srv.port, "/timings").body)
  end

  def with_control(*extra)
    @control_port = ServerProcess.free_port
    config = write_config(<<~RUBY)
      activate_control_app "tcp://127.0.0.1:#{@control_port}", auth_token: "#{TOKEN}"
      #{extra.join("\n")}
    RUBY
    ["-C", config]
  end

  def test_the_app_phase_is_the_time_spent_in_call
    srv = start("-t", "1:1", APP)
    assert_equal "slept", get(srv.port, "/sleep").body
    recorded = timings(srv)
    assert_equal 1, recorded.size
    phases = recorded.first
    assert_equal %w[queue gvl_wait app write], phases.keys
    assert_includes SLEPT, phases["app"], phases.inspect
    assert_operator phases["queue"], :<, 0.045, "nothing was waiting: #{phases}"
    # The reactor writes this response after the callback can run.
    assert_nil phases["write"]
  end

  def test_after_reply_sees_the_write_phase_too
    srv = start("-t", "1:1", APP)
    get(srv.port, "/sleep?after_reply=1")
    phases = timings(srv).first
    assert_includes SLEPT, phases["app"]
    assert_kind_of Float, phases["write"], "after_reply runs once the pool thread wrote the response"
    assert_operator phases["write"], :>=, 0
  end

  # One thread, two requests at once: the second waits for the first's
  # 50 ms in the queue.
  def test_the_second_of_two_concurrent_requests_waits_in_the_queue
    srv = start("-t", "1:1", APP)
    2.times.map { Thread.new { get(srv.port, "/sleep").body } }.each { |t| assert_equal "slept", t.value }
    recorded = timings(srv)
    assert_equal 2, recorded.size
    recorded.each { |phases| assert_includes SLEPT, phases["app"], recorded.inspect }
    queues = recorded.map { |phases| phases["queue"] }.sort
    assert_operator queues.last, :>=, 0.045, "the second request waited for the first: #{recorded}"
    assert_operator queues.first, :<, 0.045, "the first did not: #{recorded}"
  end

  def test_log_requests_phases_appends_each_phase
    srv = start(*with_control("log_requests :phases"), "-t", "1:1", APP)
    get(srv.port, "/sleep")
    srv.wait_for_output(%r{"GET /sleep HTTP/1.1" 200 .*write=})
    line = srv.output.lines.grep(%r{GET /sleep}).first
    m = line.match(/ - \d+\.\d{4} queue=(\d+\.\d{6}) gvl_wait=(\d+\.\d{6}) app=(\d+\.\d{6}) write=(-|\d+\.\d{6})\n\z/)
    assert m, line
    assert_includes SLEPT, Float(m[3])
  end

  def test_metrics_off_records_nothing
    srv = start(*with_control("request_metrics false"), "-t", "1:1", APP)
    get(srv.port, "/sleep")
    assert_equal [{ "queue" => nil, "gvl_wait" => nil, "app" => nil, "write" => nil }], timings(srv)
    families = Prometheus.parse(get(@control_port, "/metrics?token=#{TOKEN}").body)
    assert_equal 0, Prometheus.samples(families, "rustpuma_requests", "rustpuma_requests_total").sum { |s| s[2] }
  end

  def test_metrics_endpoint_is_prometheus_text_with_every_family
    srv = start(*with_control, "-t", "2:2", APP)
    get(srv.port, "/sleep")
    get(srv.port, "/sleep")
    assert_equal 404, get(srv.port, "/missing").code.to_i
    assert_equal 4 * 1024 * 1024, get(srv.port, "/big").body.bytesize
    assert_equal 403, get(@control_port, "/metrics").code.to_i
    assert_equal 403, get(@control_port, "/metrics?token=wrong").code.to_i

    response = get(@control_port, "/metrics?token=#{TOKEN}")
    assert_equal 200, response.code.to_i
    assert_match(%r{\Atext/plain; version=0\.0\.4}, response["content-type"])
    families = Prometheus.parse(response.body)
    assert_families(families)

    total = ->(klass) { Prometheus.samples(families, "rustpuma_requests", "rustpuma_requests_total", status_class: klass).sum { |s| s[2] } }
    assert_equal 3, total.call("2xx")
    assert_equal 1, total.call("4xx")
    phase = ->(name, p, f = families) { Prometheus.samples(f, "rustpuma_request_phase_seconds", name, phase: p) }
    %w[queue gvl_wait app].each { |p| assert_equal 4, phase.call("rustpuma_request_phase_seconds_count", p).first[2], p }
    assert_operator phase.call("rustpuma_request_phase_seconds_sum", "app").first[2], :>=, 2 * SLEPT.first
    le = phase.call("rustpuma_request_phase_seconds_bucket", "app").to_h { |_, l, v| [l["le"], v] }
    assert_equal 2, le["0.025"], "only /missing and /big answered within 25 ms"
    assert_equal 4, le["+Inf"]
    # The reactor counts a write once its last byte is out, which may be
    # just after the client has it: every response's write, /big's too.
    wait_until(5, "4 writes") do
      f = Prometheus.parse(get(@control_port, "/metrics?token=#{TOKEN}").body)
      phase.call("rustpuma_request_phase_seconds_count", "write", f).first[2] == 4
    end
    assert_equal 2, sample(families, "rustpuma_threads_max")
    assert_operator sample(families, "rustpuma_worker_rss_bytes"), :>, 1024 * 1024
    assert_equal 0, sample(families, "rustpuma_worker_restarts", "rustpuma_worker_restarts_total")
  end

  # The write phase is the wait for the client: 0 for a response the socket
  # takes whole (the reactor spends no clock read on it), and for one whose
  # client reads late, at least that delay (the last byte cannot leave
  # before the client starts reading; the first left before it saw any).
  def test_the_write_phase_is_the_wait_for_the_client
    srv = start(*with_control, "-t", "1:1", APP)
    write = lambda do
      f = Prometheus.parse(get(@control_port, "/metrics?token=#{TOKEN}").body)
      %w[count sum].map do |k|
        Prometheus.samples(f, "rustpuma_request_phase_seconds", "rustpuma_request_phase_seconds_#{k}", phase: "write").first[2]
      end
    end
    assert_equal 404, get(srv.port, "/missing").code.to_i
    wait_until(5, "the 404's write") { write.call.first == 1 }
    assert_equal [1, 0.0], write.call

    late = 0.3
    sock = SlowReaderSocket.connect("127.0.0.1", srv.port)
    sock.write("GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert sock.wait_readable(10), "the first bytes of /big"
    sleep late # the client reading late is what is measured
    assert_equal 4 * 1024 * 1024, RawHTTP.read_response(sock, timeout: 30).body.bytesize
    wait_until(5, "the slow write") { write.call.first == 2 }
    assert_operator write.call.last, :>=, late
  ensure
    sock&.close
  end

  # The server never sees the status of a response the app writes on a
  # socket it took, so it is counted under its own class, not left out.
  def test_a_full_hijack_is_counted_as_hijacked
    srv = start(*with_control, "-t", "1:1", APP)
    assert_equal "hijacked", RawHTTP.get("127.0.0.1", srv.port, "/hijack").body
    assert_equal 404, get(srv.port, "/missing").code.to_i
    total = lambda do |klass|
      f = Prometheus.parse(get(@control_port, "/metrics?token=#{TOKEN}").body)
      Prometheus.samples(f, "rustpuma_requests", "rustpuma_requests_total", status_class: klass).sum { |x| x[2] }
    end
    wait_until(5, "the 404 counted") { total.call("4xx") == 1 }
    assert_equal [1, 0, 0], [total.call("hijacked"), total.call("1xx"), total.call("2xx")]
  end

  def test_stats_carry_the_same_figures_next_to_pumas_keys
    srv = start(*with_control, "-t", "3:3", APP)
    get(srv.port, "/sleep")
    stats = JSON.parse(get(@control_port, "/stats?token=#{TOKEN}").body)
    %w[backlog running pool_capacity busy_threads max_threads requests_count].each { |k| assert stats.key?(k), k }
    metrics = stats.fetch("metrics")
    assert_equal 1, metrics.dig("requests", "2xx")
    assert_equal 3, metrics["threads_max"]
    assert_equal 19, metrics.dig("phases", "app", "buckets").size, "18 bounds (25 µs to 10 s), then +Inf"
    assert_includes SLEPT, metrics.dig("phases", "app", "sum")
    %w[threads_busy backlog connections_open rss_bytes].each { |k| assert_kind_of Integer, metrics[k], k }
  end

  private

  FAMILIES = {
    "rustpuma_requests" => "counter", "rustpuma_request_phase_seconds" => "histogram",
    "rustpuma_threads_busy" => "gauge", "rustpuma_threads_max" => "gauge", "rustpuma_backlog" => "gauge",
    "rustpuma_connections_open" => "gauge", "rustpuma_worker_rss_bytes" => "gauge",
    "rustpuma_worker_restarts" => "counter"
  }.freeze

  def assert_families(families, labels = {})
    FAMILIES.each do |name, type|
      assert_equal type, families.dig(name, "type"), "#{name} in #{families.keys}"
    end
    %w[queue gvl_wait app write].each do |phase|
      buckets = Prometheus.samples(families, "rustpuma_request_phase_seconds", "rustpuma_request_phase_seconds_bucket",
                                   labels.merge(phase: phase))
      counts = buckets.map { |s| s[2] }
      assert_equal counts.sort, counts, "#{phase} buckets are cumulative"
      assert_equal "+Inf", buckets.last[1]["le"]
      count = Prometheus.samples(families, "rustpuma_request_phase_seconds", "rustpuma_request_phase_seconds_count",
                                 labels.merge(phase: phase))
      assert_equal [counts.last], count.map { |s| s[2] }
    end
  end

  def sample(families, family, name = family)
    values = Prometheus.samples(families, family, name).map { |s| s[2] }
    assert_equal 1, values.size, "#{name}: #{values}"
    values.first
  end
end
