# Row "big": one 8 MiB string built once at boot, so the row measures how
# fast the server pushes a large body, not how fast Ruby allocates it.
BODY = ("x" * (8 * 1024 * 1024)).freeze

run lambda { |_env|
  [200, { "Content-Type" => "application/octet-stream", "Content-Length" => BODY.bytesize.to_s }, [BODY]]
}
