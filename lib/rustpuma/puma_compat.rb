# frozen_string_literal: true

require "rbconfig"
require_relative "version"

module Rustpuma
  # What a config/puma.rb or a Puma plugin file may ask of `Puma` itself:
  # platform helpers (Puma.jruby?, Puma.windows?, …), their IS_* constants,
  # Puma::Const's version names, Puma.stats, and the plugin API (Puma::Plugin,
  # Plugins, Events, UnknownPlugin; Puma::DSL once plugin_sandbox.rb loads).
  #
  # It is NOT installed as ::Puma: apps and gems test `defined?(::Puma)` to
  # decide whether they run under Puma, and must keep seeing false. It is
  # bound as a lexical constant instead (DSL::Puma for config files,
  # PluginSandbox::Puma for plugin files), so only code written there (and
  # the blocks it defines) resolves `Puma` to it.
  module PumaCompat
    module Puma
      IS_JRUBY = RUBY_PLATFORM.include?("java")
      IS_WINDOWS = RUBY_PLATFORM.match?(/mswin|mingw|cygwin/)
      IS_OSX = RUBY_PLATFORM.include?("darwin")
      IS_LINUX = RUBY_PLATFORM.include?("linux")
      IS_MRI = RUBY_ENGINE == "ruby"
      HAS_FORK = ::Process.respond_to?(:fork)
      HAS_NATIVE_IO_WAIT = true

      # The version names config files read (e.g. to branch on Puma 6 vs 7).
      module Const
        PUMA_VERSION = VERSION = ::Rustpuma::PUMA_COMPAT_VERSION
        CODE_NAME = "rustpuma #{::Rustpuma::VERSION}"
        PUMA_SERVER_STRING = "rustpuma #{::Rustpuma::VERSION}"
      end

      PLUGIN_API = %i[Plugin Plugins Events UnknownPlugin].freeze

      class << self
        def jruby? = IS_JRUBY
        def windows? = IS_WINDOWS
        def osx? = IS_OSX
        def linux? = IS_LINUX
        def mri? = IS_MRI
        def forkable? = HAS_FORK
        def ssl? = true
        def abstract_unix_socket? = IS_LINUX

        # Puma.stats / Puma.stats_hash from inside hooks, as Puma offers.
        def stats_hash = ::Rustpuma.respond_to?(:stats_hash) ? ::Rustpuma.stats_hash : {}

        def stats
          require "json"
          JSON.generate(stats_hash)
        end

        # Puma::Plugin, Plugins, … are rustpuma's plugin API (Rustpuma::Plugin
        # and friends), looked up when first named so that this file does not
        # need to load it.
        def const_missing(name)
          return super unless PLUGIN_API.include?(name)

          plugin_api = File.join(__dir__, "plugin.rb")
          require plugin_api if File.exist?(plugin_api)
          return ::Rustpuma.const_get(name, false) if ::Rustpuma.const_defined?(name, false)

          super
        end
      end
    end
  end
end
