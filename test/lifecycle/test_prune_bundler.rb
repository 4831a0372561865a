# frozen_string_literal: true

require "support/helper"
require "fileutils"
require "tmpdir"

# prune_bundler under `bundle exec`: the master re-execs without Bundler
# (Puma's "* Pruning Bundler environment"), the workers set the bundle up
# when they load the app.
class TestPruneBundler < Minitest::Test
  FIXTURE = File.join(FIXTURES, "pruned_app")

  def setup
    @dir = Dir.mktmpdir("rustpuma-pruned")
    FileUtils.cp([File.join(FIXTURE, "config.ru"), File.join(FIXTURE, "puma.rb")], @dir)
    File.write(File.join(@dir, "Gemfile"), <<~RUBY)
      source "https://rubygems.org"
      gem "rack"
      gem "rustpuma", path: #{ServerProcess::ROOT.dump}
    RUBY
    @env = { "BUNDLE_GEMFILE" => File.join(@dir, "Gemfile"), "RUBYOPT" => nil, "BUNDLE_PATH" => nil,
             "BUNDLE_BIN_PATH" => nil }
    out = IO.popen(@env, %w[bundle install --local], chdir: @dir, err: %i[child out], &:read)
    assert $?.success?, "bundle install --local failed:\n#{out}"
  end

  def teardown
    @server&.stop
    FileUtils.rm_rf(@dir)
  end

  def test_master_runs_without_bundler_and_workers_load_the_bundle
    port = ServerProcess.free_port
    @server = ServerProcess.new("-C", "puma.rb", "-b", "tcp://127.0.0.1:#{port}", "config.ru",
                                bind: nil, dir: @dir, env: @env, command: %w[bundle exec rustpuma]).start
    out = @server.output
    assert_includes out, "* Pruning Bundler environment"
    assert_includes out, "* Could not load extra dependency: no-such-gem-xyz"
    master = Integer(out[/Master PID: (\d+)/, 1])
    environ = File.read("/proc/#{master}/environ").split("\0")
    assert_includes environ, "PUMA_BUNDLER_PRUNED=1"
    refute(environ.any? { |kv| kv.start_with?("RUBYOPT=") && kv.include?("bundler/setup") }, "master still under Bundler")
    body = RawHTTP.get("127.0.0.1", port, "/").body
    assert_match(/\Abundler=loaded pruned=1 pid=\d+\z/, body)
    refute_equal master, Integer(body[/pid=(\d+)/, 1])
  end
end
