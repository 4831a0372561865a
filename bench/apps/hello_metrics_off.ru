# Row "hello-metrics": hello.ru's app with rustpuma's request metrics off
# (read when the native server starts, after this file is loaded), to
# compare against hello.ru with them on.
ENV["RUSTPUMA_REQUEST_METRICS"] = "off"
run lambda { |_env| [200, { "Content-Type" => "text/plain" }, ["Hello World"]] }
