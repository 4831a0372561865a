# frozen_string_literal: true

require "json"
require_relative "state_file"
require_relative "systemd"
require_relative "control_server"
require_relative "metrics"
require_relative "advice_sampler"

module Rustpuma
  class << self
    # The running Launcher, set when it picks its runner.
    attr_accessor :launcher

    # Like Puma.stats_hash: the runner's stats (single or cluster shape).
    def stats_hash
      launcher ? launcher.stats : {}
    end

    # The `versions` part of Puma 8's stats, with our name beside Puma's.
    def versions_stats
      { versions: { puma: PUMA_COMPAT_VERSION, rustpuma: VERSION,
                    ruby: { engine: RUBY_ENGINE, version: RUBY_VERSION, patchlevel: RUBY_PATCHLEVEL } } }
    end

    # Like Puma.stats: the same, as a JSON string.
    def stats
      JSON.generate(stats_hash)
    end
  end

  # The control app (`activate_control_app` / `--control-url`): Puma's
  # App::Status endpoints, for rustpumactl, pumactl and monitoring.
  #   /stats /gc /gc-stats /thread-backtraces      information (JSON)
  #   /metrics                                     Prometheus text (metrics.rb)
  #   /advice?seconds=N                            thread/worker advice (JSON, advice.rb)
  #   /stop /halt /restart /phased-restart /refork /reload-worker-directory
  # Every request must carry ?token=<control_auth_token> unless the token is
  # "none"; otherwise 403.
  class ControlApp
    OK = '{ "status": "ok" }'

    def initialize(launcher, token = nil)
      @launcher = launcher
      @token = token == "none" ? nil : token
    end

    def call(env)
      return respond(403, "Invalid auth token", "text/plain") unless authorized?(env)

      action = env["PATH_INFO"].to_s[%r{/([^/]+)\z}, 1]
      result =
        case action
        when "stop" then after_reply(env) { @launcher.stop } && 200
        when "halt" then after_reply(env) { halt } && 200
        when "restart" then after_reply(env) { @launcher.restart } && 200
        when "phased-restart" then phased_restart ? 200 : 404
        when "refork" then runner.respond_to?(:refork) && runner.refork ? 200 : 404
        when "reload-worker-directory"
          runner.respond_to?(:reload_worker_directory) && runner.reload_worker_directory ? 200 : 404
        when "gc" then GC.start || 200
        when "gc-stats" then JSON.generate(GC.stat)
        when "stats" then JSON.generate(@launcher.stats)
        when "metrics" then return prometheus
        when "advice" then advice(env)
        when "thread-backtraces"
          JSON.generate(Thread.list.map { |t| { name: "Thread: TID-#{t.object_id.to_s(36)} #{t.name}", backtrace: t.backtrace || [] } })
        else
          return respond(404, "Unsupported action", "text/plain")
        end

      case result
      when String then respond(200, result)
      when 200 then respond(200, OK)
      else respond(404, "{ \"error\": \"#{action.tr('-', '_')} not available\" }")
      end
    end

    private

    def runner
      @launcher.runner
    end

    def prometheus
      servers, restarts = runner.respond_to?(:metrics_sources) ? runner.metrics_sources : [[], {}]
      respond(200, Metrics.text(servers, restarts), Metrics::CONTENT_TYPE)
    end

    # Longest /advice window, so a typo cannot hold a connection for hours.
    ADVICE_MAX_SECONDS = 300

    # /advice?seconds=N: two samples N seconds apart (default 10; a cluster
    # master needs two check-ins from each worker, so at least
    # 2 x worker_check_interval + 1), judged by Advice.
    def advice(env)
      asked = env["QUERY_STRING"].to_s[/(?:\A|[&;])seconds=([\d.]+)/, 1]&.to_f || 10.0
      floor = @launcher.options[:workers].to_i.positive? ? (2 * @launcher.options[:worker_check_interval].to_f) + 1 : 1.0
      seconds = asked.clamp(floor, [floor, ADVICE_MAX_SECONDS].max)
      before = Advice::Sampler.sample(@launcher)
      sleep seconds
      result = Advice.decide(Advice.window(before, Advice::Sampler.sample(@launcher)))
      JSON.generate(result.merge(text: Advice.lines(result)))
    end

    def authorized?(env)
      return true unless @token

      env["QUERY_STRING"].to_s.split(/[&;]/).include?("token=#{@token}")
    end

    # Phased restart where the runner can; a hot restart otherwise (Puma's
    # fallback, with its log line).
    def phased_restart
      if runner.respond_to?(:phased_restart) && runner.phased_restart
        true
      else
        @launcher.log_writer.log "* phased-restart called but not available, restarting normally."
        @launcher.restart
        true
      end
    end

    def halt
      if runner.respond_to?(:halt)
        runner.halt
      else
        @launcher.log_writer.log "* Halting"
        $stdout.flush
        exit!(0)
      end
    end

    # Acts once the response is out, so the client hears back even when the
    # action ends the process.
    def after_reply(env, &block)
      if (queue = env["rack.after_reply"])
        queue << block
      else
        block.call
      end
      true
    end

    def respond(status, body, type = "application/json")
      [status, { "content-type" => type, "content-length" => body.bytesize.to_s }, [body]]
    end
  end
end
