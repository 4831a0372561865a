# frozen_string_literal: true

require "optparse"
require_relative "version"
require_relative "log_writer"
require_relative "configuration"

module Rustpuma
  # The `rustpuma` command. Accepts Puma's flags with Puma's spelling and
  # meaning so that Procfiles and scripts only change the executable name.
  # Flags are applied through the DSL onto the highest-precedence layer of a
  # Configuration; #run then hands the loaded configuration to the Launcher.
  #
  # Called by exe/rustpuma: `Rustpuma::CLI.new(ARGV).run`.
  class CLI
    attr_reader :log_writer, :argv

    def initialize(argv, log_writer: LogWriter.stdio)
      @argv = argv.dup
      @log_writer = log_writer
      @parsed = false
      @conf = Configuration.new({}, log_writer: @log_writer)
      @control = {}
      @redirect = {}
    end

    # Parses the flags and loads the config file; returns the Configuration.
    # Separate from #run so tests (and embedders) can inspect the result
    # without starting a server. Raises ConfigError on bad input.
    def configuration
      return @conf if @parsed

      begin
        parser.parse!(@argv)
        @conf.user_dsl.rackup(@argv.shift) if @argv.first
        apply_deferred_flags
      rescue ArgumentError, TypeError => e
        # A flag value the DSL rejected (e.g. --idle-timeout soon).
        raise ConfigError, "invalid argument: #{e.message}"
      end
      @conf.load
      @parsed = true
      @conf
    rescue OptionParser::ParseError => e
      raise ConfigError, "#{e.message} (see rustpuma --help)"
    end

    def run
      conf = configuration
      @log_writer.error "No application configured, nothing to run" unless conf.app_configured?

      launcher_class.new(conf, log_writer: @log_writer).run
    rescue ConfigError => e
      @log_writer.stderr.puts e.message
      exit 1
    end

    # Loaded late: parsing flags and --help must not need the native
    # extension. Tests replace it with a stub.
    def launcher_class
      require "rustpuma/launcher"
      Rustpuma::Launcher
    end

    # The help text, e.g. for `rustpuma --help`.
    def help
      parser.to_s
    end

    private

    # Every flag writes into the user layer through the DSL, so a flag and
    # the same setting in config/puma.rb are validated the same way.
    def parser
      @parser ||= OptionParser.new do |o|
        user = @conf.user_dsl
        o.banner = "Usage: rustpuma [options] [rackup file]"
        o.separator ""
        o.separator "Options:"

        o.on "-b", "--bind URI", "URI to bind to (tcp://, unix://, ssl://)" do |arg|
          user.bind arg
        end
        o.on "--bind-to-activated-sockets [only]", "Bind to all activated sockets" do |arg|
          user.bind_to_activated_sockets(arg || true)
        end
        o.on "-C", "--config PATH", "Load PATH as a config file ('-' for none); repeatable" do |arg|
          @conf.add_config_file(arg)
        end
        o.on "--no-config", "Do not look for a config file" do
          @conf.config_file = :none
        end
        o.on "--control-url URL", "The bind url to use for the control server. Use 'auto' to use temp unix server" do |arg|
          @control[:url] = arg
        end
        o.on "--control-token TOKEN", "The token to use as authentication for the control server" do |arg|
          @control[:auth_token] = arg
        end
        o.on "--debug", "Log lowlevel debugging information" do
          user.debug
        end
        o.on "--dir DIR", "Change to DIR before starting" do |arg|
          user.directory arg
        end
        o.on "-e", "--environment ENVIRONMENT", "The environment to run the Rack app on (default development)" do |arg|
          user.environment arg
        end
        o.on "-f", "--fork-worker=[REQUESTS]", OptionParser::DecimalInteger,
             "Fork new workers from existing worker. Cluster mode only",
             "Auto-refork after REQUESTS (default 1000)" do |arg|
          arg ? user.fork_worker(arg) : user.fork_worker
        end
        o.on "-I", "--include PATH", "Specify $LOAD_PATH directories" do |arg|
          $LOAD_PATH.unshift(*arg.split(":"))
        end
        o.on "--idle-timeout SECONDS", "Number of seconds until the next request before automatic shutdown" do |arg|
          user.idle_timeout arg
        end
        o.on "-p", "--port PORT", "Define the TCP port to bind to", "Use -b for more advanced options" do |arg|
          user.port Integer(arg), Configuration::DEFAULT_TCP_HOST
        rescue ArgumentError
          raise OptionParser::InvalidArgument, "--port #{arg}"
        end
        o.on "-P", "--pidfile PATH", "Use PATH as a pidfile" do |arg|
          user.pidfile arg
        end
        o.on "--plugin PLUGIN", "Load the given PLUGIN. Can be used multiple times to load multiple plugins." do |arg|
          user.plugin arg
        end
        o.on "--preload", "Preload the app. Cluster mode only" do
          user.preload_app!
        end
        o.on "--prune-bundler", "Prune out the bundler env if possible" do
          user.prune_bundler
        end
        o.on "--extra-runtime-dependencies GEM1,GEM2", "Defines any extra needed gems when using --prune-bundler" do |arg|
          user.extra_runtime_dependencies arg.split(",")
        end
        o.on "-q", "--quiet", "Do not log requests internally (default true)" do
          user.quiet
        end
        o.on "-v", "--log-requests", "Log requests as they occur" do
          user.log_requests
        end
        o.on "-R", "--restart-cmd CMD", "The rustpuma command to run during a hot restart", "Default: inferred" do |arg|
          user.restart_command arg
        end
        o.on "-s", "--silent", "Do not log prompt messages other than errors" do
          silence!
        end
        o.on "-S", "--state PATH", "Where to store the state details" do |arg|
          user.state_path arg
        end
        o.on "-t", "--threads INT", "min:max threads to use (default 0:5)" do |arg|
          min, max = arg.split(":", 2)
          # Puma reads a single number as both bounds.
          user.threads(min, max || min)
        rescue ArgumentError => e
          raise OptionParser::InvalidArgument, "--threads #{arg}: #{e.message}"
        end
        o.on "--early-hints", "Enable early hints support" do
          user.early_hints
        end
        o.on "-V", "--version", "Print the version information" do
          @log_writer.log "rustpuma version #{VERSION}"
          exit 0
        end
        o.on "-w", "--workers COUNT", "Activate cluster mode: How many worker processes to create" do |arg|
          user.workers arg
        rescue ArgumentError
          raise OptionParser::InvalidArgument, "--workers #{arg}"
        end
        o.on "--tag NAME", "Additional text to display in process listing" do |arg|
          user.tag arg
        end
        o.on "--redirect-stdout FILE", "Redirect STDOUT to a specific file" do |arg|
          @redirect[:stdout] = arg
        end
        o.on "--redirect-stderr FILE", "Redirect STDERR to a specific file" do |arg|
          @redirect[:stderr] = arg
        end
        o.on "--[no-]redirect-append", "Append to redirected files" do |val|
          @redirect[:append] = val
        end
        o.on_tail "-h", "--help", "Show help" do
          @log_writer.log o
          exit 0
        end
      end
    end

    # Flags that only make sense together are applied once all are known.
    def apply_deferred_flags
      user = @conf.user_dsl
      if @control[:url]
        token = @control[:auth_token]
        opts = token == "none" ? { no_token: true } : { auth_token: token }
        user.activate_control_app(@control[:url], opts)
      elsif @control[:auth_token]
        @conf.user_options[:control_auth_token] = @control[:auth_token]
      end
      if @redirect[:stdout] || @redirect[:stderr]
        user.stdout_redirect(@redirect[:stdout], @redirect[:stderr], @redirect.fetch(:append, false))
      elsif @redirect.key?(:append)
        @conf.user_options[:redirect_append] = @redirect[:append]
      end
    end

    # -s: keep errors, drop the informational lines.
    def silence!
      @conf.user_options[:silent] = true
      @log_writer = LogWriter.new(File.open(File::NULL, "w"), @log_writer.stderr)
      @conf.log_writer = @log_writer
    end
  end
end
