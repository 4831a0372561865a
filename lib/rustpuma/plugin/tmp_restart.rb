# frozen_string_literal: true

require_relative "../plugin"

# `plugin :tmp_restart` (Rails' config/puma.rb template): touching
# tmp/restart.txt (what `bin/rails restart` does) restarts the server, as
# Puma's plugin of that name: the file is created if missing (no file and
# no way to create it: the plugin does nothing), then its mtime is polled
# every two seconds on a background thread.
Rustpuma::Plugin.create do
  def start(launcher)
    path = File.join("tmp", "restart.txt")
    begin
      File.write(path, "") unless File.exist?(path)
      seen = File.mtime(path)
    rescue SystemCallError
      return
    end

    in_background do
      loop do
        sleep 2
        mtime = begin
          File.mtime(path)
        rescue SystemCallError
          nil # a removed file means "do not restart"
        end
        next unless mtime && mtime > seen

        launcher.restart
        break
      end
    end
  end
end
