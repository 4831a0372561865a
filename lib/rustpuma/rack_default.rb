# frozen_string_literal: true

require "rack/handler/rustpuma"

module Rustpuma
  # When no server is named (`bin/rails server`, `rackup` without -s), Rack
  # guesses one from a fixed list that starts with puma. An app that swapped
  # `gem "puma"` for `gem "rustpuma"` would fall through to thin, falcon or
  # webrick, or fail with "Could not find server". This puts rustpuma in
  # puma's place in that guess: puma itself still wins when it is loadable,
  # and an explicit choice (RACK_HANDLER, CGI/FastCGI environments) is kept.
  #
  # Prepended to Rack::Handler's (Rack 2) and Rackup::Handler's (Rack 3)
  # singleton by lib/rustpuma.rb.
  module RackDefault
    EXPLICIT_CHOICE = %w[RACKUP_HANDLER RACK_HANDLER PHP_FCGI_CHILDREN REQUEST_METHOD].freeze

    def default
      return super if EXPLICIT_CHOICE.any? { |key| ENV.key?(key) }

      begin
        get("puma")
      rescue LoadError, NameError
        get("rustpuma")
      end
    end
  end
end

[(::Rack::Handler if defined?(::Rack::Handler)), (::Rackup::Handler if defined?(::Rackup::Handler))].compact.each do |registry|
  next unless registry.respond_to?(:default) && registry.respond_to?(:get)

  registry.singleton_class.prepend(Rustpuma::RackDefault) unless registry.singleton_class < Rustpuma::RackDefault
end
