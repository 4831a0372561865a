# Advice validation (bench/advice, test/integration/test_advice_apps.rb):
# every request is pure Ruby work (a few ms of CPU, no I/O), so one process
# serves only as fast as one core runs Ruby (the GVL), whatever its thread
# count: the advice must say fewer threads, one worker per core.
def spin(rounds)
  x = 0
  rounds.times { |i| x = (x + (i * i)) % 1_000_003 }
  x
end

run lambda { |_env|
  [200, { "Content-Type" => "text/plain" }, [spin(20_000).to_s]]
}
