# frozen_string_literal: true

require "minitest/autorun"
require "stringio"
require "tmpdir"
require "rustpuma/configuration"

# Puma 8's default host in a bind (see Rustpuma::DefaultBind).
DEFAULT_HOST = Rustpuma::DefaultBind.ipv6_available? ? "[::]" : "0.0.0.0" unless defined?(DEFAULT_HOST)

# Unit tests for Rustpuma::Configuration: defaults, the environment layer,
# precedence between layers, config file lookup, app building and hooks.
class TestConfiguration < Minitest::Test
  ENV_KEYS = %w[PUMA_MIN_THREADS PUMA_MAX_THREADS MIN_THREADS MAX_THREADS WEB_CONCURRENCY
                PUMA_PERSISTENT_TIMEOUT APP_ENV RACK_ENV RAILS_ENV].freeze

  def setup
    @saved_env = ENV_KEYS.to_h { |k| [k, ENV.delete(k)] }
    @out = StringIO.new
    @err = StringIO.new
    @log_writer = Rustpuma::LogWriter.new(@out, @err)
    @dir = Dir.mktmpdir("rustpuma-conf")
  end

  def teardown
    ENV_KEYS.each { |k| @saved_env[k] ? ENV[k] = @saved_env[k] : ENV.delete(k) }
    FileUtils.rm_rf(@dir)
  end

  def write(name, text)
    path = File.join(@dir, name)
    FileUtils.mkdir_p(File.dirname(path))
    File.write(path, text)
    path
  end

  def conf(cli = {}, file: :none, **kw)
    Rustpuma::Configuration.new(cli, config_file: file, log_writer: @log_writer, **kw)
  end

  def test_builtin_defaults
    c = conf
    c.load
    o = c.options
    assert_equal ["tcp://#{DEFAULT_HOST}:9292"], o[:binds]
    assert_equal 0, o[:min_threads]
    assert_equal 5, o[:max_threads]
    assert_equal "development", o[:environment]
    assert_equal "config.ru", o[:rackup]
    assert_equal 65, o[:persistent_timeout]
    assert_equal 30, o[:first_data_timeout]
    assert_equal true, o[:enable_keep_alives]
    assert_equal 0, o[:workers]
    assert_equal false, o[:preload_app]
    assert_equal 60, o[:worker_timeout]
    assert_equal 60, o[:worker_boot_timeout], "boot timeout follows worker_timeout"
    assert_equal 30, o[:worker_shutdown_timeout]
    assert_equal 5, o[:worker_check_interval]
    assert_equal :http, o[:mode]
    assert_equal [], o[:plugins]
    assert_equal [], o[:after_booted]
    assert_equal true, o[:quiet]
    assert_equal false, o[:log_requests]
  end

  def test_defaults_constant_lists_launcher_keys
    %i[binds min_threads max_threads environment rackup app directory quiet log_requests tag pidfile
       state_path persistent_timeout first_data_timeout enable_keep_alives max_keep_alive early_hints
       lowlevel_error_handler workers preload_app redirect_stdout redirect_stderr redirect_append plugins
       before_fork before_worker_boot before_worker_shutdown after_worker_fork before_refork after_refork
       after_booted after_stopped before_restart before_thread_start before_thread_exit out_of_band
       worker_timeout worker_boot_timeout worker_shutdown_timeout worker_check_interval fork_worker
       control_url control_auth_token set_remote_address rack_url_scheme supported_http_methods
       http_content_length_limit idle_timeout debug mode].each do |key|
      assert Rustpuma::Configuration::DEFAULTS.key?(key), "DEFAULTS lacks #{key}"
    end
  end

  def test_environment_derived_defaults
    ENV["PUMA_MIN_THREADS"] = "2"
    ENV["MIN_THREADS"] = "9"
    ENV["MAX_THREADS"] = "7"
    ENV["WEB_CONCURRENCY"] = "3"
    ENV["PUMA_PERSISTENT_TIMEOUT"] = "12"
    c = conf
    c.load
    assert_equal 2, c.options[:min_threads], "PUMA_ variable wins over the plain one"
    assert_equal 7, c.options[:max_threads]
    assert_equal 3, c.options[:workers]
    assert_equal true, c.options[:preload_app], "more than one worker preloads by default"
    assert_equal 12, c.options[:persistent_timeout]
  end

  def test_web_concurrency_auto_uses_processor_count
    ENV["WEB_CONCURRENCY"] = "auto"
    c = conf
    c.load
    assert_equal Etc.nprocessors, c.options[:workers]
  end

  def test_bad_environment_number_is_a_config_error
    ENV["MAX_THREADS"] = "lots"
    err = assert_raises(Rustpuma::ConfigError) { conf.load }
    assert_match(/lots/, err.message)
  end

  # load exports RACK_ENV (as Puma's launcher does), so each case sets the
  # variables afresh.
  def test_environment_name_precedence
    ENV.update("RAILS_ENV" => "rails", "RACK_ENV" => "rack", "APP_ENV" => "app")
    c = conf
    c.load
    assert_equal "app", c.environment
    ENV.delete("APP_ENV")
    ENV.update("RAILS_ENV" => "rails", "RACK_ENV" => "rack")
    c = conf
    c.load
    assert_equal "rack", c.environment
    ENV.delete("RACK_ENV")
    c = conf
    c.load
    assert_equal "rails", c.environment
    assert_equal "rails", ENV["RACK_ENV"], "RACK_ENV is exported for the app"
  end

  def test_precedence_cli_over_file_over_env_over_defaults
    ENV["MAX_THREADS"] = "11"
    ENV["MIN_THREADS"] = "1"
    ENV["WEB_CONCURRENCY"] = "4"
    path = write("puma.rb", "threads 2, 3\nport 4000\n")
    c = conf({}, file: path)
    c.user_dsl.threads 6, 8
    c.load
    assert_equal [6, 8], [c.options[:min_threads], c.options[:max_threads]], "CLI wins"
    assert_equal ["tcp://#{DEFAULT_HOST}:4000"], c.options[:binds], "file replaces default binds"
    assert_equal 4, c.options[:workers], "env beats the built-in default"

    c = conf({}, file: path)
    c.load
    assert_equal [2, 3], [c.options[:min_threads], c.options[:max_threads]], "file beats env"
  end

  def test_cli_binds_replace_file_binds
    path = write("puma.rb", "bind 'tcp://127.0.0.1:1'\nbind 'unix:///tmp/x.sock'\n")
    c = conf({ binds: ["tcp://0.0.0.0:7000"] }, file: path)
    c.load
    assert_equal ["tcp://0.0.0.0:7000"], c.options[:binds]
  end

  def test_hooks_from_every_layer_are_kept
    path = write("puma.rb", "after_booted { :file }\n")
    c = conf({}, file: path)
    c.user_dsl.after_booted { :cli }
    c.load
    assert_equal %i[cli file], c.options[:after_booted].map(&:call)
  end

  def test_config_lookup_prefers_environment_file
    write("config/puma.rb", "port 1000\n")
    write("config/puma/production.rb", "port 2000\n")
    Dir.chdir(@dir) do
      c = conf({ environment: "production" }, file: nil)
      c.load
      assert_equal ["config/puma/production.rb"], c.config_files
      assert_equal ["tcp://#{DEFAULT_HOST}:2000"], c.options[:binds]

      ENV.delete("RACK_ENV")
      c = conf({}, file: nil)
      c.load
      assert_equal ["config/puma.rb"], c.config_files
      assert_equal ["tcp://#{DEFAULT_HOST}:1000"], c.options[:binds]
    end
  end

  def test_config_lookup_uses_env_variable_environment
    write("config/puma.rb", "port 1000\n")
    write("config/puma/staging.rb", "port 3000\n")
    ENV["RAILS_ENV"] = "staging"
    Dir.chdir(@dir) do
      c = conf({}, file: nil)
      c.load
      assert_equal ["tcp://#{DEFAULT_HOST}:3000"], c.options[:binds]
    end
  end

  def test_config_lookup_relative_to_directory_option
    write("config/puma.rb", "port 1500\n")
    c = conf({ directory: @dir }, file: nil)
    c.load
    assert_equal ["tcp://#{DEFAULT_HOST}:1500"], c.options[:binds]
  end

  def test_no_config_skips_lookup
    write("config/puma.rb", "port 1000\n")
    Dir.chdir(@dir) do
      %i[none].push("-").each do |none|
        c = conf({}, file: none)
        c.load
        assert_equal [], c.config_files
        assert_equal ["tcp://#{DEFAULT_HOST}:9292"], c.options[:binds]
      end
    end
  end

  def test_missing_explicit_config_file_is_an_error
    err = assert_raises(Rustpuma::ConfigError) { conf({}, file: File.join(@dir, "nope.rb")).load }
    assert_match(/nope\.rb/, err.message)
  end

  def test_unknown_option_reports_file_and_line
    path = write("puma.rb", "threads 1, 2\n\n\n\n\n\nfoo 3\n")
    err = assert_raises(Rustpuma::ConfigError) { conf({}, file: path).load }
    assert_equal "#{path}:7: unknown configuration option 'foo'", err.message
  end

  def test_unknown_option_with_relative_path
    write("config/puma.rb", "port 3000\nworkerz 2\n")
    Dir.chdir(@dir) do
      err = assert_raises(Rustpuma::ConfigError) { conf({}, file: nil).load }
      assert_equal "config/puma.rb:2: unknown configuration option 'workerz'\nDid you mean?  workers", err.message
    end
  end

  def test_syntax_error_reports_file_and_line
    path = write("puma.rb", "port 3000\nthreads 1,\n")
    err = assert_raises(Rustpuma::ConfigError) { conf({}, file: path).load }
    assert_match(/\A#{Regexp.escape(path)}:\d+: /, err.message)
    refute_includes err.message, "\n"
  end

  def test_runtime_error_in_file_reports_line
    path = write("puma.rb", "port 3000\nthreads 5, 2\n")
    err = assert_raises(Rustpuma::ConfigError) { conf({}, file: path).load }
    assert_match(/\A#{Regexp.escape(path)}:2: The minimum \(5\)/, err.message)
  end

  def test_load_evaluates_another_file
    write("shared.rb", "workers 3\n")
    path = write("puma.rb", "load File.join(__dir__, 'shared.rb')\nport 3100\n")
    c = conf({}, file: path)
    c.load
    assert_equal 3, c.options[:workers]
    assert_equal ["tcp://#{DEFAULT_HOST}:3100"], c.options[:binds]
  end

  def test_error_in_loaded_file_names_that_file
    inner = write("inner.rb", "\nbogus_setting\n")
    path = write("puma.rb", "load '#{inner}'\n")
    err = assert_raises(Rustpuma::ConfigError) { conf({}, file: path).load }
    assert_equal "#{inner}:2: unknown configuration option 'bogus_setting'", err.message
  end

  def test_single_and_cluster_blocks_follow_final_worker_count
    path = write("puma.rb", <<~RUBY)
      single { tag "single" }
      cluster { tag "cluster" }
      workers 2
    RUBY
    c = conf({}, file: path)
    c.load
    assert_equal "cluster", c.options[:tag], "cluster block sees workers set after it"

    c = conf({ workers: 0 }, file: path)
    c.load
    assert_equal "single", c.options[:tag], "a CLI worker count decides the mode"
  end

  def test_app_from_rackup_relative_to_directory
    write("config.ru", "run ->(env) { [200, {}, ['from ru']] }\n")
    c = conf({ directory: @dir })
    c.load
    assert c.app_configured?
    status, _, body = c.app.call({})
    assert_equal [200, ["from ru"]], [status, body]
  end

  def test_app_from_dsl_wins_and_custom_rackup
    write("other.ru", "run ->(env) { [201, {}, []] }\n")
    c = conf({ directory: @dir, rackup: "other.ru" })
    c.load
    assert_equal 201, c.app.call({}).first

    app = ->(_env) { [204, {}, []] }
    c = conf({ directory: @dir })
    c.user_dsl.app(app)
    c.load
    assert_same app, c.app
  end

  def test_app_not_configured
    c = conf({ directory: @dir })
    c.load
    refute c.app_configured?
    assert_raises(Rustpuma::ConfigError) { c.app }
  end

  def test_run_hooks_passes_args_and_survives_errors
    seen = []
    c = conf
    c.user_dsl.after_booted { |x| seen << x }
    c.user_dsl.after_booted { raise "boom" }
    c.user_dsl.after_booted { |x| seen << (x * 2) }
    c.load
    c.run_hooks(:after_booted, 21)
    assert_equal [21, 42], seen
    assert_match(/WARNING hook after_booted failed with exception \(RuntimeError\) boom/, @out.string)
  end

  def test_keyed_hooks_share_data
    c = conf
    c.user_dsl.before_worker_boot(:db) { |_idx, data| data[:conn] = :open }
    got = nil
    c.user_dsl.before_worker_shutdown(:db) { |_idx, data| got = data[:conn] }
    c.load
    c.run_hooks(:before_worker_boot, 0)
    c.run_hooks(:before_worker_shutdown, 0)
    assert_equal :open, got
  end

  def test_cluster_hook_in_single_mode_warns_unless_silenced
    c = conf
    c.user_dsl.before_fork { nil }
    c.load
    assert_match(/before_fork/, @out.string)

    @out.truncate(0)
    @out.rewind
    c = conf
    c.user_dsl.before_fork { nil }
    c.user_dsl.silence_fork_callback_warning
    c.load
    refute_match(/before_fork/, @out.string)
  end

  def test_state_and_quiet_are_derived
    c = conf({ state_path: "tmp/puma.state", log_requests: true })
    c.load
    assert_equal "tmp/puma.state", c.options[:state]
    assert_equal false, c.options[:quiet]
  end
end
