# frozen_string_literal: true

require_relative "dsl"
require_relative "puma_compat"
require_relative "plugin"

module Rustpuma
  # Where a Puma plugin file (puma/plugin/<name>.rb from a gem or the load
  # path) is evaluated. Its top-level `Puma::Plugin.create`, `Puma::DSL`,
  # `module Puma … end` resolve to the lexical constant PluginSandbox::Puma
  # (the config-file shim, puma_compat.rb) rather than ::Puma, which stays
  # undefined so the app and its gems keep seeing that they do not run
  # under Puma. `require "puma/plugin"` (and "puma") at the top of such a
  # file is already satisfied here.
  module PluginSandbox
    PROVIDED = %w[puma puma/plugin puma/events puma/const puma/dsl].freeze

    # `Puma` inside plugin files: the shim config files see. `class DSL`
    # inside a plugin's `module Puma` must reopen our DSL (Ruby does not ask
    # const_missing there), so the DSL is bound on the shim itself.
    Puma = PumaCompat::Puma
    Puma.const_set(:DSL, ::Rustpuma::DSL) unless Puma.const_defined?(:DSL, false)

    def self.require(feature)
      PROVIDED.include?(feature.to_s) ? false : Kernel.require(feature)
    end

    def self.load(path)
      module_eval(File.read(path), path, 1)
      true
    end
  end
end
