# frozen_string_literal: true

require "support/cluster_support"

# Cluster mode's process model: workers serve, die, get replaced, time out,
# grow and shrink, and stop gracefully with the master.
class TestClusterWorkers < Minitest::Test
  include ClusterSupport

  def test_two_workers_serve_and_are_titled
    srv = start("-w", "2", "-t", "2:2", ClusterSupport::APP)
    workers = booted_workers(srv)
    assert_equal [0, 1], workers.keys.sort
    master = master_pid(srv)
    assert_includes srv.output, "Rustpuma starting in cluster mode..."
    assert_includes srv.output, "*      Workers: 2"
    assert_includes srv.output, "* Preloading application"
    assert_match(/\[#{master}\] Use Ctrl-C to stop/, srv.output)

    seen = []
    200.times do
      _, body = get(srv.port)
      seen |= [Integer(body)]
      break if seen.size == 2
    end
    assert_equal workers.values.sort, seen.sort, "both workers should serve"
    refute_includes seen, master, "the master must not serve"

    title = ->(pid) { File.read("/proc/#{pid}/cmdline").tr("\0", " ").strip }
    assert_match(/\Arustpuma #{Rustpuma::VERSION} \(tcp:\/\/127\.0\.0\.1:0\)/, title.call(master))
    assert_match(/\Arustpuma: cluster worker 0: #{master}/, title.call(workers[0]))
    assert_match(/\Arustpuma: cluster worker 1: #{master}/, title.call(workers[1]))
  end

  def test_killed_worker_is_replaced
    srv = start("-w", "2", ClusterSupport::APP)
    old = booted_workers(srv)[0]
    Process.kill("KILL", old)
    srv.wait_for_output(/Worker 0 \(PID: (?!#{old}\))\d+\) booted/)
    fresh = booted_workers(srv)[0]
    refute_equal old, fresh
    assert_equal 200, get(srv.port).first
  end

  def test_ttin_and_ttou_change_the_worker_count
    srv = start("-w", "2", ClusterSupport::APP)
    srv.signal("TTIN")
    srv.wait_for_output(/Worker 2 \(PID: \d+\) booted/)
    third = booted_workers(srv)[2]
    assert alive?(third)
    srv.signal("TTOU")
    srv.wait_for_output("- Worker 2 (PID: #{third}) terminating")
    wait_gone([third])
    assert_equal 200, get(srv.port).first
  end

  def test_term_finishes_in_flight_request_and_leaves_no_process
    srv = start("-w", "2", "-t", "2:2", ClusterSupport::APP)
    pids = booted_workers(srv).values + [master_pid(srv)]
    sock = TCPSocket.new("127.0.0.1", srv.port)
    sock.write("GET /slow?s=2&token=t1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    srv.wait_for_output("slow request started t1")
    reader = Thread.new { sock.read }
    srv.signal("TERM")
    response = Timeout.timeout(10) { reader.value }
    assert_match(%r{\AHTTP/1.1 200 }, response)
    assert_match(/slow done \d+\z/, response)
    assert_clean_stop(srv.wait)
    wait_gone(pids)
    assert_includes srv.output, "- Gracefully shutting down workers..."
    assert_includes srv.output, "- Goodbye!"
  ensure
    sock&.close
  end

  def test_hung_worker_is_killed_after_worker_timeout
    srv = start("-C", File.join(FIXTURES, "cluster", "timeout.rb"), ClusterSupport::APP)
    hung = booted_workers(srv)[0]
    Process.kill("STOP", hung) # it can no longer check in
    line = "! Terminating timed out worker (worker failed to check in within 2 seconds): #{hung}"
    srv.wait_for_output(line, 8)
    srv.wait_for_output(/Worker 0 \(PID: (?!#{hung}\))\d+\) booted/, 8)
    wait_gone([hung])
  end

  def test_master_death_takes_the_workers_along
    srv = start("-w", "2", ClusterSupport::APP)
    pids = booted_workers(srv).values
    srv.signal("KILL")
    srv.wait
    wait_gone(pids)
  end
end
