# frozen_string_literal: true

require "capybara"
require "rustpuma"
require "rack/handler/rustpuma"

module Rustpuma
  # Capybara servers (`Capybara.server = :rustpuma`) for browser and system
  # tests. Rails 6.1's system tests ask for :puma; when the puma gem is not
  # loadable (rustpuma replaced it), :puma starts rustpuma too, so the test
  # suite needs no setting. Loaded by lib/rustpuma/rails.rb in Rails apps,
  # or by `require "rustpuma/capybara"`.
  #
  # Capybara calls the server block on a thread of its own and waits until
  # the port answers; the block must serve until the process exits. Like
  # Capybara's Puma server it builds the Server itself rather than running a
  # Launcher, so no signal handler, pidfile or plugin of config/puma.rb
  # interferes with the test process.
  module CapybaraServer
    DEFAULTS = { Threads: "0:4", workers: 0, daemon: false }.freeze
    # The Rack handler's option handling (config/puma.rb read, Host/Port and
    # Threads win over it), without going through a registry.
    HANDLER = Object.new.extend(::Rustpuma::RackHandler)

    def self.run(app, port, host, **options)
      options = { Host: host, Port: port }.merge(DEFAULTS).merge(options)
      log_writer = options[:Silent] ? LogWriter.null : LogWriter.stdio
      conf = HANDLER.config(app, options, log_writer: log_writer)
      conf.load
      opts = conf.options
      log_writer.log "Capybara starting Rustpuma..."
      log_writer.log "* Version #{VERSION} (Puma #{PUMA_COMPAT_VERSION} compatible)"
      log_writer.log "* Min threads: #{opts[:min_threads]}, max threads: #{opts[:max_threads]}"
      binder = Binder.new(log_writer)
      binder.parse(opts[:binds])
      server = Server.new(conf.app, opts, binder, log_writer).run
      server.join
    ensure
      binder&.close
    end

    # The real puma gem keeps Capybara's own :puma server.
    def self.puma_available?
      return true if defined?(::Puma::Server)

      Gem::Specification.find_all_by_name("puma").any?
    rescue StandardError
      false
    end
  end
end

Capybara.register_server(:rustpuma) do |app, port, host, **options|
  Rustpuma::CapybaraServer.run(app, port, host, **options)
end

unless Rustpuma::CapybaraServer.puma_available?
  Capybara.register_server(:puma) do |app, port, host, **options|
    Rustpuma::CapybaraServer.run(app, port, host, **options)
  end
end
