# frozen_string_literal: true

require_relative "dsl"
require_relative "version" # PUMA_COMPAT_VERSION, also when loaded through the Rack handler
require_relative "plugin"

module Rustpuma
  # Where a Puma plugin file (puma/plugin/<name>.rb from a gem or the load
  # path) is evaluated. Its top-level `Puma::Plugin.create`, `Puma::DSL`,
  # `module Puma … end` resolve to the lexical constant PluginSandbox::Puma
  # rather than ::Puma, which stays undefined so the app and its gems keep
  # seeing that they do not run under Puma. `require "puma/plugin"` (and
  # "puma") at the top of such a file is already satisfied here.
  module PluginSandbox
    PROVIDED = %w[puma puma/plugin puma/events puma/const puma/dsl].freeze

    # `Puma` inside plugin files.
    module Puma
      Plugin = ::Rustpuma::Plugin
      Plugins = ::Rustpuma::Plugins
      UnknownPlugin = ::Rustpuma::UnknownPlugin
      Events = ::Rustpuma::Events
      # `class DSL … end` in a plugin file adds config file methods.
      DSL = ::Rustpuma::DSL

      # The release we follow, for plugins that branch on Puma's version.
      module Const
        PUMA_VERSION = VERSION = ::Rustpuma::PUMA_COMPAT_VERSION
        PUMA_SERVER_STRING = "rustpuma #{::Rustpuma::VERSION}"
      end

      def self.const_missing(name)
        # (IS_JRUBY and friends may be false: test definedness, not value)
        compat&.const_defined?(name) ? compat.const_get(name) : super
      end

      # Puma.stats, Puma.jruby?, … from the config-file shim, when present.
      def self.method_missing(name, *args, &block)
        compat&.respond_to?(name) ? compat.public_send(name, *args, &block) : super
      end

      def self.respond_to_missing?(name, include_private = false)
        compat&.respond_to?(name) || super
      end

      def self.compat
        return @compat if defined?(@compat)

        @compat = begin
          require_relative "puma_compat"
          ::Rustpuma::PumaCompat::Puma
        rescue LoadError
          nil
        end
      end
    end

    def self.require(feature)
      PROVIDED.include?(feature.to_s) ? false : Kernel.require(feature)
    end

    def self.load(path)
      module_eval(File.read(path), path, 1)
      true
    end
  end
end
