# frozen_string_literal: true

require "support/helper"
require "json"
require "tmpdir"
require "timeout"

# Puma 8 DSL settings that change what a running server does, each checked
# on the real executable: several -C files, Puma's constants in a config
# file, fiber_per_request, max_io_threads with puma.mark_as_io_bound,
# update_thread_pool_min_max from a before_thread_start hook, custom_logger
# and log_formatter, and Puma 8's single-mode stats keys.
class TestPuma8DSL < Minitest::Test
  APP = File.join(FIXTURES, "config", "dsl_app.ru")

  def setup
    @dir = Dir.mktmpdir("rustpuma-dsl")
    @servers = []
  end

  def teardown
    @servers.each(&:stop)
    FileUtils.rm_rf(@dir)
  end

  def config(name, text)
    path = File.join(@dir, name)
    File.write(path, text)
    path
  end

  def start(*args, **opts)
    server = ServerProcess.new(*args, **opts).start
    @servers << server
    server
  end

  def get(server, path)
    response = RawHTTP.get(server.host, server.port, path)
    assert_equal 200, response.status, "GET #{path}"
    response.body
  end

  def test_several_config_files_load_in_order_and_see_puma_helpers_without_defining_puma
    first = config("first.rb", <<~RUBY)
      threads 1, 2
      tag Puma.jruby? || Puma::IS_JRUBY || Puma.windows? ? "odd-platform" : "first"
      after_booted { puts "first hook (Puma \#{Puma::Const::PUMA_VERSION} compatible)" }
    RUBY
    second = config("second.rb", <<~RUBY)
      threads 1, 3
      after_booted { puts "second hook, mri=\#{Puma.mri?}" }
    RUBY
    server = start("-C", first, "-C", second, APP)
    assert_includes server.output, "*  Max threads: 3", "the second file wins for a value both set"
    server.wait_for_output(/first hook \(Puma [\d.]+ compatible\)\n.*second hook, mri=true/m)
    assert_equal "nil", get(server, "/puma-defined"), "the app must not see a Puma constant"
    assert_match(/\[first\]\z/, File.read("/proc/#{server.pid}/cmdline").tr("\0", " ").strip)
  end

  def test_fiber_per_request_gives_each_request_fresh_locals
    plain = start("-t", "1:1", APP)
    get(plain, "/local")
    assert_equal '"set by a request"', get(plain, "/local"), "without the setting a local carries over"

    fresh = start("-t", "1:1", "-C", config("fiber.rb", "fiber_per_request\n"), APP)
    get(fresh, "/local")
    assert_equal "nil", get(fresh, "/local")
  end

  def test_max_io_threads_lets_another_request_run_beside_an_io_bound_one
    server = start("-t", "1:1", "-C", config("io.rb", "max_io_threads 1\n"), APP)
    io = Thread.new { RawHTTP.get(server.host, server.port, "/io") }
    server.wait_for_output("io request started") # the only thread is now marked and waiting
    Timeout.timeout(10) do
      # Once the only thread is marked I/O-bound, a second one serves.
      assert_equal "hello", get(server, "/")
      stats = JSON.parse(get(server, "/stats"))
      assert_equal 1, stats["io_threads"]
      assert_equal "released", get(server, "/release")
      assert_equal "io done (marker present)", io.value.body
    end
  ensure
    io&.kill
  end

  def test_before_thread_start_hook_can_resize_the_pool_at_run_time
    hook = config("resize.rb", <<~RUBY)
      threads 1, 2
      before_thread_start do |control|
        control.update_thread_pool_min_max(min: 1, max: 6) if control.max_threads == 2
        puts "pool now \#{control.min_threads}..\#{control.max_threads}"
      end
    RUBY
    server = start("-C", hook, APP)
    server.wait_for_output("pool now 1..6")
    assert_equal 6, JSON.parse(get(server, "/stats"))["max_threads"]
  end

  def test_custom_logger_and_log_formatter_receive_server_lines
    log = File.join(@dir, "custom.log")
    file = config("logger.rb", <<~RUBY)
      log_formatter { |line| "[fmt] \#{line}" }
      custom_logger File.open(#{log.dump}, "a").tap { |f| f.sync = true }
      log_requests
    RUBY
    port = ServerProcess.free_port
    start("-C", file, APP, bind: "tcp://127.0.0.1:#{port}", wait_for: nil)
    Timeout.timeout(10) { sleep 0.05 until File.exist?(log) && File.read(log).include?("Use Ctrl-C to stop") }
    assert_equal 200, RawHTTP.get("127.0.0.1", port, "/hello").status
    Timeout.timeout(10) { sleep 0.05 until File.read(log).include?('"GET /hello HTTP/1.1" 200') }
    text = File.read(log)
    assert_includes text, "[fmt] Use Ctrl-C to stop"
    assert_match(/\[fmt\] .*"GET \/hello HTTP\/1.1" 200/, text)
  end

  def test_single_mode_stats_carry_every_puma8_key
    server = start("-t", "1:4", APP)
    stats = JSON.parse(get(server, "/stats"))
    %w[started_at backlog running pool_capacity busy_threads io_threads backlog_max max_threads
       requests_count reactor_max versions].each { |key| assert stats.key?(key), "missing #{key}: #{stats}" }
    assert_match(/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\z/, stats["started_at"])
    assert_equal 4, stats["max_threads"]
    assert_equal 1, stats["busy_threads"], "the /stats request itself"
    assert_operator stats["reactor_max"], :>=, 1
    assert_equal RUBY_VERSION, stats.dig("versions", "ruby", "version")
  end

  def test_queue_requests_false_closes_each_connection_after_one_response
    server = start("-C", config("queue.rb", "queue_requests false\n"), APP)
    socket = server.connect
    socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    response = Timeout.timeout(10) { socket.read } # returns only once the server closes
    assert_match(%r{\AHTTP/1.1 200 }, response)
    assert_match(/^connection: close\r$/i, response)
  ensure
    socket&.close
  end

  def test_keep_alive_is_the_default_with_queue_requests
    server = start(APP)
    socket = server.connect
    2.times do
      socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      head = Timeout.timeout(10) { socket.readpartial(4096) }
      assert_match(%r{\AHTTP/1.1 200 }, head)
      refute_match(/^connection: close/i, head)
    end
  ensure
    socket&.close
  end

  def test_shutdown_debug_dumps_every_thread_when_the_stop_begins
    server = start("-C", config("debug.rb", "shutdown_debug\n"), APP)
    server.signal("TERM")
    server.wait
    pid = server.pid
    assert_includes server.output, "#{pid}: Shutdown initiated"
    assert_includes server.output, "#{pid}: === Begin thread backtrace dump ==="
    assert_match(/#{pid}: Thread 1\/\d+: #<Thread:/, server.output)
    assert_includes server.output, "#{pid}: === End thread backtrace dump ==="
  end

  def test_shutdown_debug_on_force_dumps_only_when_requests_outlive_the_stop
    text = "shutdown_debug on_force: true\nforce_shutdown_after 1\n"
    server = start("-t", "2:2", "-C", config("force.rb", text), APP)
    io = Thread.new { RawHTTP.get(server.host, server.port, "/io") } # never released
    # Busy: the held /io request plus this /stats request.
    Timeout.timeout(10) { sleep 0.05 until JSON.parse(get(server, "/stats"))["busy_threads"] >= 2 }
    server.signal("TERM")
    server.wait
    assert_includes server.output, "#{server.pid}: Shutdown timeout exceeded"
    assert_includes server.output, "#{server.pid}: === Begin thread backtrace dump ==="
    refute_includes server.output, "Shutdown initiated"
  ensure
    io&.kill
  end

  def test_shutdown_debug_on_force_in_a_cluster_worker
    text = "workers 2\nshutdown_debug on_force: true\nforce_shutdown_after 1\n"
    server = start("-C", config("force_cluster.rb", text), APP)
    io = Thread.new { RawHTTP.get(server.host, server.port, "/io") } # never released
    server.wait_for_output(/io request started in (\d+)/)
    worker = server.output[/io request started in (\d+)/, 1]
    server.signal("TERM")
    server.wait
    assert_includes server.output, "#{worker}: Shutdown timeout exceeded"
    assert_includes server.output, "#{worker}: === End thread backtrace dump ==="
  ensure
    io&.kill
  end
end
