# frozen_string_literal: true

require "support/helper"
require "tmpdir"

# Configuration settings that change what a running server does, checked on
# a real server: lowlevel_error_handler (also for requests the parser
# rejects), log_requests, quiet, stdout_redirect with HUP reopening.
class TestRuntimeOptions < Minitest::Test
  HELLO = File.join(ServerProcess::ROOT, "examples", "hello.ru")

  def with_config(text)
    Dir.mktmpdir("rustpuma-config") do |dir|
      path = File.join(dir, "puma.rb")
      File.write(path, text)
      yield path, dir
    end
  end

  def raw(server, request)
    socket = server.connect
    socket.write(request)
    socket.read
  ensure
    socket&.close
  end

  def test_lowlevel_error_handler_answers_app_errors_and_parser_rejections
    with_config(<<~RUBY) do |config|
      lowlevel_error_handler do |err, env, status|
        [status, { "content-type" => "text/plain" }, ["handled \#{status} \#{err.class.name.split('::').last}\#{' (nil in env)' if env.value?(nil)}"]]
      end
    RUBY
      server = ServerProcess.new("-C", config, File.join(FIXTURES, "boom.ru")).start
      begin
        response = RawHTTP.get(server.host, server.port, "/")
        assert_equal 500, response.status
        assert_equal "handled 500 RuntimeError", response.body

        bad = raw(server, "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n")
        assert_match(%r{\AHTTP/1.1 400 Bad Request\r\n}, bad)
        assert bad.end_with?("\r\n\r\nhandled 400 HttpParserError"), bad

        unsupported = raw(server, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
        assert_match(%r{\AHTTP/1.1 501 Not Implemented\r\n}, unsupported)
        assert unsupported.end_with?("handled 501 HttpParserError"), unsupported
        # Native log lines go through a logger thread: wait for the line
        # rather than race it with the (quick, SIGTERM-ended) stop.
        server.wait_for_output("HTTP parse error, malformed request (127.0.0.1): 400")
      ensure
        server.stop
      end
    end
  end

  def test_log_requests_writes_common_log_format_with_duration
    server = ServerProcess.new("-v", HELLO).start
    begin
      assert_equal 200, RawHTTP.get(server.host, server.port, "/path?x=1").status
      server.wait_for_output(%r{"GET /path\?x=1 HTTP/1.1" 200})
    ensure
      server.stop
    end
    line = server.output.lines.grep(%r{GET /path}).first
    assert_match(%r{\A127\.0\.0\.1 - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "GET /path\?x=1 HTTP/1\.1" 200 - \d+\.\d{4}\n\z}, line)
  end

  def test_quiet_logs_no_requests
    server = ServerProcess.new("-q", HELLO).start
    begin
      assert_equal 200, RawHTTP.get(server.host, server.port, "/quiet-path").status
    ensure
      server.stop
    end
    refute_includes server.output, "/quiet-path"
  end

  def test_stdout_redirect_files_are_reopened_on_hup
    with_config("") do |_config, dir|
      out = File.join(dir, "out.log")
      err = File.join(dir, "err.log")
      File.write(File.join(dir, "puma.rb"), %(stdout_redirect "#{out}", "#{err}", true\n))
      # As Puma: the banner (up to "Use Ctrl-C to stop") stays on the
      # terminal; the files start with a startup line.
      server = ServerProcess.new("-C", File.join(dir, "puma.rb"), HELLO)
      server.start
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 15
      until File.exist?(out) && File.read(out).include?("=== rustpuma startup: ")
        flunk "no startup line in #{out}: #{server.output}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline || server.exited?
        sleep 0.05 # polling a file the server writes
      end
      port = server.port
      begin
        File.rename(out, "#{out}.1") # what logrotate does
        server.signal("HUP")
        until File.exist?(out)
          flunk "HUP did not reopen #{out}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
          sleep 0.05
        end
        assert_equal 200, RawHTTP.get("127.0.0.1", port, "/").status, "HUP must not stop a redirected server"
      ensure
        server.stop
      end
      assert_includes File.read(out), "- Gracefully stopping", "lines after HUP go to the reopened file"
      assert_includes File.read("#{out}.1"), "=== rustpuma startup: "
      assert_includes server.output, "Rustpuma starting in single mode", "the banner stays on the terminal"
      refute_includes File.read("#{out}.1"), "Rustpuma starting in single mode"
    end
  end
end
