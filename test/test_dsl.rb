# frozen_string_literal: true

require "minitest/autorun"
require "stringio"
require "tmpdir"
require "rustpuma/configuration"
require "rustpuma/dsl"

# Unit tests for Rustpuma::DSL: every Puma DSL method exists and records the
# option key Puma uses; unsupported ones say so once.
class TestDSL < Minitest::Test
  # Public methods of Puma 6's and Puma 7's DSL that a config/puma.rb may call.
  PUMA_DSL_METHODS = %i[
    set_default_host default_host inject get plugin app activate_control_app load bind
    clear_binds! bind_to_activated_sockets port first_data_timeout persistent_timeout
    idle_timeout clean_thread_locals drain_on_shutdown environment force_shutdown_after
    on_restart before_restart restart_command pidfile quiet log_requests custom_logger debug
    rackup rack_url_scheme early_hints stdout_redirect log_formatter threads ssl_bind
    state_path state_permission workers silence_single_worker_warning
    silence_fork_callback_warning before_fork on_worker_boot before_worker_boot
    on_worker_shutdown before_worker_shutdown on_worker_fork before_worker_fork
    after_worker_fork after_worker_boot on_booted after_booted on_stopped after_stopped
    on_refork before_refork after_refork on_thread_start before_thread_start on_thread_exit
    before_thread_exit out_of_band directory preload_app! lowlevel_error_handler
    prune_bundler raise_exception_on_sigterm extra_runtime_dependencies tag
    worker_check_interval worker_timeout worker_boot_timeout worker_shutdown_timeout
    worker_culling_strategy queue_requests shutdown_debug wait_for_less_busy_worker
    set_remote_address fork_worker nakayoshi_fork max_fast_inline max_keep_alive
    enable_keep_alives io_selector_backend mutate_stdout_and_stderr_to_sync_on_write
    http_content_length_limit supported_http_methods fiber_per_request single cluster
    tcp_nodelay
  ].freeze

  def setup
    @out = StringIO.new
    @conf = Rustpuma::Configuration.new({}, config_file: :none,
                                            log_writer: Rustpuma::LogWriter.new(@out, StringIO.new))
    @opts = @conf.user_options
    @dsl = @conf.user_dsl
  end

  def test_every_puma_method_exists
    missing = PUMA_DSL_METHODS.reject { |m| Rustpuma::DSL.public_method_defined?(m) }
    assert_empty missing
  end

  def test_unknown_method_outside_a_file_raises_config_error
    err = assert_raises(Rustpuma::ConfigError) { @dsl.daemonize }
    assert_equal "unknown configuration option 'daemonize'", err.message
  end

  def test_port_and_bind
    @dsl.port 3000
    @dsl.port "3001", "127.0.0.1"
    @dsl.port 3002, "::1"
    @dsl.bind "unix:///tmp/a.sock"
    assert_equal ["tcp://[::]:3000", "tcp://127.0.0.1:3001", "tcp://[::1]:3002", "unix:///tmp/a.sock"],
                 @opts[:binds]
    @dsl.clear_binds!
    assert_equal [], @opts[:binds]
  end

  def test_port_uses_default_host
    @dsl.set_default_host "localhost"
    @dsl.port 4000
    assert_equal ["tcp://localhost:4000"], @opts[:binds]
    assert_equal "localhost", @dsl.default_host
  end

  def test_port_rejects_non_numbers
    assert_raises(ArgumentError) { @dsl.port "abc" }
  end

  def test_threads
    @dsl.threads "2", "8"
    assert_equal [2, 8], @opts.values_at(:min_threads, :max_threads)
    @dsl.threads 4
    assert_equal [4, 4], @opts.values_at(:min_threads, :max_threads)
    assert_raises(ArgumentError) { @dsl.threads 5, 2 }
    assert_raises(ArgumentError) { @dsl.threads 0, 0 }
  end

  def test_threads_of_one_warns
    @dsl.threads 1, 1
    assert_match(/deadlock/, @out.string)
  end

  def test_simple_setters_use_puma_keys
    @dsl.workers "3"
    @dsl.preload_app!
    @dsl.environment :production
    @dsl.directory "/srv/app"
    @dsl.rackup "other.ru"
    @dsl.tag "web"
    @dsl.pidfile "tmp/pids/server.pid"
    @dsl.state_path "tmp/pids/puma.state"
    @dsl.state_permission 0o600
    @dsl.persistent_timeout "70"
    @dsl.first_data_timeout 40
    @dsl.idle_timeout 120
    @dsl.enable_keep_alives false
    @dsl.max_keep_alive 50
    @dsl.early_hints
    @dsl.restart_command "bin/rustpuma"
    @dsl.rack_url_scheme "https"
    @dsl.http_content_length_limit 1_000
    @dsl.worker_timeout 90
    @dsl.worker_boot_timeout 100
    @dsl.worker_shutdown_timeout 20
    @dsl.worker_check_interval 7
    @dsl.fork_worker
    @dsl.raise_exception_on_sigterm false
    @dsl.drain_on_shutdown
    @dsl.clean_thread_locals
    @dsl.shutdown_debug
    @dsl.debug
    @dsl.silence_single_worker_warning
    @dsl.silence_fork_callback_warning
    @dsl.force_shutdown_after :immediately
    @dsl.tcp_nodelay
    @dsl.slow_reader_buffer_limit 1_048_576
    @dsl.streaming_body_buffer_limit 2_097_152
    expected = {
      workers: 3, preload_app: true, environment: "production", directory: "/srv/app",
      rackup: "other.ru", tag: "web", pidfile: "tmp/pids/server.pid",
      state_path: "tmp/pids/puma.state", state_permission: 0o600, persistent_timeout: 70,
      first_data_timeout: 40, idle_timeout: 120, enable_keep_alives: false, max_keep_alive: 50,
      early_hints: true, restart_cmd: "bin/rustpuma", rack_url_scheme: "https",
      http_content_length_limit: 1_000, worker_timeout: 90, worker_boot_timeout: 100,
      worker_shutdown_timeout: 20, worker_check_interval: 7, fork_worker: 1000,
      raise_exception_on_sigterm: false, drain_on_shutdown: true, fiber_per_request: true,
      shutdown_debug: true, debug: true, silence_single_worker_warning: true,
      silence_fork_callback_warning: true, force_shutdown_after: 0, tcp_nodelay: true,
      slow_reader_buffer_limit: 1_048_576, streaming_body_buffer_limit: 2_097_152
    }
    expected.each { |k, v| assert_equal v, @opts[k], "option #{k}" }
  end

  def test_workers_auto_and_validation
    @dsl.workers "auto"
    assert_equal Etc.nprocessors, @opts[:workers]
    @dsl.workers "2"
    assert_equal 2, @opts[:workers]
    assert_raises(ArgumentError) { @dsl.workers "lots" }
  end

  def test_worker_timeout_must_exceed_check_interval
    assert_raises(ArgumentError) { @dsl.worker_timeout 5 }
  end

  def test_worker_memory_limit_reads_megabytes_and_units
    { 512 => 512 * (1024**2), "300MB" => 300 * (1024**2), "1.5G" => 1536 * (1024**2), "800KiB" => 800 * 1024,
      "64m" => 64 * (1024**2) }.each do |given, bytes|
      @dsl.worker_memory_limit(given)
      assert_equal bytes, @opts[:worker_memory_limit], given.inspect
    end
    @dsl.worker_memory_limit(nil)
    assert_nil @opts[:worker_memory_limit]
    ["lots", "10 TB", 0, "-5MB"].each do |bad|
      assert_raises(ArgumentError, bad.inspect) { @dsl.worker_memory_limit(bad) }
    end
  end

  def test_worker_max_requests_jitter_defaults_to_a_tenth
    @dsl.worker_max_requests(1000)
    assert_equal [1000, 100], @opts.values_at(:worker_max_requests, :worker_max_requests_jitter)
    @dsl.worker_max_requests(50, jitter: 0)
    assert_equal [50, 0], @opts.values_at(:worker_max_requests, :worker_max_requests_jitter)
    @dsl.worker_max_requests(0)
    assert_nil @opts[:worker_max_requests]
    assert_raises(ArgumentError) { @dsl.worker_max_requests(-1) }
    assert_raises(ArgumentError) { @dsl.worker_max_requests(10, jitter: -1) }
  end

  def test_worker_culling_strategy_validates
    @dsl.worker_culling_strategy "oldest"
    assert_equal :oldest, @opts[:worker_culling_strategy]
    assert_raises(ArgumentError) { @dsl.worker_culling_strategy :random }
  end

  def test_quiet_and_log_requests_are_one_switch
    @dsl.log_requests
    assert_equal [true, false], @opts.values_at(:log_requests, :quiet)
    @dsl.quiet
    assert_equal [false, true], @opts.values_at(:log_requests, :quiet)
    @dsl.quiet false
    assert_equal true, @opts[:log_requests]
  end

  def test_stdout_redirect
    @dsl.stdout_redirect "log/out", "log/err", true
    assert_equal ["log/out", "log/err", true], @opts.values_at(:redirect_stdout, :redirect_stderr, :redirect_append)
  end

  def test_app_takes_object_or_block
    obj = ->(_env) { [200, {}, []] }
    @dsl.app obj
    assert_same obj, @opts[:app]
    @dsl.app { |_env| [404, {}, []] }
    assert_equal 404, @opts[:app].call({}).first
    assert_raises(ArgumentError) { @dsl.app }
  end

  def test_lowlevel_error_handler
    @dsl.lowlevel_error_handler { |_e, _env, _status| [500, {}, ["oops"]] }
    assert_equal ["oops"], @opts[:lowlevel_error_handler].call(nil, {}, 500).last
    assert_raises(ArgumentError) { @dsl.lowlevel_error_handler }
  end

  def test_plugin_records_names
    @dsl.plugin :tmp_restart
    @dsl.plugin "systemd"
    assert_equal %w[tmp_restart systemd], @opts[:plugins]
  end

  def test_hooks_and_their_old_names_share_keys
    @dsl.on_worker_boot { 1 }
    @dsl.before_worker_boot { 2 }
    @dsl.on_booted { 3 }
    @dsl.after_booted { 4 }
    @dsl.on_restart { 5 }
    @dsl.on_thread_start { 6 }
    @dsl.on_thread_exit { 7 }
    @dsl.on_worker_shutdown { 8 }
    @dsl.on_worker_fork { 9 }
    @dsl.after_worker_boot { 10 }
    @dsl.on_stopped { 11 }
    @dsl.on_refork { 12 }
    @dsl.after_refork { 13 }
    @dsl.before_fork { 14 }
    @dsl.out_of_band { 15 }
    results = {
      before_worker_boot: [1, 2], after_booted: [3, 4], before_restart: [5], before_thread_start: [6],
      before_thread_exit: [7], before_worker_shutdown: [8], before_worker_fork: [9],
      after_worker_fork: [10], after_stopped: [11], before_refork: [12], after_refork: [13],
      before_fork: [14], out_of_band: [15]
    }
    results.each { |key, values| assert_equal values, @opts[key].map(&:call), key.to_s }
  end

  def test_hook_needs_block_and_key_type
    assert_raises(ArgumentError) { @dsl.after_booted }
    assert_raises(ArgumentError) { @dsl.before_worker_boot(42) { nil } }
    @dsl.before_worker_boot(:db) { nil }
    assert_equal :db, @opts[:before_worker_boot].last.last
  end

  def test_set_remote_address_forms
    @dsl.set_remote_address header: "X-Real-IP"
    assert_equal [:header, "HTTP_X_REAL_IP"], @opts.values_at(:remote_address, :remote_address_header)
    @dsl.set_remote_address :localhost
    assert_equal [:value, "127.0.0.1"], @opts.values_at(:remote_address, :remote_address_value)
    @dsl.set_remote_address proxy_protocol: :v1
    assert_equal :proxy_protocol, @opts[:remote_address]
    assert_equal({ proxy_protocol: :v1 }, @opts[:set_remote_address])
    assert_raises(ArgumentError) { @dsl.set_remote_address 42 }
  end

  def test_supported_http_methods
    @dsl.supported_http_methods :any
    assert_equal :any, @opts[:supported_http_methods]
    @dsl.supported_http_methods %w[GET POST PROPFIND]
    assert_equal %w[GET POST PROPFIND], @opts[:supported_http_methods]
    assert_raises(ArgumentError) { @dsl.supported_http_methods %w[GET GET] }
    assert_raises(ArgumentError) { @dsl.supported_http_methods "GET" }
  end

  def test_ssl_bind_stores_an_ssl_uri
    @dsl.ssl_bind "127.0.0.1", 9443, cert: "/p/c e.pem", key: "/p/k.pem", verify_mode: "peer", ca: "/p/ca.pem"
    uri = @opts[:binds].last
    assert_match %r{\Assl://127\.0\.0\.1:9443\?}, uri
    query = URI.decode_www_form(URI.parse(uri).query).to_h
    assert_equal({ "cert" => "/p/c e.pem", "key" => "/p/k.pem", "verify_mode" => "peer", "ca" => "/p/ca.pem" },
                 query)
  end

  def test_ssl_bind_pem_values_go_to_store
    @dsl.ssl_bind "0.0.0.0", 9443, cert_pem: "CERT", key_pem: "KEY"
    assert_equal %w[CERT KEY], @opts[:store]
    assert_match(/cert=store%3A0&key=store%3A1/, @opts[:binds].last)
  end

  def test_activate_control_app
    @dsl.activate_control_app "tcp://127.0.0.1:9293", auth_token: "secret"
    assert_equal ["tcp://127.0.0.1:9293", "secret"], @opts.values_at(:control_url, :control_auth_token)
    @dsl.activate_control_app "unix:///tmp/c.sock", no_token: true
    assert_equal "none", @opts[:control_auth_token]
    @dsl.activate_control_app
    assert_match %r{\Aunix://}, @opts[:control_url]
    assert_match(/\A\h{32}\z/, @opts[:control_auth_token])
  end

  # Every public method of Puma 8.0.2's DSL (names listed from its dsl.rb),
  # plus Puma 6's nakayoshi_fork, exists here.
  PUMA8_DSL = %i[
    set_default_host default_host inject get plugin app activate_control_app load bind clear_binds!
    bind_to_activated_sockets port first_data_timeout persistent_timeout idle_timeout fiber_per_request
    clean_thread_locals drain_on_shutdown environment force_shutdown_after before_restart restart_command
    pidfile quiet log_requests custom_logger debug rackup rack_url_scheme early_hints stdout_redirect
    log_formatter threads max_io_threads ssl_bind state_path state_permission workers
    silence_single_worker_warning silence_fork_callback_warning single cluster before_fork
    before_worker_boot before_worker_shutdown before_worker_fork after_worker_fork after_worker_shutdown
    after_booted after_stopped before_refork after_refork before_thread_start before_thread_exit
    out_of_band directory preload_app! lowlevel_error_handler prune_bundler raise_exception_on_sigterm
    extra_runtime_dependencies tag worker_check_interval worker_timeout worker_boot_timeout
    worker_shutdown_timeout worker_culling_strategy queue_requests shutdown_debug wait_for_less_busy_worker
    set_remote_address fork_worker max_fast_inline max_keep_alive enable_keep_alives io_selector_backend
    mutate_stdout_and_stderr_to_sync_on_write http_content_length_limit supported_http_methods
    nakayoshi_fork
  ].freeze

  def test_every_puma8_dsl_method_is_defined
    missing = PUMA8_DSL.reject { |name| Rustpuma::DSL.public_method_defined?(name) }
    assert_empty missing
    Rustpuma::DSL::WITHOUT_EFFECT.each { |name| assert_includes PUMA8_DSL, name }
  end

  def test_settings_are_recorded
    @dsl.nakayoshi_fork
    @dsl.prune_bundler
    @dsl.extra_runtime_dependencies %w[rack]
    @dsl.queue_requests false
    @dsl.wait_for_less_busy_worker 0.01
    @dsl.max_io_threads 3
    @dsl.shutdown_debug on_force: true
    @dsl.io_selector_backend :epoll
    refute_match(/io_selector_backend|wait_for_less_busy_worker|max_io_threads/, @out.string)
    assert_equal [true, true, ["rack"], false, 0.01, 3, :on_force],
                 @opts.values_at(:nakayoshi_fork, :prune_bundler, :extra_runtime_dependencies, :queue_requests,
                                 :wait_for_less_busy_worker, :max_io_threads, :shutdown_debug)
    assert_raises(ArgumentError) { @dsl.max_io_threads(-1) }
    assert_raises(ArgumentError) { @dsl.workers "many" }
  end

  def test_supported_methods_are_silent
    @dsl.threads 1, 5
    @dsl.port 3000
    @dsl.workers 2
    @dsl.plugin :tmp_restart
    @dsl.before_worker_boot { nil }
    assert_empty @out.string
  end

  def test_get_and_inject
    @dsl.inject { workers 4 } # rubocop:disable Lint/UnexpectedBlockArity -- the DSL's inject, not Enumerable's
    assert_equal 4, @dsl.get(:workers)
    assert_equal :x, @dsl.get(:nothing, :x)
  end

  def test_rails_generated_config_loads
    Dir.mktmpdir do |dir|
      path = File.join(dir, "puma.rb")
      File.write(path, <<~RUBY)
        max_threads_count = ENV.fetch("RAILS_MAX_THREADS") { 5 }
        min_threads_count = ENV.fetch("RAILS_MIN_THREADS") { max_threads_count }
        threads min_threads_count, max_threads_count
        worker_timeout 3600 if ENV.fetch("RAILS_ENV", "development") == "development"
        port ENV.fetch("PORT") { 3000 }
        environment ENV.fetch("RAILS_ENV") { "development" }
        pidfile ENV.fetch("PIDFILE") { "tmp/pids/server.pid" }
        plugin :tmp_restart
      RUBY
      conf = Rustpuma::Configuration.new({}, config_file: path, log_writer: Rustpuma::LogWriter.new(@out, StringIO.new))
      conf.load
      assert_equal [5, 5], conf.options.values_at(:min_threads, :max_threads)
      assert_equal ["tmp_restart"], conf.options[:plugins]
      assert_equal "tmp/pids/server.pid", conf.options[:pidfile]
      assert_empty @out.string
    end
  end
end
