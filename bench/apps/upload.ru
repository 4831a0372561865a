# Row "upload": stream rack.input in 64 KiB chunks so the app itself never
# holds the body; any memory growth is the server's buffering.
CHUNK = 64 * 1024

run lambda { |env|
  input = env["rack.input"]
  total = 0
  buf = String.new(capacity: CHUNK)
  if input
    while input.read(CHUNK, buf)
      total += buf.bytesize
    end
  end
  [200, { "Content-Type" => "text/plain" }, [total.to_s]]
}
