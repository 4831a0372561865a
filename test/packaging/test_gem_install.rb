# frozen_string_literal: true

require "support/helper"
require "tmpdir"
require "net/http"

# The way a user gets rustpuma: `gem build`, `gem install` (which runs
# extconf.rb, i.e. cargo), then the installed `rustpuma` serves an app.
# Slow (a full release build), so it runs once, in its own temp GEM_HOME.
class TestGemInstall < Minitest::Test
  ROOT = File.expand_path("../..", __dir__)
  TIME_LIMIT = 600

  def test_built_gem_installs_and_serves_hello_world
    Dir.mktmpdir("rustpuma-gem") do |dir|
      gem_file = build_gem(dir)
      home = File.join(dir, "home")
      env = { "GEM_HOME" => home, "GEM_PATH" => "#{home}:#{Gem.path.join(':')}",
              "PATH" => "#{File.join(Dir.home, '.cargo', 'bin')}:#{ENV.fetch('PATH')}" }
      out = IO.popen(env, [Gem.ruby, "-S", "gem", "install", "--local", "--no-document", gem_file],
                     err: %i[child out], &:read)
      assert $?.success?, "gem install failed:\n#{out}"
      assert_includes out, "Successfully installed rustpuma-"

      exe = File.join(home, "bin", "rustpuma")
      assert File.executable?(exe), "gem install did not install the rustpuma executable"
      server = start_installed(env, exe, dir)
      begin
        response = Net::HTTP.get_response(URI("http://127.0.0.1:#{server[:port]}/"))
        assert_equal "200", response.code
        assert_equal "Hello World\n", response.body
      ensure
        Process.kill("TERM", server[:pid])
        Process.wait(server[:pid])
      end
    end
  end

  private

  def build_gem(dir)
    out = IO.popen([Gem.ruby, "-S", "gem", "build", File.join(ROOT, "rustpuma.gemspec"), "--output", File.join(dir, "rustpuma.gem")],
                   chdir: ROOT, err: %i[child out], &:read)
    assert $?.success?, "gem build failed:\n#{out}"
    File.join(dir, "rustpuma.gem")
  end

  # Runs the installed executable outside the checkout, so nothing from lib/
  # here can be picked up by accident.
  def start_installed(env, exe, dir)
    reader, writer = IO.pipe
    pid = Process.spawn(env, Gem.ruby, exe, "-b", "tcp://127.0.0.1:0", File.join(ROOT, "examples", "hello.ru"),
                        chdir: dir, out: writer, err: writer)
    writer.close
    output = +""
    until output.include?("Use Ctrl-C to stop")
      chunk = reader.readpartial(4096)
      output << chunk
    end
    assert_includes output, "Rustpuma starting in single mode"
    { pid: pid, port: Integer(output[%r{Listening on http://127\.0\.0\.1:(\d+)}, 1]) }
  end
end
