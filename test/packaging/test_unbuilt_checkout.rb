# frozen_string_literal: true

require "support/helper"
require "fileutils"
require "tmpdir"

# A checkout used before `rake compile` (as a Gemfile `path:` gem, or with
# `ruby -I lib`) must stop with one line saying how to build the native
# extension, not a LoadError backtrace.
class TestUnbuiltCheckout < Minitest::Test
  ROOT = ServerProcess::ROOT
  # The children must not find this checkout's built lib through the test
  # run's own environment (bundle exec, RUBYLIB).
  CLEAN_ENV = %w[RUBYOPT RUBYLIB BUNDLE_GEMFILE BUNDLE_PATH BUNDLE_BIN_PATH BUNDLER_SETUP BUNDLER_VERSION].to_h { |k| [k, nil] }.freeze

  def setup
    @dir = Dir.mktmpdir("rustpuma-unbuilt")
    @checkout = File.join(@dir, "checkout")
    FileUtils.mkdir_p(@checkout)
    FileUtils.cp_r([File.join(ROOT, "lib"), File.join(ROOT, "exe"), File.join(ROOT, "rustpuma.gemspec")], @checkout)
    Dir[File.join(@checkout, "lib", "rustpuma", "rustpuma.{so,bundle,dll}")].each { |f| File.unlink(f) }
  end

  def teardown
    FileUtils.rm_rf(@dir)
  end

  def test_exe_says_how_to_build
    output = IO.popen(CLEAN_ENV, [RbConfig.ruby, "-I", File.join(@checkout, "lib"), File.join(@checkout, "exe", "rustpuma")],
                      err: %i[child out], &:read)
    assert_equal 1, $?.exitstatus
    assert_one_clear_line(output)
  end

  def test_path_gem_in_a_gemfile_says_how_to_build
    app = File.join(@dir, "app")
    FileUtils.mkdir_p(app)
    File.write(File.join(app, "Gemfile"), "source \"https://rubygems.org\"\ngem \"rustpuma\", path: #{@checkout.inspect}\n")
    env = CLEAN_ENV.merge("BUNDLE_GEMFILE" => File.join(app, "Gemfile"))
    install = IO.popen(env, %w[bundle install --local], chdir: app, err: %i[child out], &:read)
    assert $?.success?, install
    output = IO.popen(env, ["bundle", "exec", RbConfig.ruby, "-e", "Bundler.require"], chdir: app, err: %i[child out], &:read)
    refute $?.success?
    assert_one_clear_line(output)
  end

  private

  def assert_one_clear_line(output)
    lines = output.lines
    assert_equal 1, lines.size, "one line, no backtrace:\n#{output}"
    assert_match(/\Arustpuma: the native extension is not built in #{Regexp.escape(@checkout)} \(run `rake compile` or `bin\/setup` there/, lines.first)
  end
end
