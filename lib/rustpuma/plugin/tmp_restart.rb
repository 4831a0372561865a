# frozen_string_literal: true

module Rustpuma
  module Plugin
    # `plugin :tmp_restart`: touching tmp/restart.txt (what `rails restart`
    # does) restarts the server, as with Puma's plugin of the same name.
    # Polls the file's mtime every two seconds on a background thread.
    class TmpRestart
      INTERVAL = 2

      def initialize(launcher, path: File.join("tmp", "restart.txt"))
        @launcher = launcher
        @path = File.expand_path(path)
      end

      def start
        Thread.new do
          Thread.current.name = "rustpuma tmp_restart"
          watch
        end
      end

      private

      def watch
        seen = mtime
        loop do
          sleep INTERVAL
          now = mtime
          next unless now && (seen.nil? || now > seen)

          @launcher.log_writer.log "* Restarting: #{@path} was touched"
          @launcher.restart
          return
        end
      end

      def mtime
        File.mtime(@path)
      rescue SystemCallError
        nil
      end
    end
  end
end
