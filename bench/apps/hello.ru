# Rows "hello", "cluster" and "idle": the smallest possible Rack response,
# so the numbers are dominated by the server, not the app.
run lambda { |_env| [200, { "Content-Type" => "text/plain" }, ["Hello World"]] }
