# frozen_string_literal: true

require "support/helper"
require "fileutils"
require "json"
require "net/http"
require "tmpdir"

# Puma's plugin API with two third-party-style plugins (test/fixtures/
# plugins/puma/plugin/*.rb, found on the load path as gems ship them): a
# metrics endpoint (own TCP server in a background thread, DSL setting,
# config/start/events) and a restart-on-file plugin (like tmp_restart).
class TestPumaPlugins < Minitest::Test
  PLUGINS = File.join(FIXTURES, "plugins")

  def setup
    @dir = Dir.mktmpdir("rustpuma-plugins")
  end

  def teardown
    @server&.stop
    FileUtils.rm_rf(@dir)
  end

  def test_metrics_endpoint_plugin_serves_stats_from_its_own_thread
    config = write_config(<<~RUBY)
      plugin :metrics_endpoint
      metrics_endpoint_port 0
      threads 2, 3
    RUBY
    @server = ServerProcess.new("-I", PLUGINS, "-C", config, File.join(PLUGINS, "puma_visible.ru"), dir: @dir).start
    metrics_port = Integer(@server.output[%r{\* Metrics endpoint on http://127\.0\.0\.1:(\d+)/metrics}, 1])

    app = Net::HTTP.get_response(URI("http://127.0.0.1:#{@server.port}/"))
    assert_equal "nil", app.body, "the app must not see a ::Puma constant"

    stats = JSON.parse(Net::HTTP.get(URI("http://127.0.0.1:#{metrics_port}/metrics")))
    assert_equal true, stats["booted"], "after_booted fired before Use Ctrl-C was printed"
    assert_equal 3, stats["max_threads"]
    assert_operator stats["requests_count"], :>=, 1
    assert_equal "8.0", stats["puma_version"][0, 3]
  end

  def test_restart_on_file_plugin_restarts_the_server
    config = write_config(<<~RUBY)
      plugin :restart_on_file
      restart_on_file "deploy.txt"
    RUBY
    @server = ServerProcess.new("-I", PLUGINS, "-C", config, File.join(PLUGINS, "puma_visible.ru"), dir: @dir).start
    @server.wait_for_output("* restart_on_file: watching deploy.txt")
    first_pid_line = @server.output.scan(/PID: (\d+)/).size

    FileUtils.touch(File.join(@dir, "deploy.txt"), mtime: Time.now + 5)
    @server.wait_for_output("* restart_on_file: deploy.txt changed, restarting", 10)
    @server.wait_for_output(/Use Ctrl-C to stop(?m:.*)Use Ctrl-C to stop/, 20)
    assert_operator @server.output.scan(/PID: (\d+)/).size, :>, first_pid_line, "a second boot"
    assert_equal "200", Net::HTTP.get_response(URI("http://127.0.0.1:#{@server.port}/")).code
  end

  def test_unknown_plugin_stops_the_boot_naming_it
    config = write_config("plugin :no_such_plugin\n")
    out = IO.popen([RbConfig.ruby, "-I", File.join(ServerProcess::ROOT, "lib"), ServerProcess::EXE, "-C", config,
                    File.join(PLUGINS, "puma_visible.ru")], chdir: @dir, err: %i[child out], &:read)
    refute $?.success?
    assert_match(/puma\.rb:1: Unable to find plugin: no_such_plugin/, out)
  end

  private

  def write_config(text)
    path = File.join(@dir, "puma.rb")
    File.write(path, text)
    path
  end
end
