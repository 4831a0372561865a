# frozen_string_literal: true

require_relative "lib/rustpuma/version"

Gem::Specification.new do |spec|
  spec.name = "rustpuma"
  spec.version = Rustpuma::VERSION
  spec.summary = "A Puma-compatible Rack server with a Rust core"
  spec.description = "Drop-in replacement for Puma: reads config/puma.rb, speaks Puma's CLI and signals, " \
                     "and serves Rack apps through a Rust (mio + httparse) reactor."
  spec.authors = ["rustpuma developers"]
  spec.license = "MIT"
  spec.homepage = "https://example.invalid/rustpuma"
  spec.required_ruby_version = ">= 3.1"

  spec.files = Dir[
    "lib/**/*.rb", "exe/*", "sig/*.rbs",
    "ext/rustpuma/extconf.rb", "ext/rustpuma/build.rs", "ext/rustpuma/Cargo.toml", "ext/rustpuma/src/**/*.rs",
    "Cargo.toml", "Cargo.lock", "README.md", "docs/*.md", "examples/**/*"
  ]
  spec.bindir = "exe"
  spec.executables = ["rustpuma", "rustpumactl"]
  spec.extensions = ["ext/rustpuma/extconf.rb"]
  spec.require_paths = ["lib"]

  spec.add_dependency "rack", ">= 2.2", "< 4"
end
