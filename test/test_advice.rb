# frozen_string_literal: true

require "minitest/autorun"
require "rustpuma/advice"

# Unit tests for Rustpuma::Advice: the thread and worker advice as a pure
# function of two samples (the figures a server measured over a window).
class TestAdvice < Minitest::Test
  # A sample of one process after `requests` requests whose phases took
  # these mean seconds, having used `cpu` CPU seconds and waited `runqueue`
  # seconds for a CPU.
  def process(id: 1, at: nil, requests: 0, cpu: 0.0, runqueue: 0.0, threads: 5, **means)
    phases = Rustpuma::Advice::PHASES.to_h do |ph|
      [ph, { sum: means.fetch(ph, 0.0) * requests, count: requests, buckets: [] }]
    end
    { id: id, at: at, cpu_seconds: cpu, runqueue_seconds: runqueue, threads_max: threads, phases: phases }
  end

  def sample(at, processes, workers: 0, cores: 2, machine: nil)
    { at: at, cores: cores, workers: workers, machine: machine, processes: processes }
  end

  # Starts from an empty process; `after` is what the window added.
  def advise(seconds: 10.0, workers: 0, cores: 2, busy: nil, threads: 5, **after)
    before = sample(100.0, [process(threads: threads)], workers: workers, cores: cores,
                                                         machine: busy && { busy: 0, total: 0 })
    done = sample(100.0 + seconds, [process(threads: threads, **after)], workers: workers, cores: cores,
                                                                           machine: busy && { busy: (busy * 1000).to_i, total: 1000 })
    Rustpuma::Advice.decide(Rustpuma::Advice.window(before, done))
  end

  # 5 threads of pure Ruby work: one runs at a time, the others wait for the
  # GVL inside `call` (a 95 ms app phase for 19 ms of CPU).
  def test_cpu_bound_app_gets_fewer_threads_and_one_worker_per_core
    a = advise(requests: 500, cpu: 9.5, runqueue: 0.2, queue: 0.03, gvl_wait: 0.002, app: 0.095, write: 0.0001)
    assert_equal :too_many, a[:threads][:verdict]
    assert_equal 5, a[:threads][:current]
    assert_equal 3, a[:threads][:suggested] # halved, rounded up: ask again after
    assert_equal({ verdict: :more, current: 0, suggested: 2 }, a[:workers])
    assert_in_delta 0.95, a[:figures][:cpu], 0.001
    assert_operator a[:figures][:gvl_share], :>=, 0.5
    assert(a[:reasons].any? { |r| r.include?("waiting for the GVL") }, a[:reasons].inspect)
    # 5 threads busy (50/s x 127 ms is 6.4 in the server): 1 runs, 4 wait.
    assert_in_delta 0.8, a[:figures][:gvl_share], 1e-9
  end

  # The same app on a machine too busy to give it a core: it used 45 % of
  # one but waited for a CPU another 45 %; still GVL-bound.
  def test_cpu_bound_app_on_a_starved_machine_is_still_gvl_bound
    a = advise(requests: 250, cpu: 4.5, runqueue: 4.5, busy: 1.0,
               queue: 0.08, gvl_wait: 0.002, app: 0.19, write: 0.0001)
    assert_equal :too_many, a[:threads][:verdict]
    assert_equal :more, a[:workers][:verdict]
    assert_in_delta 0.9, a[:figures][:cpu_demand], 0.001
  end

  # 2 threads each blocked 25 ms per request: requests queue for a thread
  # while the process barely uses the CPU.
  def test_io_bound_app_gets_more_threads
    a = advise(threads: 2, requests: 800, cpu: 0.4, queue: 0.15, gvl_wait: 0.0001, app: 0.025, write: 0.0001)
    assert_equal :too_few, a[:threads][:verdict]
    # Little's law: 80/s x 175 ms = 14 requests in the server, capped at
    # 4x the current count.
    assert_equal 8, a[:threads][:suggested]
    assert_equal :fine, a[:workers][:verdict]
    assert(a[:reasons].any? { |r| r.include?("waiting for a free thread") }, a[:reasons].inspect)
  end

  # A machine busy with other work does not turn I/O waits into GVL waits.
  def test_io_bound_app_on_a_busy_machine_still_gets_more_threads
    a = advise(threads: 2, requests: 800, cpu: 0.4, runqueue: 0.3, busy: 0.99,
               queue: 0.15, gvl_wait: 0.0001, app: 0.03, write: 0.0001)
    assert_equal :too_few, a[:threads][:verdict]
    assert_operator a[:figures][:gvl_share], :<, 0.1
  end

  def test_more_threads_are_capped_by_what_the_gvl_leaves_free
    # 40 % of a core already: about 2 / 0.4 = 5 threads fit.
    a = advise(threads: 2, requests: 800, cpu: 3.9, runqueue: 0.1, queue: 0.15, gvl_wait: 0.0001, app: 0.025)
    assert_equal :too_few, a[:threads][:verdict]
    assert_equal 5, a[:threads][:suggested]
  end

  def test_no_queue_and_no_gvl_wait_is_fine
    a = advise(requests: 300, cpu: 1.5, queue: 0.0002, gvl_wait: 0.0001, app: 0.02, write: 0.0001)
    assert_equal :fine, a[:threads][:verdict]
    assert_equal 5, a[:threads][:suggested]
    assert_equal :fine, a[:workers][:verdict]
  end

  # One thread cannot be fewer: a CPU-bound single thread only needs more
  # processes.
  def test_single_thread_cpu_bound_asks_for_workers_only
    a = advise(threads: 1, requests: 500, cpu: 9.6, queue: 0.08, gvl_wait: 0.0, app: 0.019, write: 0.0001)
    assert_equal :fine, a[:threads][:verdict]
    assert_equal :more, a[:workers][:verdict]
  end

  def test_more_workers_than_cores_on_a_saturated_machine
    a = advise(workers: 4, cores: 2, busy: 0.97, requests: 300, cpu: 2.0,
               queue: 0.001, gvl_wait: 0.0005, app: 0.02, write: 0.0001)
    assert_equal({ verdict: :fewer, current: 4, suggested: 2 }, a[:workers])
  end

  def test_too_few_requests_give_no_advice
    a = advise(requests: 5, cpu: 0.1, queue: 0.5, app: 0.01)
    assert_equal :unknown, a[:threads][:verdict]
    assert_equal :unknown, a[:workers][:verdict]
    assert_match(/too few to judge/, a[:reasons].first)
  end

  # Cluster: each worker's figures come from its own check-in time; a
  # worker replaced during the window is left out.
  def test_window_pairs_processes_and_uses_their_own_times
    before = sample(0.0, [process(id: 10, at: 1.0), process(id: 11, at: 2.0), process(id: 12, at: 1.5)], workers: 2)
    after = sample(20.0, [
                     process(id: 10, at: 11.0, requests: 100, cpu: 5.0, app: 0.01),
                     process(id: 11, at: 12.0, requests: 300, cpu: 5.0, app: 0.03),
                     process(id: 13, at: 12.0, requests: 999, cpu: 9.0, app: 1.0), # the replacement
                   ], workers: 2)
    fig = Rustpuma::Advice.window(before, after)
    assert_equal 2, fig[:processes]
    assert_equal 400, fig[:requests]
    assert_in_delta 10.0, fig[:seconds], 1e-9
    assert_in_delta 0.5, fig[:cpu], 1e-9 # 10 CPU seconds over 2 x 10 s
    assert_in_delta 0.025, fig[:phases][:app], 1e-9 # (100 x 10 ms + 300 x 30 ms) / 400
    assert_in_delta 0.025, fig[:cpu_per_request], 1e-9
  end

  def test_lines_say_the_verdicts_and_the_reasons
    a = advise(requests: 500, cpu: 9.5, runqueue: 0.2, queue: 0.03, gvl_wait: 0.002, app: 0.095)
    text = Rustpuma::Advice.lines(a)
    assert_equal "threads: too many (5): try 3", text[0]
    assert_equal "workers: more (0): try 2", text[1]
    assert_match(/window 10\.0 s, 500 requests/, text[2])
  end
end
