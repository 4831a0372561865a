# Row "hello-metrics": hello.ru's app with rustpuma's request metrics off
# (read when the native server starts, after this file is loaded), to
# compare against hello.ru with them on. BENCH_METRICS_AA=1 leaves them on:
# the row then compares two like servers, and shows the noise floor.
ENV["RUSTPUMA_REQUEST_METRICS"] = "off" unless ENV["BENCH_METRICS_AA"]
run lambda { |_env| [200, { "Content-Type" => "text/plain" }, ["Hello World"]] }
