# The smallest Rack app: `bin/rustpuma examples/hello.ru`, then
# `curl http://127.0.0.1:9292/`.
run ->(_env) { [200, { "Content-Type" => "text/plain" }, ["Hello World\n"]] }
