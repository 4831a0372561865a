# frozen_string_literal: true

require "rbconfig"

module Rustpuma
  # Where the server's own lines go (boot banner, errors, request log), as
  # Puma's LogWriter: stdout for information, stderr for problems. Everything
  # that prints goes through here so that `quiet` and `stdout_redirect` have
  # one place to act on.
  class LogWriter
    attr_reader :stdout, :stderr
    # `log_formatter` (a block: line in, text out) and `custom_logger` (an
    # object with #write that receives the formatted lines instead of
    # stdout), as Puma's LogWriter has them.
    attr_accessor :formatter, :custom_logger

    def self.stdio
      new($stdout, $stderr)
    end

    # For tests and embedded use: a writer that keeps nothing.
    def self.null
      devnull = File.open(File::NULL, "w")
      new(devnull, devnull)
    end

    def initialize(stdout, stderr)
      @stdout = stdout
      @stderr = stderr
      @debug = ENV.key?("PUMA_DEBUG") || ENV.key?("RUSTPUMA_DEBUG")
      @stdout.sync = true if @stdout.respond_to?(:sync=)
      @stderr.sync = true if @stderr.respond_to?(:sync=)
    end

    def log(str)
      str = @formatter.call(str) if @formatter
      if @custom_logger.respond_to?(:write)
        @custom_logger.write(str)
      else
        @stdout.puts(str)
      end
    rescue IOError, Errno::EPIPE
      nil
    end

    def write(str)
      @stdout.write(str)
    rescue IOError, Errno::EPIPE
      nil
    end

    def debug?
      @debug
    end

    def debug=(value)
      @debug = value
    end

    def debug(str)
      log("% #{str}") if @debug
    end

    # PUMA_DEBUG: the native extensions loaded in this process, under a
    # title (Puma prints the same list, so the two can be compared).
    def debug_loaded_extensions(title)
      return unless @debug

      debug "-- #{title}"
      pattern = /\.#{RbConfig::CONFIG['DLEXT']}\z/io
      $LOADED_FEATURES.grep(pattern).each { |f| debug "    #{f}" }
    end

    # A fatal configuration or boot problem: Puma prints it and exits 1.
    def error(str)
      @stderr.puts("ERROR: #{str}")
      exit 1
    end

    # A problem the server survives (app exception, bad client).
    def warn(str)
      @stderr.puts(str)
    rescue IOError, Errno::EPIPE
      nil
    end

    def unknown_error(error, context = nil)
      where = context ? " (#{context})" : ""
      lines = ["#{Time.now} #{error.class}#{where}: #{error.message}"]
      lines.concat(Array(error.backtrace).first(20)) if error.backtrace
      warn(lines.join("\n"))
    end
  end
end
