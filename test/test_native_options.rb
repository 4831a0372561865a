# frozen_string_literal: true

require "support/helper"
require "rustpuma"
require "rustpuma/configuration"

# Native::Server.new has no defaults of its own: Ruby passes every setting
# (Rustpuma::Server#native_options, from Configuration's defaults), and a
# missing one is an error, never a value the native side made up.
class TestNativeOptions < Minitest::Test
  def native_options
    log_writer = Rustpuma::LogWriter.null
    conf = Rustpuma::Configuration.new({}, config_file: :none, log_writer: log_writer)
    conf.load
    server = Rustpuma::Server.new(->(_env) { [200, {}, []] }, conf.options, nil, log_writer)
    server.send(:native_options)
  end

  def test_the_defaults_ruby_passes_are_accepted
    assert_kind_of Rustpuma::Native::Server, Rustpuma::Native::Server.new([], native_options)
  end

  def test_the_timeouts_come_from_ruby
    opts = native_options
    assert_equal 30, opts[:first_data_timeout]
    assert_equal 65, opts[:persistent_timeout]
    assert_equal Rustpuma::Const::WRITE_TIMEOUT, opts[:write_timeout]
  end

  # Both ways: a key the native side would fill in for itself, or one Ruby
  # passes that it never reads, fails here.
  def test_every_key_ruby_passes_is_required
    opts = native_options
    opts.each_key do |key|
      error = assert_raises(KeyError, "Native::Server.new without #{key}") do
        Rustpuma::Native::Server.new([], opts.except(key))
      end
      assert_includes error.message, key.to_s
    end
  end
end
