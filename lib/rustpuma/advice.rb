# frozen_string_literal: true

module Rustpuma
  # "How many threads and workers?", answered from what the server measured
  # over a window: the thread count is too high, too low or fine, and the
  # worker count against the cores, each with its reasons and the numbers.
  # Pure functions of numbers (no clock, no /proc, no server): the control
  # app's /advice takes two samples (advice_sampler.rb), `window` turns them
  # into figures, `decide` into advice, `lines` into text for rustpumactl.
  #
  # The signals (docs/observability.md, "Reading the advice"):
  # - `gvl` share: the part of the time a pool thread holds a request
  #   (gvl_wait + app + write) spent waiting for the GVL: the measured
  #   gvl_wait phase (the thread got the request, then waited for the
  #   GVL), or, when the process is GVL-bound, 1 - 1/B for B busy threads
  #   (B from Little's law): one of them runs Ruby, the others wait. Ruby
  #   3.1 cannot time the GVL waits inside `call`, and under a GVL-bound
  #   load threads take their next request still holding the GVL, so the
  #   measured phase alone stays near zero.
  # - `queue` share: the part of a request's whole time (all four phases)
  #   spent complete, waiting for a free pool thread.
  # - `cpu`: cores one server process used, and `cpu_demand`: that plus
  #   the time its threads waited for a CPU (/proc's schedstat). Its Ruby
  #   code runs on one core at most, whatever the thread count, so a
  #   demand near one core is a GVL-bound process, even on a machine too
  #   busy to give it that core. The machine's own load only matters for
  #   the worker count.
  module Advice
    PHASES = %i[queue gvl_wait app write].freeze
    # Fewer requests than this in the window: nothing to judge.
    MIN_REQUESTS = 20
    # A process asking this much of a core is GVL-bound (its Ruby code can
    # use one core at most).
    SATURATED_CPU = 0.75
    # The machine is saturated when this share of it is busy.
    SATURATED_MACHINE = 0.9
    # A process below this leaves the GVL free most of the time.
    IDLE_CPU = 0.5
    # Shares of a request's time that count as "a large share".
    GVL_LARGE = 0.3
    QUEUE_LARGE = 0.2
    GVL_SMALL = 0.1
    # `more threads` suggests at most this many times the current count.
    GROWTH_CAP = 4

    module_function

    # Two samples -> the figures `decide` reads. A sample:
    #   { at: monotonic seconds, cores:, workers: (0 in single mode),
    #     machine: { busy:, total: } (jiffies from /proc/stat, or nil),
    #     processes: [{ id:, at: (when its figures were taken; default the
    #                   sample's), cpu_seconds:, runqueue_seconds: (or nil),
    #                   threads_max:, phases: { queue: { sum:, count: }, ... } }] }
    # Processes are matched by id; one present in only one sample (a
    # worker replaced during the window), or not updated since (a cluster
    # worker that has not checked in again), is left out.
    def window(before, after)
      pairs = after[:processes].filter_map do |p|
        old = before[:processes].find { |q| q[:id] == p[:id] }
        next unless old

        dt = (p[:at] || after[:at]) - (old[:at] || before[:at])
        [old, p, dt] if dt.positive?
      end
      process_seconds = pairs.sum { |*, dt| dt }
      seconds = pairs.empty? ? after[:at] - before[:at] : process_seconds / pairs.size
      sums = PHASES.to_h { |ph| [ph, delta_phase(pairs, ph)] }
      requests = sums[:app][:count]
      cpu = pairs.sum { |old, new, _| new[:cpu_seconds].to_f - old[:cpu_seconds].to_f }
      runqueue = runqueue_delta(pairs)
      {
        seconds: seconds,
        requests: requests,
        processes: pairs.size,
        workers: after[:workers].to_i,
        threads_max: pairs.map { |_, p, _| p[:threads_max].to_i }.max.to_i,
        cores: after[:cores],
        phases: sums.transform_values { |sm| sm[:count].positive? ? sm[:sum] / sm[:count] : 0.0 },
        cpu: ratio(cpu, process_seconds),
        # On a CPU or waiting for one: what the process asked of the CPU,
        # whether the machine gave it or not.
        cpu_demand: ratio(cpu + runqueue.to_f, process_seconds),
        cpu_per_request: ratio(cpu, requests),
        runqueue_per_request: runqueue && ratio(runqueue, requests),
        machine_busy: machine_busy(before[:machine], after[:machine]),
      }
    end

    # Figures -> { threads: { verdict:, current:, suggested: }, workers: {
    # verdict:, current:, suggested: }, reasons: [String], figures: }.
    # Verdicts: threads :too_many, :too_few, :fine, :unknown (no traffic);
    # workers :more, :fewer, :fine, :unknown.
    def decide(fig)
      threads = fig[:threads_max]
      processes = [fig[:workers], 1].max
      base = { figures: fig.merge(shares(fig)) }
      if fig[:requests] < MIN_REQUESTS || fig[:processes].zero?
        return base.merge(threads: { verdict: :unknown, current: threads, suggested: threads },
                          workers: { verdict: :unknown, current: fig[:workers], suggested: fig[:workers] },
                          reasons: ["only #{fig[:requests]} requests in #{fig[:seconds].round(1)} s: " \
                                    "too few to judge (at least #{MIN_REQUESTS}); ask again under load"])
      end

      sh = base[:figures]
      reasons = [summary(sh)]
      saturated = gvl_bound?(sh)
      t = thread_advice(sh, threads, saturated, reasons)
      w = worker_advice(sh, processes, saturated, reasons)
      base.merge(threads: t, workers: w, reasons: reasons)
    end

    # The advice as lines of text, reasons included.
    def lines(advice)
      t = advice[:threads]
      w = advice[:workers]
      out = []
      out << case t[:verdict]
             when :too_many then "threads: too many (#{t[:current]}): try #{t[:suggested]}"
             when :too_few then "threads: too few (#{t[:current]}): try #{t[:suggested]}"
             when :fine then "threads: fine (#{t[:current]})"
             else "threads: no advice"
             end
      out << case w[:verdict]
             when :more, :fewer then "workers: #{w[:verdict]} (#{w[:current]}): try #{w[:suggested]}"
             when :fine then "workers: fine (#{w[:current]})"
             else "workers: no advice"
             end
      out + advice[:reasons].map { |r| "  - #{r}" }
    end

    # -- the decision, step by step ------------------------------------------------

    def shares(fig)
      ph = fig[:phases]
      total = PHASES.sum { |p| ph[p] }
      # Little's law, per process: requests in the server on average, and
      # the pool threads busy with them (all of them while requests queue).
      in_server = ratio(fig[:requests], fig[:seconds] * fig[:processes]) * total
      busy = [in_server, fig[:threads_max].to_f].min
      # Measured: the wait for the GVL before `call`, as a share of the
      # time a thread holds the request (queue excluded).
      held = ph[:gvl_wait] + ph[:app] + ph[:write]
      measured = ratio(ph[:gvl_wait], held)
      # Inferred: in a GVL-bound process one busy thread runs Ruby, the
      # others wait for it (Ruby 3.1 cannot time these waits inside `call`).
      contended = gvl_bound?(fig) && busy > 1 ? 1 - (1 / busy) : 0.0
      { total: total, in_server: in_server, busy_threads: busy,
        gvl_share: [measured, contended].max,
        queue_share: ratio(ph[:queue], total) }
    end

    def machine_saturated?(fig)
      !fig[:machine_busy].nil? && fig[:machine_busy] >= SATURATED_MACHINE
    end

    # The process's Ruby runs (or waits for a CPU to run) all the time: more
    # threads in it add waiting, not throughput.
    def gvl_bound?(fig)
      fig[:cpu_demand] >= SATURATED_CPU
    end

    def thread_advice(sh, threads, saturated, reasons)
      if sh[:gvl_share] >= GVL_LARGE && saturated && threads > 1
        # Halving, then asking again, converges without knowing how much
        # of a request's time is I/O that other threads could overlap.
        suggested = (threads / 2.0).ceil.clamp(1, threads - 1)
        reasons << "#{sh[:busy_threads].round(1)} threads busy on average in a GVL-bound process " \
                   "(#{cpu_words(sh)}): only one runs Ruby at a time, so threads holding a request " \
                   "spend about #{pct(sh[:gvl_share])} of that time waiting for the GVL; fewer threads " \
                   "(try #{suggested}, then ask again) keep the throughput with less latency"
        { verdict: :too_many, current: threads, suggested: suggested }
      elsif sh[:queue_share] >= QUEUE_LARGE && sh[:gvl_share] < GVL_SMALL && sh[:cpu_demand] < IDLE_CPU
        suggested = more_threads(sh, threads)
        reasons << "#{pct(sh[:queue_share])} of a request's time is spent waiting for a free thread, " \
                   "while threads wait #{pct(sh[:gvl_share])} of theirs for the GVL and #{cpu_words(sh)}: they are " \
                   "blocked (I/O), not busy. On average #{sh[:in_server].round(1)} requests were in the " \
                   "server (rate x time, Little's law), as many threads would serve them at once; " \
                   "try #{suggested} (at most #{GROWTH_CAP}x the current count and what the GVL leaves " \
                   "free), then ask again"
        { verdict: :too_few, current: threads, suggested: suggested }
      else
        reasons << "threads: requests wait #{pct(sh[:queue_share])} of their time for a thread, threads wait " \
                   "#{pct(sh[:gvl_share])} of theirs for the GVL, and #{cpu_words(sh)}: no sign that " \
                   "another thread count would do better"
        { verdict: :fine, current: threads, suggested: threads }
      end
    end

    # Little's law: the average number of requests in the server is what it
    # would take to serve them all at once; capped by what the GVL leaves
    # free (a process at 20 % CPU has room for about 5x the threads).
    def more_threads(sh, threads)
      in_server = sh[:in_server].ceil
      gvl_room = sh[:cpu_demand].positive? ? (threads / sh[:cpu_demand]).floor : threads * GROWTH_CAP
      [in_server, gvl_room, threads * GROWTH_CAP].min.clamp(threads + 1, nil)
    end

    def worker_advice(sh, processes, saturated, reasons)
      cores = sh[:cores]
      current = sh[:workers]
      if saturated && processes < cores
        reasons << "each process's Ruby code uses one core at most (the GVL) and #{cpu_words(sh)}; " \
                   "#{cores} cores: run #{cores} workers (one per core)#{' (cluster mode)' if current.zero?}"
        { verdict: :more, current: current, suggested: cores }
      elsif processes > cores && machine_saturated?(sh)
        reasons << "#{processes} processes share #{cores} cores and the machine is " \
                   "#{pct(sh[:machine_busy])} busy: workers beyond the cores compete for CPU; run #{cores}"
        { verdict: :fewer, current: current, suggested: cores }
      else
        reasons << "workers: #{processes} process#{'es' if processes > 1} on #{cores} cores, " \
                   "#{saturated ? 'GVL-bound' : 'not GVL-bound'}: keep #{current}"
        { verdict: :fine, current: current, suggested: current }
      end
    end

    def summary(sh)
      ph = sh[:phases]
      "window #{sh[:seconds].round(1)} s, #{sh[:requests]} requests " \
        "(#{(sh[:requests] / sh[:seconds]).round(1)}/s) over #{sh[:processes]} process(es) of " \
        "#{sh[:threads_max]} threads; mean per request: " +
        PHASES.map { |p| "#{p} #{ms(ph[p])}" }.join(", ") +
        "; CPU per request #{ms(sh[:cpu_per_request])}"
    end

    def cpu_words(sh)
      machine = sh[:machine_busy] ? ", the machine #{pct(sh[:machine_busy])} busy" : ""
      waited = sh[:cpu_demand] - sh[:cpu]
      waited = waited >= 0.05 ? ", its threads queued for a CPU another #{pct(waited)} (summed over threads)" : ""
      "each process ran on a core #{pct(sh[:cpu])} of the time#{waited}#{machine}"
    end

    def ratio(part, whole)
      whole.positive? ? part / whole : 0.0
    end

    def pct(share)
      "#{(share * 100).round}%"
    end

    def ms(seconds)
      "#{(seconds * 1000).round(1)} ms"
    end

    def delta_phase(pairs, phase)
      pairs.each_with_object({ sum: 0.0, count: 0 }) do |(old, new, _), acc|
        a = old.dig(:phases, phase) || {}
        b = new.dig(:phases, phase) || {}
        acc[:sum] += b[:sum].to_f - a[:sum].to_f
        acc[:count] += b[:count].to_i - a[:count].to_i
      end
    end

    def runqueue_delta(pairs)
      return nil if pairs.empty? || pairs.any? { |old, new, _| old[:runqueue_seconds].nil? || new[:runqueue_seconds].nil? }

      pairs.sum { |old, new, _| [new[:runqueue_seconds] - old[:runqueue_seconds], 0.0].max }
    end

    def machine_busy(before, after)
      return nil unless before && after

      total = after[:total] - before[:total]
      total.positive? ? (after[:busy] - before[:busy]).to_f / total : nil
    end
  end
end
