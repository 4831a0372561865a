# Row "io": every request blocks 20 ms (a stand-in for a DB or HTTP call),
# so throughput is bounded by threads / 0.02 s, not by CPU.
run lambda { |_env|
  sleep 0.02
  [200, { "Content-Type" => "text/plain" }, ["Hello World"]]
}
