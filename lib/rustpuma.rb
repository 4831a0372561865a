# frozen_string_literal: true

require "socket"
require "stringio"

require_relative "rustpuma/version"
require_relative "rustpuma/const"
require_relative "rustpuma/log_writer"

# The native core, built by ext/rustpuma/extconf.rb (`rake compile` in a
# checkout, `gem install` otherwise). A checkout used before it is built
# (`gem "rustpuma", path: ...`, `ruby -I lib`) stops with one line that says
# how to build it, not a LoadError backtrace.
begin
  require "rustpuma/rustpuma"
rescue LoadError => e
  built = Dir[File.join(__dir__, "rustpuma", "rustpuma.{so,bundle,dll}")]
  raise unless built.empty?

  abort "rustpuma: the native extension is not built in #{File.dirname(__dir__)} " \
        "(run `rake compile` or `bin/setup` there; #{e.message})"
end

# Native log lines reach stderr through a logger thread; the last ones (an
# error logged just before a TERM) must not be lost when the process ends.
# Registered first, so it runs after every other at_exit handler.
at_exit { Rustpuma::Native.flush_log }

require_relative "rustpuma/fork_hook"
require_relative "rustpuma/binder"
require_relative "rustpuma/null_io"
require_relative "rustpuma/env_callables"
require_relative "rustpuma/handler"
require_relative "rustpuma/thread_pool"
require_relative "rustpuma/server_plugin_control"
require_relative "rustpuma/server"
require_relative "rustpuma/metrics"

# A Rack server whose listener, reactor and HTTP handling are Rust, and which
# reads Puma's configuration. See docs/architecture.md for the request path.
module Rustpuma
end

# `gem "rustpuma"` in a Gemfile: Bundler.require loads this file after Rack
# (and Rails) are loaded, so that `bin/rails server` with no -u finds us.
require_relative "rustpuma/rack_default" if defined?(::Rack::Handler) || defined?(::Rackup::Handler)
require_relative "rustpuma/rails" if defined?(::Rails::Railtie)
