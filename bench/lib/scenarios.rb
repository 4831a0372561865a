# The rows of the benchmark: which app and flags each server gets, how the
# row loads it, and which figures go into the summary table.
require_relative "server"
require_relative "load"

module Bench
  Config = Struct.new(:duration, :warmup, :rounds, :idle, :upload_mib, :uploads, :io_conns, :slow_body_mib,
                      :min_half, keyword_init: true) do
    def upload_bytes = upload_mib * 1024 * 1024
    # The idle row runs wrk twice; half-length runs keep the default suite
    # shorter and keep Puma inside its 30 s first-data timeout. Under
    # min_half seconds (3, 1 for --smoke) a run says little.
    def half = [duration / 2.0, min_half].max.round
  end

  # A summary line: label, metric key, whether rustpuma/x ratios make sense,
  # the issue's target, and how to print the value.
  Line = Struct.new(:label, :key, :ratio, :target, :fmt)

  # note formats row-specific figures from the medians for the details table.
  Row = Struct.new(:key, :title, :app, :threads, :workers, :servers, :lines, :measure, :note, keyword_init: true)

  module Scenarios
    ALL = Servers::NAMES
    RUBIES = (ALL - %w[nginx]).freeze

    module_function

    def rows(cfg)
      @cfg = cfg
      [
        Row.new(key: "hello", title: "hello world, single mode, -t 4:4, wrk -c64",
                app: "hello.ru", threads: "4:4", workers: 0, servers: ALL,
                lines: [Line.new("req/s", :rps, true, "≥ 1.2× iodine, ≥ 5× puma8, ≥ 0.6× nginx", "%.0f")],
                measure: ->(srv) { wrk_row(srv, cfg, conns: 64) }),
        # The cost of always-on request metrics (issue 13: within 2 %): a
        # second rustpuma with them off, the two alternating in short runs;
        # medians of the per-pair ratios (metrics_row).
        Row.new(key: "hello-metrics", title: "hello world -t 4:4, wrk -c64: request metrics on vs off",
                app: "hello.ru", threads: "4:4", workers: 0, servers: %w[rustpuma],
                lines: [Line.new("req/s, metrics on", :rps, false, "", "%.0f"),
                        Line.new("req/s on vs off", :metrics_ratio, false, "≥ 0.98×", "%.3f×"),
                        Line.new("CPU/req on vs off", :metrics_cpu_ratio, false, "≤ 1.02×", "%.3f×")],
                measure: ->(srv) { metrics_row(srv, cfg) },
                note: lambda { |m|
                  off = ENV["BENCH_METRICS_AA"] ? "the second server (A/A check: metrics on too)" : "metrics off"
                  format("%d req/s with #{off}; CPU/req %.1f µs, %.1f µs with #{off}; per round %d pairs of %d s runs, " \
                         "pair ratios p25–p75: req/s %.3f–%.3f, CPU/req %.3f–%.3f",
                         m[:off_rps], m[:on_cpu_us], m[:off_cpu_us], m[:pairs], m[:pair_secs],
                         m[:ratio_p25], m[:ratio_p75], m[:cpu_ratio_p25], m[:cpu_ratio_p75])
                }),
        # With --pin, the -w 1 row against the -w 2 row shows what a second
        # worker costs or gains on one server core (Iodine -w 1 is one process).
        Row.new(key: "cluster-w1", title: "hello world, -w 1 -t 4:4, wrk -c64 (nginx: 1 worker)",
                app: "hello.ru", threads: "4:4", workers: 1, servers: ALL,
                lines: [Line.new("req/s", :rps, true, "", "%.0f")],
                measure: ->(srv) { wrk_row(srv, cfg, conns: 64) }),
        Row.new(key: "cluster", title: "hello world, -w 2 -t 4:4, wrk -c64 (nginx: 2 workers)",
                app: "hello.ru", threads: "4:4", workers: 2, servers: ALL,
                lines: [Line.new("req/s", :rps, true, "≥ 3× puma -w 2", "%.0f")],
                measure: ->(srv) { wrk_row(srv, cfg, conns: 64) }),
        Row.new(key: "io", title: "IO-bound app (sleep 20 ms), -t 16:16, wrk -c#{cfg.io_conns}; limit 800 req/s",
                app: "io.ru", threads: "16:16", workers: 0, servers: RUBIES,
                lines: [Line.new("req/s", :rps, true, "≥ 784 (98 % of 800)", "%.0f"),
                        Line.new("max latency ms", :max, false, "≤ 24 (1.2 × 20 ms)", "%.1f")],
                measure: ->(srv) { wrk_row(srv, cfg, conns: cfg.io_conns) }),
        Row.new(key: "idle", title: "hello world -t 4:4 while #{cfg.idle} idle connections are held, wrk -c64",
                app: "hello.ru", threads: "4:4", workers: 0, servers: ALL,
                lines: [Line.new("req/s with idle conns", :rps, true, "", "%.0f"),
                        Line.new("throughput vs. no idle conns", :idle_ratio, false, "within 10 %", "%.2f×"),
                        Line.new("extra RSS MiB", :rss_growth, false, "≤ 50 MB", "%.1f")],
                measure: ->(srv) { idle_row(srv, cfg) },
                note: lambda { |m|
                  format("%d req/s without idle conns; %d of %d idle conns still open after the run; server fds %d",
                         m[:base_rps], m[:alive], m[:opened], m[:fds])
                }),
        Row.new(key: "upload", title: "#{cfg.upload_mib} MiB upload read in 64 KiB chunks, -t 4:4 (nginx discards it)",
                app: "upload.ru", threads: "4:4", workers: 0, servers: ALL,
                lines: [Line.new("MiB/s", :mibps, true, "≥ 500 MB/s", "%.0f"),
                        Line.new("RSS growth MiB", :rss_growth, false, "≤ 30 MB", "%.1f")],
                measure: ->(srv) { upload_row(srv, cfg) },
                note: ->(m) { format("RSS %.1f MiB before the uploads", m[:rss_before]) }),
        Row.new(key: "slow", title: "hello world -t 4:4, wrk -c64, while 200 clients read a #{cfg.slow_body_mib} MiB body at 10 KiB/s",
                app: "slow.ru", threads: "4:4", workers: 0, servers: RUBIES,
                lines: [Line.new("req/s with slow readers", :rps, true, "", "%.0f"),
                        Line.new("throughput vs. no slow readers", :slow_ratio, false, "within 10 %", "%.2f×"),
                        Line.new("p99 ms with slow readers", :p99, false, "", "%.1f"),
                        Line.new("p99 ms without them", :base_p99, false, "", "%.1f"),
                        Line.new("extra RSS MiB", :rss_growth, false, "≤ 64 MB", "%.1f")],
                measure: ->(srv) { slow_row(srv, cfg) },
                note: lambda { |m|
                  format("%d req/s without slow readers; %d of %d slow readers were receiving; %.1f MiB read by them",
                         m[:base_rps], m[:receiving], m[:opened], m[:slow_mib])
                }),
        # Real frameworks, -t 3:3 as Rails 8's default; nginx has no part here.
        app_row("rails-api", "Rails 6.1 API controller (JSON), -t 3:3, wrk -c16", "rails.ru", "3:3", 0, "/api/7"),
        app_row("rails-page", "Rails 6.1 ERB page with a layout, -t 3:3, wrk -c16", "rails.ru", "3:3", 0, "/catalogue"),
        app_row("rails-w2", "Rails 6.1 API controller (JSON), -w 2 -t 3:3, wrk -c16", "rails.ru", "3:3", 2, "/api/7"),
        app_row("sinatra", "Sinatra JSON route, -t 3:3, wrk -c16", "sinatra.ru", "3:3", 0, "/api/7"),
        app_row("sinatra-w2", "Sinatra JSON route, -w 2 -t 3:3, wrk -c16", "sinatra.ru", "3:3", 2, "/api/7"),
        Row.new(key: "big", title: "8 MiB response body, -t 4:4, wrk -c8 (nginx: static file)",
                app: "big.ru", threads: "4:4", workers: 0, servers: ALL,
                lines: [Line.new("MiB/s", :mibps, true, "≥ 3× puma", "%.0f")],
                measure: ->(srv) { wrk_row(srv, cfg, conns: 8, path: "/big", duration: cfg.half, body_mib: 8) })
      ]
    end

    def app_row(key, title, app, threads, workers, path)
      Row.new(key: key, title: title, app: app, threads: threads, workers: workers, servers: RUBIES,
              lines: [Line.new("req/s", :rps, true, "", "%.0f"),
                      Line.new("p50 ms", :p50, false, "", "%.1f"),
                      Line.new("p99 ms", :p99, false, "", "%.1f"),
                      Line.new("peak RSS MiB", :rss, false, "", "%.0f")],
              measure: ->(srv) { wrk_row(srv, @cfg, conns: 16, path: path) })
    end

    def wrk_row(srv, cfg, conns:, path: "/", duration: cfg.duration, body_mib: nil)
      Wrk.run(srv.port, path: path, conns: conns, duration: cfg.warmup)
      sampler = RssSampler.new(srv.pid).start
      r = Wrk.run(srv.port, path: path, conns: conns, duration: duration)
      r[:rss] = sampler.stop
      r[:mibps] = r[:rps] * body_mib if body_mib && r[:rps]
      r
    end

    # Same server, same wrk run, with and without the idle sockets: the
    # difference is what the idle sockets cost.
    def idle_row(srv, cfg)
      base = wrk_row(srv, cfg, conns: 64, duration: cfg.half)
      return base if base[:error]
      idle = IdleConns.new(srv.port, cfg.idle, deadline: 60)
      begin
        sampler = RssSampler.new(srv.pid).start
        r = Wrk.run(srv.port, conns: 64, duration: cfg.half)
        r[:rss] = sampler.stop
        r[:fds] = srv.fd_count
        r[:opened], r[:alive] = idle.opened, idle.alive
      ensure
        idle.close
      end
      r[:base_rps] = base[:rps]
      r[:idle_ratio] = r[:rps] / base[:rps] if r[:rps]
      r[:rss_growth] = r[:rss] - base[:rss]
      r
    end

    # Metrics on (srv) and off (a second server, both running throughout):
    # pairs of short runs, on-off then off-on, so drift on a busy machine
    # hits both alike, and each pair gives a ratio; the medians of those
    # ratios, with their spread, are the figures. CPU per request (the
    # server's threads' CPU time over the requests wrk counted) holds up
    # under load better than req/s. A full run: 2 rounds of 5 pairs of 2 s.
    def metrics_row(srv, cfg)
      dir = Dir.mktmpdir("rustpuma-bench-metrics-off")
      off, skip = Servers.build("rustpuma", app: "hello_metrics_off.ru", threads: "4:4", workers: 0, tmpdir: dir)
      return { error: skip } unless off
      return { error: "metrics-off server failed to start (#{off.error})" } unless off.start

      secs = cfg.duration >= 10 ? 2 : 1
      pairs = [cfg.duration * 2 / (2 * secs), 1].max
      [srv, off].each { |s| Wrk.run(s.port, conns: 64, duration: cfg.warmup) }
      runs = { on: [], off: [] }
      pairs.times do |i|
        (i.even? ? %i[on off] : %i[off on]).each do |mode|
          runs[mode] << cpu_run(mode == :on ? srv : off, secs)
        end
      end
      bad = runs.values.flatten.find { |r| r[:error] }
      return bad if bad

      metrics_figures(runs).merge(pairs: pairs, pair_secs: secs, rss: srv.rss_mib)
    ensure
      off&.stop
      FileUtils.rm_rf(dir) if dir
    end

    # One wrk run with the CPU the server spent per request.
    def cpu_run(srv, secs)
      before = ProcTree.cpu_ns(srv.pid)
      r = Wrk.run(srv.port, conns: 64, duration: secs)
      r[:cpu_us] = (ProcTree.cpu_ns(srv.pid) - before) / 1000.0 / r[:requests] if r[:requests].to_i.positive?
      r
    end

    def metrics_figures(runs)
      rps = runs[:on].zip(runs[:off]).map { |on, off| on[:rps] / off[:rps] }
      cpu = runs[:on].zip(runs[:off]).map { |on, off| on[:cpu_us] / off[:cpu_us] }
      puts format("    pairs, req/s on/off: %s; CPU/req on/off: %s",
                  rps.map { |x| format("%.3f", x) }.join(" "), cpu.map { |x| format("%.3f", x) }.join(" "))
      runs[:on].last.merge(
        rps: median(runs[:on].map { |r| r[:rps] }), off_rps: median(runs[:off].map { |r| r[:rps] }),
        on_cpu_us: median(runs[:on].map { |r| r[:cpu_us] }), off_cpu_us: median(runs[:off].map { |r| r[:cpu_us] }),
        metrics_ratio: median(rps), ratio_p25: quantile(rps, 0.25), ratio_p75: quantile(rps, 0.75),
        metrics_cpu_ratio: median(cpu), cpu_ratio_p25: quantile(cpu, 0.25), cpu_ratio_p75: quantile(cpu, 0.75)
      )
    end

    # Hello-world throughput alone, then while slow readers hold responses
    # open: a server that ties a thread to each slow reader stalls.
    def slow_row(srv, cfg)
      base = wrk_row(srv, cfg, conns: 64, duration: cfg.half)
      return base if base[:error]

      slow = SlowReaders.new(srv.port, 200, path: "/#{cfg.slow_body_mib}m", rate: 10 * 1024, lifetime: cfg.half + cfg.warmup + 60)
      begin
        sampler = RssSampler.new(srv.pid).start
        r = Wrk.run(srv.port, conns: 64, duration: cfg.half)
        r[:rss] = sampler.stop
        r[:opened], r[:receiving] = slow.opened, slow.receiving
        r[:slow_mib] = slow.bytes_read / 1048576.0
      ensure
        slow.close
      end
      r.delete(:error) if r[:rps] # wrk timeouts while starved are the finding, not a failure
      r[:rps] ||= 0.0
      # No answer at all has no latency: show "—", not 0 ms.
      %i[p50 p99 max].each { |k| r.delete(k) } if r[:rps].zero?
      r[:base_rps], r[:base_p99] = base[:rps], base[:p99]
      r[:slow_ratio] = r[:rps] / base[:rps]
      r[:rss_growth] = r[:rss] - base[:rss]
      r
    end

    def upload_row(srv, cfg)
      warm = Upload.run(srv.port, 8 * 1024 * 1024)
      return warm if warm[:error]
      before = srv.rss_mib
      # Finer sampling: a buffered upload's peak may last well under 100 ms.
      sampler = RssSampler.new(srv.pid, interval: 0.02).start
      runs = Array.new(cfg.uploads) { Upload.run(srv.port, cfg.upload_bytes) }
      peak = sampler.stop
      bad = runs.find { |u| u[:error] }
      return bad if bad
      { mibps: median(runs.map { |u| u[:mibps] }), rss: peak, rss_growth: peak - before, rss_before: before }
    end

    # Linear between the nearest ranks (the median is quantile 0.5).
    def quantile(xs, q)
      xs = xs.compact.sort
      return nil if xs.empty?
      at = q * (xs.size - 1)
      xs[at.floor] + ((xs[at.ceil] - xs[at.floor]) * (at - at.floor))
    end

    def median(xs)
      xs = xs.compact.sort
      return nil if xs.empty?
      xs.size.odd? ? xs[xs.size / 2] : (xs[(xs.size / 2) - 1] + xs[xs.size / 2]) / 2.0
    end
  end
end
