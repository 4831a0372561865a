# frozen_string_literal: true

require "fileutils"
require "tmpdir"

# For test classes that start several servers and write config files: a
# scratch directory per test, servers started through `start` are stopped
# in teardown whatever the test did.
module ServerTestCase
  HELLO = File.join(ServerProcess::ROOT, "examples", "hello.ru")

  def setup
    super
    @dir = Dir.mktmpdir("rustpuma-#{self.class.name}")
  end

  def teardown
    @servers&.each(&:stop)
    FileUtils.remove_entry(@dir)
    super
  end

  def start(*args, **opts)
    (@servers ||= []) << ServerProcess.new(*args, **opts).start
    @servers.last
  end

  # Writes `text` as a config file in the scratch directory; its path.
  def write_config(text, name = "puma.rb")
    path = File.join(@dir, name)
    File.write(path, text)
    path
  end
end
