# frozen_string_literal: true

require "support/cluster_support"

# Hooks, the control app, the state file and rustpumactl.
class TestClusterControl < Minitest::Test
  include ClusterSupport

  def setup
    @dir = Dir.mktmpdir("rustpuma-cluster")
  end

  def teardown
    super
    FileUtils.rm_rf(@dir)
  end

  def test_hooks_run_in_the_right_process_and_order
    log = File.join(@dir, "hooks.log")
    srv = start("-C", File.join(FIXTURES, "cluster", "hooks.rb"), ClusterSupport::APP, env: { "HOOK_LOG" => log })
    master = master_pid(srv)
    workers = booted_workers(srv)
    wait_until(5, "after_booted") { File.read(log).include?("after_booted") }
    srv.signal("TERM")
    assert_clean_stop(srv.wait)
    lines = File.readlines(log, chomp: true).map(&:split)
    names = lines.map(&:first)

    assert_equal %W[before_fork #{master}], lines.first
    %w[before_worker_fork after_worker_fork].each do |hook|
      assert_equal [[hook, master.to_s, "0"], [hook, master.to_s, "1"]], lines.select { |l| l[0] == hook }
    end
    boots = lines.select { |l| l[0] == "before_worker_boot" }.to_h { |l| [Integer(l[2]), Integer(l[1])] }
    assert_equal workers, boots, "before_worker_boot runs in each worker with its index"
    shutdowns = lines.select { |l| l[0] == "before_worker_shutdown" }.to_h { |l| [Integer(l[2]), Integer(l[1])] }
    assert_equal workers, shutdowns
    assert_equal ["after_booted", master.to_s], lines.find { |l| l[0] == "after_booted" }
    assert_equal ["after_stopped", master.to_s], lines.last
    assert_operator names.index("after_booted"), :>, names.rindex("before_worker_boot")
  end

  def control_server
    @control_port = ServerProcess.free_port
    @state = File.join(@dir, "puma.state")
    start("-C", File.join(FIXTURES, "cluster", "control.rb"), ClusterSupport::APP,
          env: { "CONTROL_PORT" => @control_port.to_s, "STATE_PATH" => @state })
  end

  def test_control_app_stats_and_auth
    srv = control_server
    assert_includes srv.output, "* Starting control server on http://127.0.0.1:#{@control_port}"
    status, body = get(@control_port, "/stats?token=sekret")
    assert_equal 200, status
    stats = JSON.parse(body)
    # Puma 8.0.2's cluster stats, key for key (plus `versions`).
    %w[started_at workers phase booted_workers old_workers worker_status versions].each { |k| assert_includes stats, k }
    assert_equal 2, stats["workers"]
    assert_equal 2, stats["booted_workers"]
    w = stats["worker_status"].first
    %w[started_at pid index phase booted last_checkin last_status].each { |k| assert_includes w, k }
    # Puma's keys, and rustpuma's own under `metrics` (test_cluster_metrics.rb)
    # and `process` (CPU figures for /advice, test_advice_apps.rb).
    assert_equal %w[backlog backlog_max busy_threads io_threads max_threads metrics pool_capacity process
                    reactor_max requests_count running], w["last_status"].keys.sort
    assert_equal %w[clock cpu_seconds runqueue_seconds], w["last_status"]["process"].keys.sort
    assert_equal booted_workers(srv).values.sort, stats["worker_status"].map { |x| x["pid"] }.sort

    assert_equal 403, get(@control_port, "/stats?token=wrong").first
    assert_equal 403, get(@control_port, "/stats").first
    assert_equal 404, get(@control_port, "/nope?token=sekret").first
    assert_equal 200, get(@control_port, "/gc-stats?token=sekret").first
    status, body = get(@control_port, "/thread-backtraces?token=sekret")
    assert_equal 200, status
    assert_kind_of Array, JSON.parse(body)

    state = File.read(@state)
    assert_match(/^pid: #{master_pid(srv)}$/, state)
    assert_match(%r{^control_url: tcp://127.0.0.1:#{@control_port}$}, state)
    assert_match(/^control_auth_token: sekret$/, state)
  end

  # The master forks at any time (replacements, restarts, TTIN): a native
  # thread there could hold a lock at the fork that the child then waits
  # on forever. Serving control requests must not start one.
  def test_the_master_runs_no_native_thread_while_serving_control_requests
    srv = control_server
    5.times { assert_equal 200, get(@control_port, "/stats?token=sekret").first }
    assert_equal 403, get(@control_port, "/stats").first
    native = ->(pid) { thread_names(pid).grep(/\Arustpuma-/) }
    assert_includes native.call(booted_workers(srv)[0]), "rustpuma-reacto", "the probe sees a worker's reactor"
    assert_empty native.call(master_pid(srv)), "the master's threads: #{thread_names(master_pid(srv)).inspect}"
  end

  def test_rustpumactl_stats_and_stop
    srv = control_server
    pids = booted_workers(srv).values + [master_pid(srv)]
    out, code = ctl("-S", @state, "stats")
    assert_equal 0, code, out
    assert_includes out, "Command stats sent success"
    assert_equal 2, JSON.parse(out.lines.last)["workers"]

    out, code = ctl("-C", "tcp://127.0.0.1:#{@control_port}", "-T", "bad", "stats")
    assert_equal 1, code
    assert_includes out, "Unauthorized access to server (wrong auth token)"

    out, code = ctl("-S", @state, "status")
    assert_equal 0, code, out

    out, code = ctl("-S", @state, "stop")
    assert_equal 0, code, out
    assert_includes out, "Command stop sent success"
    assert_equal 0, srv.wait.exitstatus
    wait_gone(pids)
  end

  def test_rustpumactl_signals_through_the_pidfile
    pidfile = File.join(@dir, "puma.pid")
    srv = start("-w", "2", "-P", pidfile, ClusterSupport::APP)
    out, code = ctl("-P", pidfile, "worker-count-up")
    assert_equal 0, code, out
    srv.wait_for_output(/Worker 2 \(PID: \d+\) booted/)
    out, = ctl("-P", pidfile, "stats")
    assert_includes out, "'stats' not available via pid only"
    out, code = ctl("-P", pidfile, "stop")
    assert_equal 0, code, out
    assert_clean_stop(srv.wait, "TERM", "stop through the pid is a TERM, as pumactl's")
    refute File.exist?(pidfile), "the pidfile is removed on exit"
  end

  def test_single_mode_control_app_and_stats
    port = ServerProcess.free_port
    srv = start("--control-url", "tcp://127.0.0.1:#{port}", "--control-token", "tok", ClusterSupport::APP)
    status, body = get(port, "/stats?token=tok")
    assert_equal 200, status
    stats = JSON.parse(body)
    %w[backlog running pool_capacity max_threads requests_count busy_threads].each { |k| assert_includes stats, k }
    assert_equal stats.keys.sort, JSON.parse(get(srv.port, "/stats")[1]).keys.sort, "Rustpuma.stats in the app"
    assert_equal 200, get(port, "/stop?token=tok").first
    assert_equal 0, srv.wait.exitstatus
  end

  def test_systemd_notify_ready_and_stopping
    path = File.join(@dir, "notify.sock")
    sock = Socket.new(:UNIX, :DGRAM, 0)
    sock.bind(Socket.sockaddr_un(path))
    srv = start("-w", "2", ClusterSupport::APP, env: { "NOTIFY_SOCKET" => path })
    ready = Timeout.timeout(5) { sock.recv(256) }
    assert_equal "READY=1", ready, "one notification per datagram, as Puma sends them"
    srv.signal("TERM")
    # STATUS= reports (every second) may come first.
    last = Timeout.timeout(5) { loop { m = sock.recv(256); break m unless m.start_with?("STATUS=") } }
    assert_equal "STOPPING=1", last
    assert_clean_stop(srv.wait)
  ensure
    sock&.close
  end
end
