# frozen_string_literal: true

module Rustpuma
  # The control app's /metrics: the request metrics each server measures in
  # Rust (Native::Server#metrics, plus the figures Ruby knows: threads_max,
  # rss_bytes) in Prometheus' text exposition format (version 0.0.4). One
  # set of samples per server: single mode has no labels, a cluster master
  # labels each worker's with worker="<index>" (from the worker's last
  # check-in: the master never waits on a worker to answer).
  #
  # Called by ControlApp; the Hash shape is in docs/observability.md, "Data".
  module Metrics
    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
    PHASES = %i[queue gvl_wait app write].freeze

    GAUGES = [
      ["rustpuma_threads_busy", :threads_busy, "Pool threads serving a request."],
      ["rustpuma_threads_max", :threads_max, "Most pool threads (max_threads)."],
      ["rustpuma_backlog", :backlog, "Complete requests waiting for a pool thread."],
      ["rustpuma_connections_open", :connections_open, "Client connections the reactor holds."],
      ["rustpuma_worker_rss_bytes", :rss_bytes, "Resident memory of the serving process."],
    ].freeze

    module_function

    # A process's resident set size in bytes (Linux /proc; this one by
    # default), or nil once it is gone (a zombie has no resident pages).
    def rss_bytes(pid = "self")
      pages = File.read("/proc/#{pid}/statm").split[1]
      pages && !pages.to_i.zero? ? Integer(pages) * page_size : nil
    rescue SystemCallError, ArgumentError
      nil
    end

    def page_size
      @page_size ||= begin
        require "etc"
        Etc.sysconf(Etc::SC_PAGESIZE)
      end
    end

    # `servers`: [[labels Hash, metrics Hash (Server#metrics)], ...];
    # `restarts`: a cluster's worker replacements by reason ({} in single
    # mode, shown as one 0).
    def text(servers, restarts)
      out = +""
      family(out, "rustpuma_requests_total", "counter", "Responses sent, by status class (hijacked: the app answered on a socket it took).") do
        servers.each do |labels, m|
          (m[:requests] || {}).each do |klass, n|
            sample(out, "rustpuma_requests_total", labels.merge(status_class: klass), n)
          end
        end
      end
      family(out, "rustpuma_request_phase_seconds", "histogram",
             "Where requests' time went: queue (complete -> taken by a thread), gvl_wait (taken -> " \
             "holding the GVL), app (call -> body ready), write (first -> last byte).") do
        servers.each { |labels, m| histograms(out, labels, m) }
      end
      GAUGES.each do |name, key, help|
        family(out, name, "gauge", help) do
          servers.each { |labels, m| sample(out, name, labels, m[key]) unless m[key].nil? }
        end
      end
      family(out, "rustpuma_worker_restarts_total", "counter",
             "Workers replaced, by reason (memory, max_requests, timeout, exited; cluster mode).") do
        sample(out, "rustpuma_worker_restarts_total", {}, 0) if restarts.empty?
        restarts.each { |reason, n| sample(out, "rustpuma_worker_restarts_total", { reason: reason }, n) }
      end
      out
    end

    def family(out, name, type, help)
      out << "# HELP #{name} #{help}\n# TYPE #{name} #{type}\n"
      yield
    end

    def histograms(out, labels, metrics)
      bounds = Native::PHASE_BUCKET_BOUNDS
      name = "rustpuma_request_phase_seconds"
      PHASES.each do |phase|
        h = metrics.dig(:phases, phase) or next
        phase_labels = labels.merge(phase: phase)
        running = 0
        h[:buckets].each_with_index do |n, i|
          running += n
          le = i < bounds.size ? bounds[i].to_s : "+Inf"
          sample(out, "#{name}_bucket", phase_labels.merge(le: le), running)
        end
        sample(out, "#{name}_sum", phase_labels, h[:sum])
        sample(out, "#{name}_count", phase_labels, running)
      end
    end

    def sample(out, name, labels, value)
      out << name
      unless labels.empty?
        out << "{" << labels.map { |k, v| "#{k}=\"#{escape(v.to_s)}\"" }.join(",") << "}"
      end
      out << " " << number(value) << "\n"
    end

    def escape(value)
      value.gsub("\\", "\\\\\\\\").gsub("\n", "\\n").gsub('"', '\\"')
    end

    def number(value)
      case value
      when Integer then value.to_s
      when Float then value.finite? ? value.to_s : (value.nan? ? "NaN" : "#{value.positive? ? '+' : '-'}Inf")
      when true then "1"
      when false, nil then "0"
      else Float(value).to_s
      end
    end
  end
end
