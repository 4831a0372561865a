# frozen_string_literal: true

require "support/helper"
require "fileutils"
require "net/http"
require "json"
require "rustpuma/version"

# The drop-in promise with a real Rails 6.1 app (test/fixtures/rails_app):
# its Gemfile says `gem "rustpuma"`, its config/puma.rb is the Rails 6.1
# template (RAILS_MAX_THREADS, PORT, pidfile, plugin :tmp_restart), and it is
# started the ways Rails users start Puma.
class TestRailsApp < Minitest::Test
  APP = File.join(FIXTURES, "rails_app")
  PIDFILE = File.join(APP, "tmp", "pids", "server.pid")
  TIME_LIMIT = 120

  def self.bundle_env
    { "BUNDLE_GEMFILE" => File.join(APP, "Gemfile"), "RAILS_ENV" => "development",
      "RUBYOPT" => nil, "BUNDLE_PATH" => nil, "BUNDLE_BIN_PATH" => nil }
  end

  def setup
    install = IO.popen(self.class.bundle_env, %w[bundle install --local], chdir: APP, err: %i[child out], &:read)
    assert $?.success?, "bundle install --local failed:\n#{install}"
    FileUtils.rm_f(PIDFILE)
  end

  def test_bundle_exec_rustpuma_with_no_arguments_serves_rails
    port = ServerProcess.free_port
    server = ServerProcess.new(bind: nil, dir: APP, command: %w[bundle exec rustpuma],
                               env: self.class.bundle_env.merge("PORT" => port.to_s, "RAILS_MAX_THREADS" => "3"))
    server.start
    begin
      assert_includes server.output, "*  Max threads: 3", "RAILS_MAX_THREADS must reach the banner"
      assert_match %r{\* Listening on http://(\[::\]|0\.0\.0\.0):#{port}\b}, server.output, "PORT from config/puma.rb"
      assert_equal server.pid, File.read(PIDFILE).to_i, "the template's pidfile"

      get = Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/"))
      assert_equal "200", get.code
      assert_equal "Hello from Rails 6.1.7.10 on rustpuma #{Rustpuma::VERSION}", get.body.sub(/Rails [\d.]+/, "Rails 6.1.7.10")

      post = Net::HTTP.post_form(URI("http://127.0.0.1:#{port}/echo"), "name" => "ann", "age" => "7")
      assert_equal "200", post.code
      assert_equal "name=ann age=7", post.body

      # The two actions bench/run's Rails rows request.
      api = Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/api/7"))
      assert_equal "application/json; charset=utf-8", api["content-type"]
      assert_equal({ "id" => 7, "name" => "widget", "tags" => %w[a b c], "price" => 12.5, "in_stock" => true }, JSON.parse(api.body))
      page = Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/catalogue"))
      assert_equal "200", page.code
      assert_includes page.body, "<header><h1>Catalogue</h1></header>", "the layout wraps the template"
      assert_equal 20, page.body.scan("<li>Item ").size
      assert_includes page.body, "<li>Item 3: $4.50</li>"

      assert_live_streaming(port)
    ensure
      status = server.stop
    end
    assert_clean_stop(status, "TERM", "TERM must stop the server cleanly, ending by SIGTERM as Puma 8: #{status.inspect}\n#{server.output}")
    assert_includes server.output, "- Gracefully stopping, waiting for requests to finish"
    refute File.exist?(PIDFILE), "the pidfile is removed on a clean stop"
  end

  def test_rackup_and_rails_server_use_the_handler
    [%w[bundle exec rackup -s rustpuma -p PORT], %w[bundle exec rails server -u rustpuma -p PORT]].each do |cmd|
      port = ServerProcess.free_port
      command = cmd.map { |a| a == "PORT" ? port.to_s : a }
      server = ServerProcess.new(bind: nil, dir: APP, command: command, env: self.class.bundle_env)
      server.start
      begin
        assert_includes server.output, "Rustpuma starting in single mode", command.join(" ")
        response = Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/"))
        assert_equal "200", response.code, command.join(" ")
        assert_match(/\AHello from Rails [\d.]+ on rustpuma/, response.body)
      ensure
        server.stop
      end
    end
  end

  # `bin/rails server` names no server: Rack guesses one, puma first. With
  # only rustpuma in the Gemfile it must pick rustpuma (no -u needed).
  def test_bin_rails_server_without_using_starts_rustpuma
    port = ServerProcess.free_port
    server = ServerProcess.new(bind: nil, dir: APP, command: [RbConfig.ruby, "bin/rails", "server", "-p", port.to_s],
                               env: self.class.bundle_env)
    server.start
    begin
      assert_includes server.output, "=> Booting Rustpuma"
      assert_includes server.output, "(Puma 8.0 compatible)", "the banner names the Puma release we follow"
      assert_includes server.output, "Rustpuma starting in single mode"
      response = Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/"))
      assert_equal "200", response.code
      assert_match(/\AHello from Rails [\d.]+ on rustpuma/, response.body)
    ensure
      server.stop
    end
    refute_includes server.output, "Could not find server"
  end

  # Rails 6.1's system tests ask Capybara for :puma; with only rustpuma in
  # the Gemfile, Capybara must boot rustpuma and the test's requests must
  # reach it over a socket (the fixture's driver forwards rack-test's
  # requests with Net::HTTP; the page shows SERVER_SOFTWARE).
  def test_rails_system_test_runs_on_rustpuma
    env = self.class.bundle_env.merge("RAILS_ENV" => "test")
    output = IO.popen(env, [RbConfig.ruby, "bin/rails", "test", "test/system"], chdir: APP, err: %i[child out], &:read)
    assert $?.success?, "the system test failed:\n#{output}"
    assert_includes output, "Capybara starting Rustpuma..."
    assert_match(/^2 runs, \d+ assertions, 0 failures, 0 errors, 0 skips$/, output)
  end

  private

  # ActionController::Live: three chunks, 50 ms apart, sent as they are
  # written (chunked encoding, one chunk each), not buffered to the end.
  def assert_live_streaming(port)
    socket = TCPSocket.new("127.0.0.1", port)
    socket.write("GET /stream HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    response = RawHTTP.read_response(socket, head: true)
    assert_equal 200, response.status
    assert_equal "chunked", response["transfer-encoding"]
    chunks = 3.times.map do
      size = socket.gets("\r\n").to_i(16)
      data = socket.read(size)
      socket.read(2)
      data
    end
    assert_equal ["chunk 0\n", "chunk 1\n", "chunk 2\n"], chunks
    assert_equal "0\r\n", socket.gets("\r\n")
  ensure
    socket&.close
  end
end
