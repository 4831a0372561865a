# frozen_string_literal: true

require "optparse"
require "socket"
require "uri"
require_relative "version"
require_relative "const"
require_relative "state_file"

module Rustpuma
  # `rustpumactl`: pumactl's commands and flags. A command goes to the
  # control app when a control URL is known (-C, or the state file's), else
  # it becomes a signal to the pid (-p, -P pidfile, or the state file's).
  class ControlCLI
    # Command => signal when only a pid is known (nil: control app only).
    COMMANDS = {
      "advise" => nil,
      "gc" => nil,
      "gc-stats" => nil,
      "halt" => "SIGQUIT",
      "info" => Const::BACKTRACE_SIGNAL,
      "phased-restart" => "SIGUSR1",
      "refork" => "SIGURG",
      "reload-worker-directory" => nil,
      "reopen-log" => "SIGHUP",
      "restart" => "SIGUSR2",
      "start" => nil,
      "stats" => nil,
      "status" => "",
      "stop" => "SIGTERM",
      "thread-backtraces" => nil,
      "worker-count-down" => "SIGTTOU",
      "worker-count-up" => "SIGTTIN",
    }.freeze
    # Signals only, even with a control URL.
    SIGNAL_ONLY = %w[info reopen-log worker-count-down worker-count-up].freeze
    PRINTABLE = %w[gc-stats stats thread-backtraces].freeze

    Failure = Class.new(StandardError)

    # `status` answers, word for word pumactl's: scripts grep them.
    STARTED = "Puma is started"
    NOT_RUNNING = "Puma is not running"

    def initialize(argv, stdout: $stdout, stderr: $stderr)
      @argv = argv.dup
      @stdout = stdout
      @stderr = stderr
      @quiet = false
      @environment = ENV["APP_ENV"] || ENV["RACK_ENV"] || ENV["RAILS_ENV"]
    end

    def run
      parse
      return start if @command == "start"

      prepare
      if @control_url && !SIGNAL_ONLY.include?(@command)
        send_request
      else
        send_signal
      end
      0
    rescue Failure, SystemCallError => e
      message(e.message)
      1
    end

    private

    def parse
      parser = OptionParser.new do |o|
        o.banner = "Usage: rustpumactl (-p PID | -P pidfile | -S status_file | -C url -T token | -F config.rb) " \
                   "(#{COMMANDS.keys.join('|')})"
        o.on("-S", "--state PATH", "Where the state file to use is") { |v| @state = v }
        o.on("-Q", "--quiet", "Do not display messages") { @quiet = true }
        o.on("-P", "--pidfile PATH", "Pid file") { |v| @pidfile = v }
        o.on("-p", "--pid PID", "Pid") { |v| @pid = Integer(v) }
        o.on("-C", "--control-url URL", "The bind url to use for the control server") { |v| @control_url = v }
        o.on("-T", "--control-token TOKEN", "The token to use as authentication for the control server") { |v| @token = v }
        o.on("-F", "--config-file PATH", "Rustpuma (Puma) config script") { |v| @config_file = v }
        o.on("-e", "--environment ENVIRONMENT", "The environment to run the Rack app on") { |v| @environment = v }
        o.on_tail("-H", "--help", "Show this message") do
          @stdout.puts o
          exit 0
        end
        o.on_tail("-V", "--version", "Show version") do
          @stdout.puts VERSION
          exit 0
        end
      end
      parser.parse!(@argv)
      @command = @argv.shift
      # `advise [SECONDS]`: the window the advice is measured over.
      @seconds = Float(@argv.shift) if @command == "advise" && @argv.first
      raise Failure, "Available commands: #{COMMANDS.keys.join(', ')}" unless @command
      raise Failure, "Invalid command: #{@command}" unless COMMANDS.key?(@command)

      read_config_file
    rescue OptionParser::ParseError, ArgumentError => e
      raise Failure, e.message
    end

    # Like pumactl: the server's config file supplies what the flags did not.
    def read_config_file
      return if @config_file == "-"

      @config_file ||= ["config/puma/#{@environment || 'development'}.rb", "config/puma.rb"].find { |f| File.exist?(f) }
      return unless @config_file

      require_relative "configuration"
      conf = Configuration.new({ environment: @environment || "development" }, config_file: @config_file,
                                                                                log_writer: LogWriter.null)
      opts = conf.load
      @state ||= opts[:state_path]
      @control_url ||= opts[:control_url]
      @token ||= opts[:control_auth_token]
      @pidfile ||= opts[:pidfile]
    rescue StandardError => e
      raise Failure, "#{@config_file}: #{e.message}"
    end

    def prepare
      if @state
        raise Failure, "State file not found: #{@state}" unless File.exist?(@state)

        # As pumactl: the state file's values replace -C/-T/-p.
        sf = StateFile.new.load(@state)
        @control_url = sf.control_url
        @token = sf.control_auth_token
        @pid = sf.pid
      elsif @pidfile
        @pid = File.read(@pidfile).to_i
      end
    end

    def connect
      uri = URI.parse(@control_url)
      case uri.scheme
      when "tcp" then TCPSocket.new(bare_host(uri), uri.port)
      when "ssl"
        # As pumactl: TLS to a control app bound on ssl://, without checking
        # its certificate (it is usually self-signed, on loopback).
        require "openssl"
        ssl = OpenSSL::SSL::SSLSocket.new(TCPSocket.new(bare_host(uri), uri.port), OpenSSL::SSL::SSLContext.new)
        ssl.sync_close = true
        ssl.connect
        ssl
      when "unix"
        path = @control_url.sub(%r{\Aunix://}, "")
        UNIXSocket.new(path.start_with?("@") ? "\0#{path[1..]}" : path)
      else
        raise Failure, "Invalid scheme: #{uri.scheme}"
      end
    end

    def bare_host(uri)
      uri.host.to_s.delete_prefix("[").delete_suffix("]")
    end

    def send_request
      sock = connect
      if @command == "status"
        message STARTED
        return
      end

      path = "/#{@command == 'advise' ? 'advice' : @command}"
      query = []
      query << "token=#{@token}" if @token && @token != "none"
      query << "seconds=#{@seconds}" if @seconds
      path += "?#{query.join('&')}" unless query.empty?
      sock.write("GET #{path} HTTP/1.0\r\n\r\n")
      data = sock.read.to_s
      raise Failure, "Server closed connection before responding" if data.empty?

      head, body = data.split("\r\n\r\n", 2)
      code = head.lines.first.to_s.split(" ", 3)[1]
      case code
      when "200" then nil
      when "403" then raise Failure, "Unauthorized access to server (wrong auth token)"
      when "404" then raise Failure, "Command error: #{body}"
      else raise Failure, "Bad response from server: #{code}"
      end
      return advise(body) if @command == "advise"

      message "Command #{@command} sent success"
      message body if PRINTABLE.include?(@command)
    rescue Errno::ECONNREFUSED, Errno::ENOENT => e
      raise Failure, "Could not reach the control server at #{@control_url}: #{e.message}"
    ensure
      sock&.close
    end

    # The advice's text, as the control app worded it.
    def advise(body)
      require "json"
      JSON.parse(body).fetch("text").each { |line| @stdout.puts line }
    end

    def send_signal
      raise Failure, "Neither pid nor control url available" unless @pid

      sig = COMMANDS[@command]
      if sig.nil? # printed even with -Q, as pumactl does
        @stdout.puts "'#{@command}' not available via pid only"
        return
      end
      if @command == "status"
        begin
          Process.kill(0, @pid)
        rescue SystemCallError
          raise Failure, NOT_RUNNING
        end
        @stdout.puts STARTED
        return
      end
      begin
        Process.kill(sig, @pid)
      rescue SystemCallError
        # As pumactl: `restart` of a server that is not running starts one.
        return start if @command == "restart"

        raise Failure, "No pid '#{@pid}' found"
      end
      message "Command #{@command} sent success"
    end

    # `start`: runs the server in this process with the flags given here,
    # as `pumactl start` runs Puma's CLI.
    def start
      require_relative "../rustpuma"
      require_relative "cli"
      args = []
      args += ["-S", @state] if @state
      args += ["-q"] if @quiet
      args += ["--pidfile", @pidfile] if @pidfile
      args += ["--control-url", @control_url] if @control_url
      args += ["--control-token", @token] if @token
      args += ["-C", @config_file] if @config_file
      args += ["-e", @environment] if @environment
      # A hot restart re-executes $0: make it the server, not this tool.
      server_exe = $PROGRAM_NAME.sub(/rustpumactl\z/, "rustpuma")
      $PROGRAM_NAME = server_exe if server_exe != $PROGRAM_NAME && File.exist?(server_exe)
      CLI.new(args, log_writer: LogWriter.new(@stdout, @stderr)).run
      0
    end

    def message(str)
      @stdout.puts(str) unless @quiet
    end
  end
end
