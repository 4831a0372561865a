# frozen_string_literal: true

require "support/helper"
require "json"
require "timeout"
require "tmpdir"

# `-t MIN:MAX` as in Puma: MIN threads at boot, more up to MAX while
# requests keep every thread busy; Rustpuma.stats reports it with Puma's
# field names.
class TestThreadPool < Minitest::Test
  APP = File.join(FIXTURES, "pool.ru")

  def stats(server)
    JSON.parse(RawHTTP.get(server.host, server.port, "/stats").body)
  end

  # A server for APP with `-t THREADS` and a config file holding `config`.
  def server_with_config(threads, config)
    path = File.join(Dir.mktmpdir("rustpuma-pool"), "config.rb")
    File.write(path, config)
    ServerProcess.new("-t", threads, "-C", path, APP).start
  end

  # A connection whose request is now blocked in the app (until /release).
  def block_a_thread(server)
    server.connect.tap do |socket|
      socket.write("GET /block?0 HTTP/1.1\r\nHost: x\r\n\r\n")
      server.wait_for_output("blocked 0")
    end
  end

  def test_pool_starts_at_min_and_grows_to_max_under_load
    server = ServerProcess.new("-t", "1:3", APP).start
    initial = stats(server)
    # One thread at boot; taking this request left none waiting, so one
    # spare was started (the pool always keeps one waiting, up to MAX).
    assert_equal 2, initial["running"]
    assert_equal 1, initial["busy_threads"]
    assert_equal 3, initial["max_threads"]

    blocked = 2.times.map do |i|
      socket = server.connect
      socket.write("GET /block?#{i} HTTP/1.1\r\nHost: x\r\n\r\n")
      server.wait_for_output("blocked #{i}")
      socket
    end
    busy = stats(server) # served by the third thread while two are blocked
    assert_equal 3, busy["running"], "grown to MAX"
    assert_equal 3, busy["busy_threads"], "two blocked requests plus this one"
    assert_equal 0, busy["pool_capacity"]
    2.times { RawHTTP.get(server.host, server.port, "/release") }
    blocked.each { |s| assert_equal "released", RawHTTP.read_response(s).body }
  ensure
    blocked&.each(&:close)
    server&.stop
  end

  # Puma's auto-trim: once the load is gone, idle threads above MIN are
  # given back (every auto_trim_time, 30 s by default; Puma's internal
  # option, set here through `inject` to keep the test short).
  def test_idle_threads_above_min_are_trimmed
    server = server_with_config("1:3", "inject { @options[:auto_trim_time] = 0.2 }\n")
    blocked = 2.times.map do |i|
      socket = server.connect
      socket.write("GET /block?#{i} HTTP/1.1\r\nHost: x\r\n\r\n")
      server.wait_for_output("blocked #{i}")
      socket
    end
    assert_equal 3, stats(server)["running"]
    2.times { RawHTTP.get(server.host, server.port, "/release") }
    blocked.each { |s| assert_equal "released", RawHTTP.read_response(s).body }
    running = nil
    Timeout.timeout(10) do
      sleep 0.1 until (running = stats(server)["running"]) < 3
    end
    assert_operator running, :<, 3
  ensure
    blocked&.each(&:close)
    server&.stop
  end

  # This pool grows when a thread takes a request and leaves nobody waiting
  # (Puma's grows when a request is queued), so a trim must leave a thread
  # waiting: trimming the spare while the other thread was busy left new
  # requests queued behind it, and with MIN 0 (the default) the last idle
  # thread went too, after which nothing was ever answered.
  def test_a_trim_leaves_a_thread_waiting
    server = server_with_config("0:2", "inject { @options[:auto_trim_time] = 0.1 }\nbefore_thread_exit { puts 'thread exit' }\n")
    blocked = block_a_thread(server)
    answered_across_trims(server) # by the spare, never trimmed
    RawHTTP.get(server.host, server.port, "/release")
    assert_equal "released", RawHTTP.read_response(blocked).body
    server.wait_for_output("thread exit") # both idle: one is given back
    answered_across_trims(server) # never by none
  ensure
    blocked&.close
    server&.stop
  end

  # A few requests, each after the pool sat idle for more than two trim
  # periods (0.1 s), as the trimmer must see it: each is answered.
  def answered_across_trims(server)
    socket = nil
    3.times do
      sleep 0.25 # idle: the trimmer runs twice meanwhile
      socket = server.connect
      response = RawHTTP.request(socket, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout: 3)
      assert_equal "hi", response.body
      socket.close
    end
  ensure
    socket&.close
  end

  # A request queued while a thread serves wakes nobody (that thread takes
  # it when done, see queue.rs); when the serving thread is blocked in the
  # app instead, the reactor sees the queue stall and wakes an idle thread.
  # Requests sent one by one, and several at once, are answered while the
  # other thread stays blocked.
  def test_requests_are_served_while_the_other_thread_is_blocked_in_the_app
    server = ServerProcess.new("-t", "2:2", APP).start
    blocked = block_a_thread(server)
    3.times { assert_equal "hi", RawHTTP.get(server.host, server.port, "/").body }
    sockets = 5.times.map do
      server.connect.tap { |s| s.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") }
    end
    sockets.each { |s| assert_equal "hi", RawHTTP.read_response(s, timeout: 5).body }
    RawHTTP.get(server.host, server.port, "/release")
    assert_equal "released", RawHTTP.read_response(blocked).body
  ensure
    blocked&.close
    sockets&.each(&:close)
    server&.stop
  end

  # Puma's out_of_band hooks run when the pool goes idle: not while another
  # request is still being served, and once the last one is done.
  def test_out_of_band_hooks_run_once_the_pool_is_idle
    server = server_with_config("2:2", "out_of_band { puts 'out of band' }\n")
    blocked = block_a_thread(server)
    assert_equal "hi", RawHTTP.get(server.host, server.port, "/").body
    before = server.output.scan("out of band").size
    RawHTTP.get(server.host, server.port, "/release")
    assert_equal "released", RawHTTP.read_response(blocked).body
    server.wait_for_output("out of band")
    assert_equal 0, before, "a hook ran while a request was blocked in the app"
  ensure
    blocked&.close
    server&.stop
  end
end
