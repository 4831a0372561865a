# Row "slow": "/" is hello world (what wrk measures); "/<N>m" is an N MiB
# body that the slow readers fetch at 10 KiB/s (1 MiB by default,
# bench/run --slow-body-mib N for others). Each size is built once.
BODIES = Hash.new { |h, mib| h[mib] = ("s" * (mib * 1024 * 1024)).freeze }
LOCK = Mutex.new

run lambda { |env|
  if (mib = env["PATH_INFO"][%r{\A/(\d+)m\z}, 1])
    body = LOCK.synchronize { BODIES[mib.to_i] }
    [200, { "Content-Type" => "application/octet-stream", "Content-Length" => body.bytesize.to_s }, [body]]
  else
    [200, { "Content-Type" => "text/plain" }, ["Hello World"]]
  end
}
