# frozen_string_literal: true

require "support/cluster_support"

# The control app's /advice on the two bench apps under a real load (wrk):
# the CPU-bound one (bench/apps/cpu.ru) must be told fewer threads and one
# worker per core, the I/O-bound one (bench/apps/io.ru, 20 ms sleeps) more
# threads. Directions only, never speed: each verdict rests on shares of a
# request's time and on how much CPU the server process asked for, which a
# busy machine changes little (see Advice).
class TestAdviceApps < Minitest::Test
  include ClusterSupport

  CPU_APP = File.join(ServerProcess::ROOT, "bench", "apps", "cpu.ru")
  IO_APP = File.join(ServerProcess::ROOT, "bench", "apps", "io.ru")
  CLUSTER_CONFIG = File.join(FIXTURES, "cluster", "advice.rb")
  WINDOW = 4

  # Starts the app, loads it with `connections` wrk connections and asks
  # /advice over WINDOW seconds of that load; the advice's JSON.
  def advice_under_load(app, *args, connections:)
    control = ServerProcess.free_port
    srv = start(*args, "--control-url", "tcp://127.0.0.1:#{control}", "--control-token", "none", app)
    load_seconds = WINDOW + 8
    wrk = Process.spawn("wrk", "-t1", "-c#{connections}", "-d#{load_seconds}s", "--timeout", "10s",
                        "http://127.0.0.1:#{srv.port}/", out: File::NULL, err: File::NULL)
    begin
      sleep 1.5 # pacing: the load is on before the window opens
      status, body = get(control, "/advice?seconds=#{WINDOW}", timeout: load_seconds)
      assert_equal 200, status, body
      JSON.parse(body)
    ensure
      Process.kill("TERM", wrk) rescue nil
      Process.wait(wrk)
    end
  end

  def explain(advice)
    advice["text"].join("\n")
  end

  def test_cpu_bound_app_is_told_fewer_threads_and_a_worker_per_core
    advice = advice_under_load(CPU_APP, "-t", "4:4", connections: 8)
    threads = advice["threads"]
    assert_equal "too_many", threads["verdict"], explain(advice)
    assert_operator threads["suggested"], :<, 4
    cores = advice["figures"]["cores"]
    if cores > 1
      assert_equal({ "verdict" => "more", "current" => 0, "suggested" => cores }, advice["workers"], explain(advice))
    end
    assert_match(/waiting for the GVL/, explain(advice))
  end

  def test_io_bound_app_is_told_more_threads
    advice = advice_under_load(IO_APP, "-t", "2:2", connections: 16)
    threads = advice["threads"]
    assert_equal "too_few", threads["verdict"], explain(advice)
    assert_operator threads["suggested"], :>, 2
    assert_equal "fine", advice["workers"]["verdict"], explain(advice)
    assert_match(/waiting for a free thread/, explain(advice))
  end

  # Cluster mode: the master judges from its workers' check-ins, and
  # rustpumactl prints the same advice as text.
  def test_cluster_io_bound_app_through_rustpumactl
    control = ServerProcess.free_port
    srv = start("-C", CLUSTER_CONFIG, "-t", "2:2", "--control-url", "tcp://127.0.0.1:#{control}",
                "--control-token", "none", IO_APP)
    wrk = Process.spawn("wrk", "-t1", "-c24", "-d12s", "--timeout", "10s", "http://127.0.0.1:#{srv.port}/",
                        out: File::NULL, err: File::NULL)
    begin
      sleep 1.5 # pacing
      out, status = ctl("-C", "tcp://127.0.0.1:#{control}", "advise", WINDOW.to_s)
    ensure
      Process.kill("TERM", wrk) rescue nil
      Process.wait(wrk)
    end
    assert_equal 0, status, out
    assert_match(/\Athreads: too few \(2\): try \d+$/, out)
    assert_match(/over 2 process\(es\) of 2 threads/, out)
  end
end
