#!/usr/bin/env ruby
# Slow clients for bench/run's "slow" row: COUNT connections to
# 127.0.0.1:PORT each ask for PATH and then read the answer at RATE bytes/s,
# as a mobile client or a congested CDN edge would.
# Usage: slow_readers.rb PORT COUNT PATH RATE LIFETIME_S
#   prints "READY opened failed" once every connection has sent its request
#   and received its first bytes (or 10 s passed); on each "CHECK" line on
#   stdin prints "READ total_bytes"; exits on EOF or when its lifetime ends.
require "socket"

port, count, path, rate, lifetime = ARGV[0].to_i, ARGV[1].to_i, ARGV[2], ARGV[3].to_i, ARGV[4].to_i
now = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) }
Thread.new { sleep lifetime; exit!(0) }

# A small receive buffer so the server's writes really stall on us instead
# of the kernel swallowing the whole body.
def open_conn(port, path)
  s = Socket.new(:INET, :STREAM)
  s.setsockopt(:SOCKET, :RCVBUF, 16 * 1024)
  s.connect(Socket.sockaddr_in(port, "127.0.0.1"))
  s.write("GET #{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
  s
end

socks = []
failed = 0
count.times do
  socks << open_conn(port, path)
rescue SystemCallError, IOError
  failed += 1
end

TICK = 0.1
per_tick = [(rate * TICK).to_i, 1].max
total = 0
started = Hash.new(false)
ready_by = now.() + 10
announced = false
$stdin.sync = true
loop do
  tick_end = now.() + TICK
  socks.each do |s|
    got = s.read_nonblock(per_tick, exception: false)
    next if got == :wait_readable || got.nil?

    total += got.bytesize
    started[s] = true
  rescue SystemCallError, IOError
    nil
  end
  if !announced && (started.size >= socks.size || now.() > ready_by)
    $stdout.puts "READY #{socks.size} #{failed} #{started.size}"
    $stdout.flush
    announced = true
  end
  if announced && $stdin.wait_readable(0)
    line = $stdin.gets or exit!(0)
    $stdout.puts "READ #{total}" if line.start_with?("CHECK")
    $stdout.flush
  end
  pause = tick_end - now.()
  sleep pause if pause.positive?
end
