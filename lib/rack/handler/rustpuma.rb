# frozen_string_literal: true

require "rustpuma/configuration"
require "rustpuma/log_writer"

module Rustpuma
  # The Rack handler, so that `rackup -s rustpuma` and `rails server`
  # (via Rack::Handler / Rackup::Handler) start rustpuma. Behaves like Puma's
  # handler: options rackup/Rails passed only as defaults lose to
  # config/puma.rb, options the user typed win over it.
  #
  # Registered below as :rustpuma; the registry calls .run(app, **options).
  module RackHandler
    DEFAULT_OPTIONS = { Verbose: false, Silent: false }.freeze

    # Builds (does not load) the Configuration for +app+ and rackup-style
    # +options+ (:Host, :Port, :Threads, :environment, :Verbose, :Silent,
    # :user_supplied_options, :config_files).
    def config(app, options = {}, log_writer: nil)
      options = options.dup
      defaults = DEFAULT_OPTIONS.dup

      # rackup and Rails pass every option, defaults included; only the keys
      # listed in :user_supplied_options were typed by the user, so the rest
      # must not override the config file.
      if (supplied = options.delete(:user_supplied_options))
        (options.keys - supplied).each { |k| defaults[k] = options.delete(k) }
      end

      log_writer ||= silent?(options, defaults) ? quiet_writer : ::Rustpuma::LogWriter.stdio
      config_file = Array(options[:config_files] || defaults[:config_files])
      config_file = nil if config_file.empty?

      if options.delete(:Verbose)
        require "rack/common_logger"
        app = ::Rack::CommonLogger.new(app, $stdout)
      end

      ::Rustpuma::Configuration.new({}, config_file: config_file, log_writer: log_writer) do |user, file, default|
        user.environment options[:environment] if options[:environment]
        if (threads = options.delete(:Threads))
          min, max = threads.to_s.split(":", 2)
          user.threads(min, max || min)
        end
        if options[:Host] || options[:Port]
          bind_host_port(user, options[:Host] || defaults[:Host], options[:Port] || defaults[:Port])
        end
        # A bare `port 3000` in config/puma.rb should listen on the host
        # rackup/Rails chose (e.g. localhost in development).
        file.set_default_host(defaults[:Host]) if defaults[:Host]
        bind_host_port(default, defaults[:Host], defaults[:Port])
        user.app app
      end
    end

    def run(app, **options)
      log_writer = silent?(options, {}) ? quiet_writer : ::Rustpuma::LogWriter.stdio
      conf = config(app, options, log_writer: log_writer)
      begin
        conf.load
      rescue ::Rustpuma::ConfigError => e
        log_writer.stderr.puts e.message
        exit 1
      end

      require "rustpuma/launcher"
      launcher = ::Rustpuma::Launcher.new(conf, log_writer: log_writer)
      yield launcher if block_given?
      begin
        launcher.run
      rescue Interrupt
        log_writer.log "* Gracefully stopping, waiting for requests to finish"
        launcher.stop if launcher.respond_to?(:stop)
        log_writer.log "* Goodbye!"
      end
    end

    def valid_options
      {
        "Host=HOST" => "Hostname or unix socket path to listen on (default: localhost)",
        "Port=PORT" => "TCP port to listen on (default: 8080)",
        "Threads=MIN:MAX" => "Minimum:maximum threads in the pool (default 0:5)",
        "Verbose" => "Log each request to stdout (default: false)"
      }
    end

    # Turns rackup's Host/Port into binds on +dsl+'s layer, replacing that
    # layer's binds. A host starting with '.' or '/' is a unix socket path.
    def bind_host_port(dsl, host, port)
      return unless host || port

      dsl.clear_binds!
      host = host&.to_s
      if host && (host.start_with?(".") || host.start_with?("/"))
        dsl.bind "unix://#{host}"
      elsif host&.start_with?("ssl://")
        require "uri"
        uri = URI.parse(host)
        uri.port ||= Integer(port || ::Rustpuma::Configuration::DEFAULT_TCP_PORT)
        dsl.bind uri.to_s
      else
        dsl.port(port || ::Rustpuma::Configuration::DEFAULT_TCP_PORT,
                 host || ::Rustpuma::Configuration::DEFAULT_TCP_HOST)
      end
    end

    private

    def silent?(options, defaults)
      options.fetch(:Silent) { defaults[:Silent] }
    end

    def quiet_writer
      ::Rustpuma::LogWriter.new(File.open(File::NULL, "w"), $stderr)
    end
  end
end

module Rustpuma
  module RackHandler
    # Makes this handler `<registry>::Rustpuma` and registers it as
    # :rustpuma there (once, if both registries are the same object).
    def self.register_in(registry)
      registry.const_set(:Rustpuma, Module.new { extend RackHandler }) unless registry.const_defined?(:Rustpuma, false)
      registry.register :rustpuma, registry.const_get(:Rustpuma, false)
    end
  end
end

# Rack 3 moved the handler registry to the rackup gem (Rackup::Handler);
# Rack 2 has Rack::Handler. Register with whichever exist.
Rustpuma::RackHandler.register_in(Rackup::Handler) if defined?(Rackup::Handler)

begin
  require "rack/handler"
rescue LoadError
  nil
end

Rustpuma::RackHandler.register_in(Rack::Handler) if defined?(Rack::Handler) && Rack::Handler.respond_to?(:register)
