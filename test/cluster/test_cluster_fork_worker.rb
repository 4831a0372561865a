# frozen_string_literal: true

require "support/cluster_support"

# fork_worker: the master forks worker 0 only, worker 0 forks the others;
# refork (URG, the control app, rustpumactl, or automatically after N
# requests to worker 0) replaces workers 1.. with fresh forks of worker 0.
class TestClusterForkWorker < Minitest::Test
  include ClusterSupport

  CONFIG = File.join(FIXTURES, "cluster", "fork_worker.rb")
  REFORKED = "- Worker refork complete, phase: 1"

  def setup
    @dir = Dir.mktmpdir("rustpuma-fork-worker")
  end

  def teardown
    super
    FileUtils.rm_rf(@dir)
  end

  def ppid(pid)
    Integer(File.read("/proc/#{pid}/stat")[/\) \S (\d+)/, 1])
  end

  def fork_server(env = {})
    start("-C", CONFIG, "-t", "4:4", ClusterSupport::APP, env: env)
  end

  # Every worker pid at least once in the answers (bounded).
  def assert_all_serve(srv, pids)
    seen = []
    500.times do
      seen |= [Integer(get(srv.port)[1])]
      break if (pids - seen).empty?
    end
    assert_empty pids - seen, "every worker should serve (seen #{seen.inspect})"
  end

  def test_cli_fork_worker_forks_from_worker_zero_and_stops
    srv = start("-w", "3", "--fork-worker", ClusterSupport::APP)
    workers = booted_workers(srv)
    master = master_pid(srv)
    assert_equal [0, 1, 2], workers.keys.sort
    refute_includes srv.output, "does not support fork_worker"
    assert srv.output.b.include?("(\u2714) refork".b), "refork should be announced as available"
    assert_equal master, ppid(workers[0])
    assert_equal workers[0], ppid(workers[1]), "worker 1 is forked by worker 0"
    assert_equal workers[0], ppid(workers[2]), "worker 2 is forked by worker 0"
    title = File.read("/proc/#{workers[2]}/cmdline").tr("\0", " ")
    assert_match(/\Arustpuma: cluster worker 2: #{master}/, title)
    assert_all_serve(srv, workers.values)

    srv.signal("TERM")
    assert_clean_stop(srv.wait)
    wait_gone(workers.values)
  end

  def test_killed_worker_is_forked_again_by_worker_zero
    srv = fork_server
    workers = booted_workers(srv)
    Process.kill("KILL", workers[1])
    srv.wait_for_output(/Worker 1 \(PID: (?!#{workers[1]}\))\d+\) booted/)
    fresh = booted_workers(srv)[1]
    assert_equal workers[0], ppid(fresh)
    assert_all_serve(srv, [workers[0], fresh, workers[2]])
  end

  def test_urg_refork_under_load_runs_the_hooks_in_worker_zero
    log = File.join(@dir, "hooks.log")
    srv = fork_server("HOOK_LOG" => log)
    old = booted_workers(srv)
    ok, failed = under_load(srv.port, threads: 4) do
      sleep 1 # pacing: let the load build up before the refork
      srv.signal("URG")
      srv.wait_for_output(REFORKED, 30)
      sleep 0.5 # pacing: keep the load on the new generation for a moment
    end
    assert_empty failed, "#{failed.size} failed requests (of #{ok + failed.size}), e.g. #{failed.first}"
    assert_operator ok, :>, 20
    assert_includes srv.output, "- Starting worker refork, phase: 1"
    assert_includes srv.output, "- Stopping #{old[1]} for refork..."

    fresh = booted_workers(srv)
    assert_equal old[0], fresh[0], "worker 0 is kept"
    [1, 2].each do |i|
      refute_equal old[i], fresh[i], "worker #{i} should have been replaced"
      assert_equal old[0], ppid(fresh[i]), "the new worker #{i} is forked by worker 0"
      assert_match(/Worker #{i} \(PID: #{fresh[i]}\) booted in [\d.]+s, phase: 1/, srv.output)
    end
    wait_gone([old[1], old[2]])
    assert_all_serve(srv, fresh.values)

    wait_until(5, "after_refork") { File.exist?(log) && File.read(log).include?("after_refork") }
    assert_equal [["before_refork", old[0].to_s], ["after_refork", old[0].to_s]],
                 File.readlines(log, chomp: true).map(&:split)
  end

  def test_automatic_refork_after_requests_to_worker_zero
    srv = fork_server("FORK_REQUESTS" => "20")
    old = booted_workers(srv)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 30
    until srv.output.include?("- Starting worker refork, phase: 1")
      flunk "no automatic refork:\n#{srv.output}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      status, = get(srv.port)
      flunk "status #{status}" unless status == 200
    end
    srv.wait_for_output(REFORKED, 30)
    fresh = booted_workers(srv)
    assert_equal old[0], fresh[0]
    assert_empty [old[1], old[2]] & fresh.values
  end

  def test_control_app_and_rustpumactl_refork
    port = ServerProcess.free_port
    srv = fork_server("CONTROL_PORT" => port.to_s)
    old = booted_workers(srv)
    assert_equal 200, get(port, "/refork?token=sekret").first
    srv.wait_for_output(REFORKED, 30)
    assert_empty [old[1], old[2]] & booted_workers(srv).values

    out, code = ctl("-C", "tcp://127.0.0.1:#{port}", "-T", "sekret", "refork")
    assert_equal 0, code, out
    assert_includes out, "Command refork sent success"
    srv.wait_for_output("- Worker refork complete, phase: 2", 30)
    stats = JSON.parse(get(port, "/stats?token=sekret")[1])
    assert_equal 2, stats["phase"]
    assert_equal [2, 2, 2], stats["worker_status"].map { |w| w["phase"] }
  end

  def test_refork_not_available_without_fork_worker
    port = ServerProcess.free_port
    start("-C", File.join(FIXTURES, "cluster", "control.rb"), ClusterSupport::APP,
          env: { "CONTROL_PORT" => port.to_s, "STATE_PATH" => File.join(@dir, "puma.state") })
    status, body = get(port, "/refork?token=sekret")
    assert_equal 404, status
    assert_includes body, "refork not available"
  end

  # A connection worker 0 holds while it forks must close when worker 0
  # closes it: the new workers must not keep a copy of it.
  def test_worker_zero_connection_open_during_refork_still_closes
    srv = fork_server
    worker0 = booted_workers(srv)[0]
    sock = nil
    200.times do
      sock = TCPSocket.new("127.0.0.1", srv.port)
      sock.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      head = +""
      head << sock.readpartial(4096) until head.include?("\r\n\r\n")
      length = Integer(head[/content-length: (\d+)/i, 1])
      body = head.split("\r\n\r\n", 2)[1]
      body << sock.readpartial(4096) while body.bytesize < length
      break if Integer(body) == worker0

      sock.close
      sock = nil
    end
    refute_nil sock, "no connection reached worker 0"

    srv.signal("URG")
    srv.wait_for_output(REFORKED, 30)
    sock.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = Timeout.timeout(5) { sock.read } # EOF only once no process holds the socket
    assert_includes raw, worker0.to_s
  ensure
    sock&.close
  end

  # USR1 with fork_worker (app not preloaded): worker 0 goes first, so the
  # workers forked after it come from the new code, as in Puma.
  def test_phased_restart_replaces_worker_zero_first
    srv = start("-C", File.join(FIXTURES, "cluster", "fork_phased.rb"), ClusterSupport::APP)
    first = booted_workers(srv)
    assert_equal [0, 1, 2], first.keys.sort
    # A respawned worker 0 is the newest one: it must still go first.
    Process.kill("KILL", first[0])
    srv.wait_for_output(/Worker 0 \(PID: (?!#{first[0]}\))\d+\) booted/)
    old = booted_workers(srv)
    srv.signal("USR1")
    srv.wait_for_output("- Phased restart complete, phase: 1", 30)
    stopped = srv.output.scan(/- Stopping (\d+) for phased upgrade/).flatten.map(&:to_i)
    assert_equal old[0], stopped.first, "worker 0 must be replaced first"
    assert_equal old.values.sort, stopped.sort
    fresh = srv.output.scan(BOOTED).select { |_, _, phase| phase == "1" }.to_h { |i, pid, _| [Integer(i), Integer(pid)] }
    assert_equal [0, 1, 2], fresh.keys.sort
    assert_equal master_pid(srv), ppid(fresh[0])
    assert_equal fresh[0], ppid(fresh[1]), "worker 1 forked from the new worker 0"
    assert_equal fresh[0], ppid(fresh[2]), "worker 2 forked from the new worker 0"
    assert_all_serve(srv, fresh.values)
  end
end
