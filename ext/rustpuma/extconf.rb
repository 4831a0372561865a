# frozen_string_literal: true

# Builds the native core with cargo and installs it as rustpuma/rustpuma.so.
#
# The rb_sys gem is not available on Debian, so instead of its mkmf helpers
# we write a small Makefile with the three targets RubyGems and `rake
# compile` use: all, install, clean. rb-sys finds this Ruby through $RUBY.

require "mkmf"
require "rbconfig"
require "shellwords"

ruby = File.join(RbConfig::CONFIG["bindir"], RbConfig::CONFIG["ruby_install_name"])
crate_dir = File.expand_path(__dir__)
cargo = ENV["CARGO"] || find_executable("cargo") || File.join(Dir.home, ".cargo", "bin", "cargo")
abort "rustpuma: cargo not found; install Rust (cargo) to build the native extension" unless File.executable?(cargo)

# In a checkout `rake compile` shares the workspace's target/ with `cargo
# test`; a gem install builds in its own directory and removes it after.
shared_target = ENV["CARGO_TARGET_DIR"]
target_dir = shared_target || File.join(Dir.pwd, "target")
dlext = RbConfig::CONFIG["DLEXT"]
built = File.join(target_dir, "release", "librustpuma.so")
sitearchdir = RbConfig::CONFIG["sitearchdir"]
q = ->(s) { Shellwords.escape(s) }

File.write("Makefile", <<~MAKE)
  sitearchdir = #{sitearchdir}
  DESTDIR =

  all: rustpuma.#{dlext}

  rustpuma.#{dlext}: FORCE
  \tRUBY=#{q[ruby]} #{q[cargo]} build --release --locked --manifest-path #{q[File.join(crate_dir, "Cargo.toml")]} --target-dir #{q[target_dir]}
  \tcp #{q[built]} rustpuma.#{dlext}

  install: rustpuma.#{dlext}
  \tmkdir -p $(DESTDIR)$(sitearchdir)/rustpuma
  \tcp rustpuma.#{dlext} $(DESTDIR)$(sitearchdir)/rustpuma/rustpuma.#{dlext}
  #{shared_target ? "" : "\trm -rf #{q[target_dir]}"}

  clean:
  \trm -f rustpuma.#{dlext}

  FORCE:
  .PHONY: all install clean FORCE
MAKE
