# frozen_string_literal: true

require "minitest/autorun"
require "stringio"
require "tmpdir"
require "rustpuma/cli"

# Puma 8's default host in a bind (see Rustpuma::DefaultBind).
DEFAULT_HOST = Rustpuma::DefaultBind.ipv6_available? ? "[::]" : "0.0.0.0" unless defined?(DEFAULT_HOST)

# Unit tests for Rustpuma::CLI: Puma's flags map onto the same options, the
# config file is found or skipped, and errors exit 1 with a useful message.
# No server is started: #configuration is inspected, and #run gets a stub
# launcher.
class TestCLI < Minitest::Test
  ENV_KEYS = %w[PUMA_MIN_THREADS PUMA_MAX_THREADS MIN_THREADS MAX_THREADS WEB_CONCURRENCY
                APP_ENV RACK_ENV RAILS_ENV].freeze

  # Records what the CLI would have started.
  class FakeLauncher
    class << self
      attr_accessor :started
    end

    def initialize(conf, log_writer:)
      @conf = conf
      @log_writer = log_writer
    end

    def run
      self.class.started = @conf
    end
  end

  def setup
    @saved_env = ENV_KEYS.to_h { |k| [k, ENV.delete(k)] }
    @dir = Dir.mktmpdir("rustpuma-cli")
    @pwd = Dir.pwd
    Dir.chdir(@dir)
    File.write("config.ru", "run ->(env) { [200, {}, ['ok']] }\n")
    @out = StringIO.new
    @err = StringIO.new
    FakeLauncher.started = nil
  end

  def teardown
    Dir.chdir(@pwd)
    FileUtils.rm_rf(@dir)
    ENV_KEYS.each { |k| @saved_env[k] ? ENV[k] = @saved_env[k] : ENV.delete(k) }
  end

  def cli(*argv)
    c = Rustpuma::CLI.new(argv, log_writer: Rustpuma::LogWriter.new(@out, @err))
    c.define_singleton_method(:launcher_class) { FakeLauncher }
    c
  end

  def options(*argv)
    cli(*argv).configuration.options
  end

  def write_config(text, path = "config/puma.rb")
    FileUtils.mkdir_p(File.dirname(path))
    File.write(path, text)
  end

  def test_no_flags_gives_defaults
    o = options
    assert_equal ["tcp://#{DEFAULT_HOST}:9292"], o[:binds]
    assert_equal [0, 5], o.values_at(:min_threads, :max_threads)
    assert_equal "config.ru", o[:rackup]
  end

  def test_bind_and_port_accumulate
    o = options("-b", "tcp://127.0.0.1:3000", "--bind", "unix:///tmp/r.sock", "-p", "4000")
    assert_equal ["tcp://127.0.0.1:3000", "unix:///tmp/r.sock", "tcp://#{DEFAULT_HOST}:4000"], o[:binds]
  end

  def test_flags_replace_config_file_binds
    write_config("port 3000\nthreads 1, 2\n")
    o = options("-p", "5000")
    assert_equal ["tcp://#{DEFAULT_HOST}:5000"], o[:binds]
    assert_equal [1, 2], o.values_at(:min_threads, :max_threads), "file still applies elsewhere"
  end

  def test_threads_flag
    assert_equal [2, 9], options("-t", "2:9").values_at(:min_threads, :max_threads)
    # As in Puma, one number sets both bounds.
    assert_equal [8, 8], options("--threads", "8").values_at(:min_threads, :max_threads)
  end

  def test_bad_threads_flag_is_an_error
    assert_raises(Rustpuma::ConfigError) { options("-t", "9:2") }
    assert_raises(Rustpuma::ConfigError) { options("-t", "x") }
  end

  def test_environment_quiet_and_friends
    o = options("-e", "production", "-q", "-w", "3", "--preload", "-P", "tmp/p.pid", "-S", "tmp/s.state",
                "--tag", "api", "--early-hints", "--debug", "--idle-timeout", "30", "--plugin", "tmp_restart",
                "-R", "bin/restart", "--dir", @dir, "--fork-worker=500")
    assert_equal "production", o[:environment]
    assert_equal true, o[:quiet]
    assert_equal false, o[:log_requests]
    assert_equal 3, o[:workers]
    assert_equal true, o[:preload_app]
    assert_equal "tmp/p.pid", o[:pidfile]
    assert_equal "tmp/s.state", o[:state_path]
    assert_equal "api", o[:tag]
    assert_equal true, o[:early_hints]
    assert_equal true, o[:debug]
    assert_equal 30, o[:idle_timeout]
    assert_equal ["tmp_restart"], o[:plugins]
    assert_equal "bin/restart", o[:restart_cmd]
    assert_equal @dir, o[:directory]
    assert_equal 500, o[:fork_worker]
  end

  def test_fork_worker_default_and_log_requests
    o = options("--fork-worker", "-v")
    assert_equal 1000, o[:fork_worker]
    assert_equal true, o[:log_requests]
  end

  def test_cli_wins_over_file_environment
    write_config("environment 'staging'\n")
    assert_equal "staging", options[:environment]
    assert_equal "production", options("-e", "production")[:environment]
  end

  def test_positional_rackup
    assert_equal "app.ru", options("app.ru")[:rackup]
  end

  def test_config_file_flag_and_no_config
    write_config("port 1111\n")
    write_config("port 2222\n", "other.rb")
    assert_equal ["tcp://#{DEFAULT_HOST}:1111"], options[:binds]
    assert_equal ["tcp://#{DEFAULT_HOST}:2222"], options("-C", "other.rb")[:binds]
    assert_equal ["tcp://#{DEFAULT_HOST}:2222"], options("--config", "other.rb")[:binds]
    assert_equal ["tcp://#{DEFAULT_HOST}:9292"], options("--no-config")[:binds]
    assert_equal ["tcp://#{DEFAULT_HOST}:9292"], options("-C", "-")[:binds]
  end

  def test_environment_specific_config_file
    write_config("port 1111\n")
    write_config("port 3333\n", "config/puma/production.rb")
    assert_equal ["tcp://#{DEFAULT_HOST}:3333"], options("-e", "production")[:binds]
  end

  def test_control_flags
    o = options("--control-url", "tcp://127.0.0.1:9293", "--control-token", "tok")
    assert_equal ["tcp://127.0.0.1:9293", "tok"], o.values_at(:control_url, :control_auth_token)
  end

  def test_redirect_flags
    o = options("--redirect-stdout", "log/o", "--redirect-stderr", "log/e", "--redirect-append")
    assert_equal ["log/o", "log/e", true], o.values_at(:redirect_stdout, :redirect_stderr, :redirect_append)
    o = options("--redirect-stdout", "log/o", "--no-redirect-append")
    assert_equal false, o[:redirect_append]
  end

  def test_include_flag_extends_load_path
    options("-I", "/tmp/inc_a:/tmp/inc_b")
    assert_includes $LOAD_PATH, "/tmp/inc_a"
    assert_includes $LOAD_PATH, "/tmp/inc_b"
  ensure
    $LOAD_PATH.delete("/tmp/inc_a")
    $LOAD_PATH.delete("/tmp/inc_b")
  end

  def test_prune_bundler_flags_are_recorded
    opts = options("--prune-bundler", "--extra-runtime-dependencies", "rack,json")
    assert_equal [true, %w[rack json]], opts.values_at(:prune_bundler, :extra_runtime_dependencies)
  end

  def test_silent_drops_informational_output
    c = cli("-s", "--prune-bundler")
    c.configuration
    assert_empty @out.string
    assert_equal true, c.configuration.options[:silent]
  end

  def test_version
    err = assert_raises(SystemExit) { options("-V") }
    assert_equal 0, err.status
    assert_equal "rustpuma version #{Rustpuma::VERSION}\n", @out.string
  end

  def test_help_reads_like_puma
    err = assert_raises(SystemExit) { options("--help") }
    assert_equal 0, err.status
    text = @out.string
    assert_match(/\AUsage: rustpuma \[options\] \[rackup file\]/, text)
    %w[--bind --config --no-config --control-url --control-token --debug --dir --environment
       --fork-worker --include --idle-timeout --port --pidfile --plugin --preload --prune-bundler
       --quiet --log-requests --restart-cmd --silent --state --threads --workers --tag --early-hints
       --redirect-stdout --redirect-stderr --[no-]redirect-append --version --help].each do |flag|
      assert_includes text, flag
    end
  end

  def test_run_starts_the_launcher_with_the_loaded_configuration
    cli("-p", "6000").run
    conf = FakeLauncher.started
    assert_equal ["tcp://#{DEFAULT_HOST}:6000"], conf.options[:binds]
    assert_equal 200, conf.app.call({}).first
  end

  def test_run_without_an_app_exits_1
    File.delete("config.ru")
    err = assert_raises(SystemExit) { cli.run }
    assert_equal 1, err.status
    assert_includes @err.string, "No application configured, nothing to run"
    assert_nil FakeLauncher.started
  end

  def test_app_in_config_file_is_enough
    File.delete("config.ru")
    write_config("app { |env| [200, {}, ['dsl']] }\n")
    cli.run
    assert_equal ["dsl"], FakeLauncher.started.app.call({}).last
  end

  def test_unknown_config_option_exits_1_with_file_and_line
    write_config("threads 1, 2\nport 3000\n\n\n\n\nfoo 1\n")
    err = assert_raises(SystemExit) { cli.run }
    assert_equal 1, err.status
    assert_equal "config/puma.rb:7: unknown configuration option 'foo'\n", @err.string
    assert_nil FakeLauncher.started
  end

  def test_syntax_error_exits_1_with_file_and_line
    write_config("port 3000\ndo\n")
    err = assert_raises(SystemExit) { cli.run }
    assert_equal 1, err.status
    assert_match(%r{\Aconfig/puma\.rb:\d+: }, @err.string)
  end

  def test_bad_numeric_flag_value_is_a_config_error
    err = assert_raises(Rustpuma::ConfigError) { options("--idle-timeout", "soon") }
    assert_includes err.message, "soon"
    assert_raises(Rustpuma::ConfigError) { options("-w", "many") }
    assert_raises(Rustpuma::ConfigError) { options("-p", "http") }
  end

  def test_invalid_flag_exits_1
    err = assert_raises(SystemExit) { cli("--frobnicate").run }
    assert_equal 1, err.status
    assert_includes @err.string, "--frobnicate"
  end

  def test_exe_script_uses_cli
    exe = File.expand_path("../exe/rustpuma", __dir__)
    text = File.read(exe)
    assert_includes text, 'require "rustpuma/cli"'
    assert_includes text, "Rustpuma::CLI.new(ARGV).run"
  end
end
