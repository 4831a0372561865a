#!/usr/bin/env ruby
# Holds COUNT idle connections to 127.0.0.1:PORT for bench/run's "idle" row.
# Usage: idle_conns.rb PORT COUNT DEADLINE_S
#   prints "READY opened failed", then on each "CHECK" line on stdin prints
#   "ALIVE n"; exits on EOF or when its lifetime runs out.
# The sockets only connect and never send a request: Puma 5 parks such a
# socket in its reactor, whereas after a keep-alive request it keeps a
# thread waiting 0.2 s on it, which would make 10,000 of them take minutes
# to set up. An open socket with nothing to read is what costs the server.
require "socket"

port, count, deadline = ARGV.map(&:to_i)
now = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) }
limit = now.() + deadline

# Never outlive the harness by much, whatever happens to its pipe.
Thread.new { sleep deadline + 300; exit!(2) }

socks = []
failed = 0
while socks.size < count && now.() < limit
  begin
    socks << Socket.tcp("127.0.0.1", port, connect_timeout: [limit - now.(), 0.1].max)
  rescue SystemCallError, IOError
    failed += 1
    sleep 0.01
  end
end
$stdout.puts "READY #{socks.size} #{failed}"
$stdout.flush

while $stdin.gets
  alive = socks.count do |s|
    s.read_nonblock(1)
    false # the server wrote something, e.g. a 408 before closing
  rescue IO::WaitReadable
    true
  rescue EOFError, SystemCallError
    false
  end
  $stdout.puts "ALIVE #{alive}"
  $stdout.flush
end
