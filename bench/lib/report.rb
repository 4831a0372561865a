# Turns the measured medians into the Markdown report.
require "etc"
require "open3"
require "tmpdir"

module Bench
  module Report
    module_function

    def environment(cfg, command, busy)
      rustpuma = File.executable?(Servers::RUSTPUMA) ? "bin/rustpuma at git #{git_rev}" : "bin/rustpuma not present"
      [
        "- Date: #{Time.now.utc.strftime('%Y-%m-%d %H:%M UTC')}",
        "- Command: `#{command}`",
        "- Machine: #{cpu_count} CPUs, #{cpu_model}",
        "- #{first_line('ruby', '-v')}; #{first_line('puma', '--version')}; " \
        "#{first_line('nginx', '-v')}; #{first_line('wrk', '-v')[/\Awrk \S+/] || 'wrk ?'}",
        "- Peers from #{Servers.peers_dir}: #{peer_status}",
        "- rustpuma: #{rustpuma}",
        "- CPU pinning: #{Pin.describe}",
        "- Runs: #{cfg.duration} s per wrk run (#{cfg.half} s for idle and big, #{cfg.warmup} s warm-up), " \
        "#{cfg.rounds} alternating rounds for the Ruby servers (median shown), nginx once; " \
        "#{cfg.idle} idle connections; #{cfg.uploads} × #{cfg.upload_mib} MiB uploads",
        "- Background CPU use measured before the rows: up to #{busy.to_f.round} %" \
        "#{busy.to_f > 20 ? ' — the machine was busy, treat these figures with suspicion' : ''}"
      ].join("\n")
    end

    def markdown(rows, results, env)
      out = ["# rustpuma benchmark", "", env, "", "## Summary", ""]
      peers = Scenarios::ALL - ["rustpuma"]
      out << "| Row | Metric | #{Scenarios::ALL.join(' | ')} | #{peers.map { |p| "rustpuma/#{p}" }.join(' | ')} | Target |"
      out << "|---|---|#{'--:|' * (Scenarios::ALL.size + peers.size)}---|"
      rows.each do |row|
        res = results[row.key]
        row.lines.each do |line|
          vals = Scenarios::ALL.to_h { |s| [s, value(res, s, line.key)] }
          cells = Scenarios::ALL.map do |s|
            v = vals[s]
            next "n/a" unless row.servers.include?(s)
            next format(line.fmt, v) if v

            res[s][:failure] ? "failed to start" : res[s][:skip] ? "skipped" : "—"
          end
          ratios = peers.map do |p|
            next "" unless line.ratio

            row.servers.include?(p) ? ratio(vals["rustpuma"], vals[p]) : "n/a"
          end
          out << "| #{row.key} | #{line.label} | #{cells.join(' | ')} | #{ratios.join(' | ')} | #{line.target} |"
        end
      end
      out += ["", "Columns: " + Scenarios::ALL.map { |s| "#{s} = #{Servers::LABELS[s]}" }.join("; ") + "."]
      out += ["", "## Details (median over rounds)", ""]
      out << "| Row | Server | Throughput | p50 ms | p99 ms | max ms | peak RSS MiB | Notes |"
      out << "|---|---|--:|--:|--:|--:|--:|---|"
      rows.each do |row|
        out << "| **#{row.key}** | #{row.title} |||||||"
        row.servers.each do |s|
          r = results[row.key][s]
          m = r[:agg]
          unless m
            out << "| #{row.key} | #{s} | — | | | | | #{r[:skip] || r[:failure] || r[:errors]&.join('; ') || 'no result'} |"
            next
          end
          tput = m[:mibps] ? format("%.0f MiB/s", m[:mibps]) : format("%.0f req/s", m[:rps])
          notes = [row.note&.call(m), m[:errors] && "errors over all runs: #{counts(m[:errors])}", r[:errors] && "failed rounds: #{r[:errors].join('; ')}",
                   "#{r[:runs]} run#{'s' unless r[:runs] == 1}"].compact.join("; ")
          out << "| #{row.key} | #{s} | #{tput} | #{num(m[:p50])} | #{num(m[:p99])} | #{num(m[:max])} | " \
                 "#{num(m[:rss], '%.1f')} | #{notes} |"
        end
      end
      out.join("\n") + "\n"
    end

    # Printed after each row: rustpuma's throughput against each server
    # that has a figure (nginx is the ceiling, not a competitor).
    def ratio_lines(row, res)
      row.lines.select(&:ratio).filter_map do |line|
        mine = value(res, "rustpuma", line.key)
        parts = (row.servers - ["rustpuma"]).filter_map do |p|
          theirs = value(res, p, line.key)
          "#{p} #{ratio(mine, theirs)}" if mine && theirs
        end
        "  rustpuma / #{parts.join(', ')} (#{line.label})" unless parts.empty?
      end
    end

    def peer_status
      %w[puma8 iodine].map do |name|
        _, skip = Servers.command(name, 0, "hello.ru", "1:1", 0, Dir.tmpdir)
        "#{name} #{skip ? 'not built' : 'built'}"
      end.join(", ")
    end

    def counts(h) = h.map { |k, v| "#{k} #{v}" }.join(", ")

    def value(res, server, key) = res.dig(server, :agg, key)

    def ratio(a, b) = a && b && b > 0 ? format("%.2f×", a / b) : "—"

    def num(v, fmt = "%.2f") = v ? format(fmt, v) : ""

    # Every online CPU: nproc (Etc.nprocessors) would count only the one
    # --pin left this process.
    def cpu_count
      File.read("/proc/cpuinfo").scan(/^processor\s*:/).size
    rescue SystemCallError
      Etc.nprocessors
    end

    def cpu_model
      File.read("/proc/cpuinfo")[/^model name\s*:\s*(.*)$/, 1] || "unknown CPU"
    rescue SystemCallError
      "unknown CPU"
    end

    def first_line(*cmd)
      out, = Open3.capture2e(*cmd)
      out.lines.first.to_s.strip
    rescue SystemCallError
      "#{cmd.first}: not found"
    end

    def git_rev
      out, st = Open3.capture2e("git", "-C", ROOT, "rev-parse", "--short", "HEAD")
      st.success? ? out.strip : "?"
    end
  end
end
