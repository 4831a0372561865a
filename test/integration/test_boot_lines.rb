# frozen_string_literal: true

require "support/helper"
require "support/server_test_case"
require "tmpdir"
require "fileutils"

# The lines tools wait for, in Puma 8's order: "Use Ctrl-C to stop" comes
# before the cluster's worker boot lines; stdout_redirect leaves the banner
# on the terminal and sends a startup line, the worker lines and the request
# log to the files; boot failures and warnings read as Puma's.
class TestBootLines < Minitest::Test
  include ServerTestCase
  BOOT_ERROR = File.join(FIXTURES, "boot_error.ru")
  BOOTED = /^\[\d+\] - Worker (\d+) \(PID: \d+\) booted in [\d.]+s, phase: 0$/

  def test_cluster_prints_ctrl_c_before_the_worker_boot_lines
    srv = start("-w", "2", HELLO)
    srv.wait_for_output(/Worker 1 \(PID: \d+\) booted/, 20)
    srv.wait_for_output(/Worker 0 \(PID: \d+\) booted/, 20)
    lines = srv.output.lines.map(&:chomp)
    ctrl_c = lines.index { |l| l.end_with?("] Use Ctrl-C to stop") }
    refute_nil ctrl_c
    booted = lines.each_index.select { |i| lines[i].match?(BOOTED) }
    assert_equal 2, booted.size, srv.output
    assert booted.all? { |i| i > ctrl_c }, "every worker line after Ctrl-C:\n#{srv.output}"
    assert lines.index { |l| l.include?("* Listening on http://127.0.0.1:") } < ctrl_c
  end

  def test_ctrl_c_is_printed_even_when_no_worker_boots
    srv = start("-w", "1", BOOT_ERROR)
    srv.wait_for_output("! Unable to start worker", 20)
    refute_match(/booted in/, srv.output)
  end

  def test_single_worker_and_mn_threads_warnings_follow_ctrl_c
    srv = start("-w", "1", HELLO, env: { "RUBY_MN_THREADS" => "1" })
    srv.wait_for_output(BOOTED, 20)
    out = srv.output
    ctrl_c = out.index("Use Ctrl-C to stop")
    mn = out.index("! WARNING: RUBY_MN_THREADS=1 is set")
    single = out.index("! WARNING: Detected running cluster mode with 1 worker.")
    refute_nil mn, out
    refute_nil single, out
    assert ctrl_c < mn && mn < single && single < out.index(" booted in "), out
  end

  def test_single_mode_mn_threads_warning
    srv = start(HELLO, env: { "RUBY_MN_THREADS" => "1" })
    srv.wait_for_output("! WARNING: RUBY_MN_THREADS=1 is set")
    assert srv.output.index("Use Ctrl-C to stop") < srv.output.index("RUBY_MN_THREADS=1 is set")
  end

  def test_stdout_redirect_in_cluster_mode
    out = File.join(@dir, "out.log")
    err = File.join(@dir, "err.log")
    config = File.join(@dir, "puma.rb")
    File.write(config, %(stdout_redirect "#{out}", "#{err}"\nlog_requests\n))
    srv = start("-w", "2", "-C", config, HELLO)
    assert_includes srv.output, "Rustpuma starting in cluster mode...", "the banner stays on the terminal"
    Timeout.timeout(20) do
      sleep 0.05 until File.exist?(out) && File.read(out).scan(/Worker \d \(PID: \d+\) booted in/).size == 2
    end
    assert_equal 200, RawHTTP.get("127.0.0.1", srv.port, "/redirected").status
    Timeout.timeout(10) { sleep 0.05 until File.read(out).include?("GET /redirected") }
    log = File.read(out)
    assert_match(/\A=== rustpuma startup: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} ===\n/, log)
    refute_includes log, "starting in cluster mode"
    assert_match(/\A=== rustpuma startup: /, File.read(err))
    refute_match(/booted in/, srv.output, "the worker lines go to the file")
  end

  def test_unable_to_load_application
    srv = start(BOOT_ERROR, wait_for: nil)
    status = srv.wait(20)
    assert_equal 1, status.exitstatus
    assert_includes srv.output, "! Unable to load application: ArgumentError: database unreachable\n"
  end

  def test_unable_to_load_application_with_preload
    srv = start("-w", "2", "--preload", BOOT_ERROR, wait_for: nil)
    status = srv.wait(20)
    assert_equal 1, status.exitstatus
    assert_match(/^\[\d+\] ! Unable to load application: ArgumentError: database unreachable$/, srv.output)
  end

  # Puma's idle_timeout line, on time: the check runs every 50 ms, so the
  # server gives up within 0.1 s of the deadline (slack added for a loaded
  # machine, where the line itself can be late to reach us).
  def test_idle_timeout_fires_on_time_with_pumas_line
    srv = start("-C", write_config("idle_timeout 1\n"), HELLO)
    assert_equal 200, RawHTTP.get("127.0.0.1", srv.port, "/").status
    served = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    srv.wait_for_output("- Idle timeout reached\n", 10)
    waited = Process.clock_gettime(Process::CLOCK_MONOTONIC) - served
    assert_operator waited, :>=, 0.95, "not before the deadline"
    assert_operator waited, :<, 1.6, "within the check interval of the deadline (plus scheduling slack)"
    assert_equal 0, srv.wait(10).exitstatus
  end

  def test_idle_timeout_in_cluster_mode
    srv = start("-w", "2", "-C", write_config("idle_timeout 1\n"), HELLO)
    srv.wait_for_output(/Worker 1 \(PID: \d+\) booted/, 20)
    srv.wait_for_output(/Worker 0 \(PID: \d+\) booted/, 20)
    assert_equal 200, RawHTTP.get("127.0.0.1", srv.port, "/").status
    served = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    srv.wait_for_output("- All workers reached idle timeout\n", 10)
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - served, :>=, 0.95
    assert_equal 0, srv.wait(15).exitstatus
  end

  def test_mistyped_dsl_method_gets_a_suggestion
    srv = start("-C", write_config("workerz 2\n"), HELLO, wait_for: nil)
    assert_equal 1, srv.wait(20).exitstatus
    assert_match(/unknown configuration option 'workerz'\nDid you mean\?  workers$/, srv.output)
  end

  def test_tls_client_on_a_plain_port_gets_a_hint
    srv = start(HELLO)
    sock = TCPSocket.new("127.0.0.1", srv.port)
    # The start of a TLS ClientHello record.
    sock.write("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".b)
    Timeout.timeout(10) { sock.read }
    sock.close
    srv.wait_for_output(/TLS handshake on a plain port .*ssl:\/\/ bind/)
  end

  def test_certificate_errors_name_the_file
    bad = File.join(@dir, "not-a-cert.pem")
    File.write(bad, "this is no PEM\n")
    srv = start(HELLO, bind: "ssl://127.0.0.1:0?cert=#{bad}&key=#{bad}", wait_for: nil)
    assert_equal 1, srv.wait(20).exitstatus
    assert_includes srv.output, bad
    missing = File.join(@dir, "missing.pem")
    srv = start(HELLO, bind: "ssl://127.0.0.1:0?cert=#{missing}&key=#{missing}", wait_for: nil)
    assert_equal 1, srv.wait(20).exitstatus
    assert_includes srv.output, missing
  end

  def test_puma_debug_output
    srv = start(HELLO, env: { "PUMA_DEBUG" => "1" })
    srv.wait_for_output(%r{^%     .*/rustpuma\.so$})
    assert_includes srv.output, "% Running after_booted hooks\n"
    assert_includes srv.output, "% -- Loaded Extensions:\n"
  end

  # As Puma, the control server is there once "Use Ctrl-C to stop" is out,
  # before the workers boot: a client connecting then is answered (once
  # the workers are up) rather than refused; the state file exists too.
  def test_cluster_control_server_is_bound_before_the_workers_boot
    port = ServerProcess.free_port
    state = File.join(@dir, "puma.state")
    srv = start("-w", "1", "--control-url", "tcp://127.0.0.1:#{port}", "--control-token", "tok", "-S", state,
                File.join(FIXTURES, "slow_boot.ru"), env: { "BOOT_SECONDS" => "2" })
    refute_match(/booted in/, srv.output, "the app takes 2 s to boot")
    assert_includes srv.output, "* Starting control server on http://127.0.0.1:#{port}\n"
    assert File.exist?(state)
    sock = TCPSocket.new("127.0.0.1", port) # not refused
    sock.write("GET /stats?token=tok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    response = Timeout.timeout(20) { sock.read }
    sock.close
    assert_match(%r{\AHTTP/1.1 200 }, response)
    assert_match(/booted in/, srv.output)
  end
end
