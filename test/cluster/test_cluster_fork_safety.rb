# frozen_string_literal: true

require "support/cluster_support"

# fork_worker: worker 0 forks while it serves. The worker it forks must not
# keep any descriptor of worker 0's native core (client connections, relayed
# hijack sockets, spilled uploads, epoll and eventfd) nor the sockets worker
# 0 handed to its app: a connection worker 0 closes must end for its client.
# One worker to start with, so every connection reaches worker 0; TTIN then
# has worker 0 fork worker 1.
class TestClusterForkSafety < Minitest::Test
  include ClusterSupport

  CONFIG = File.join(FIXTURES, "cluster", "fork_worker.rb")
  APP = File.join(FIXTURES, "cluster", "fork_fds.ru")

  def setup
    @srv = start("-C", CONFIG, APP, env: { "WORKERS" => "1" })
    @worker0 = booted_workers(@srv)[0]
    @clients = []
  end

  def teardown
    @clients.each { |c| c.close unless c.closed? }
    super
  end

  def connect(first_bytes)
    sock = TCPSocket.new("127.0.0.1", @srv.port)
    @clients << sock
    sock.write(first_bytes)
    sock
  end

  def read_until(sock, text, timeout = 10)
    got = +""
    Timeout.timeout(timeout) { got << sock.readpartial(4096) until got.include?(text) }
    got
  end

  def fork_worker1
    @srv.signal("TTIN")
    @srv.wait_for_output(/Worker 1 \(PID: \d+\) booted/, 20)
    booted_workers(@srv)[1]
  end

  # A hijack whose client had sent bytes past the request goes through a
  # socket pair the reactor relays; a plain one is the client's socket. Both
  # end for the client once worker 0's app closes them, although worker 1
  # was forked while they were open.
  def test_hijacked_connections_end_when_worker_zero_closes_them
    relayed = connect("GET /hijack HTTP/1.1\r\nHost: x\r\n\r\nhello\n")
    assert_includes read_until(relayed, "got hello"), @worker0.to_s
    direct = connect("GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n")
    read_until(direct, "\r\n\r\n#{@worker0}\n")
    direct.write("hello\n")
    read_until(direct, "got hello")

    assert_equal @worker0, ppid(fork_worker1)
    [relayed, direct].each do |sock|
      sock.write("close\n")
      rest = Timeout.timeout(5) { sock.read } # EOF only once no process holds the connection
      assert_equal "", rest
    end
  end

  # Worker 1 shares no socket with worker 0 but the listener, no unlinked
  # upload file, and has only its own server's epoll and eventfd.
  def test_worker_forked_from_worker_zero_holds_none_of_its_core_descriptors
    keep_alive = connect("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    read_until(keep_alive, @worker0.to_s)
    relayed = connect("GET /hijack HTTP/1.1\r\nHost: x\r\n\r\nhello\n")
    read_until(relayed, "got hello")
    upload = connect("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: #{8 << 20}\r\n\r\n")
    upload.write("x" * (1 << 20)) # spilled to an unlinked temp file, not finished
    wait_until(10, "worker 0's spilled upload") { deleted_files(@worker0).any? }

    worker1 = fork_worker1
    shared = fd_targets(@worker0) & fd_targets(worker1)
    assert_empty shared.grep(/\Asocket:/) - listener_sockets, "sockets of worker 0 in worker 1"
    assert_empty deleted_files(worker1), "worker 0's upload file in worker 1"
    %w[anon_inode:[eventpoll] anon_inode:[eventfd]].each do |kind|
      assert_equal fd_targets(@worker0, all: true).count(kind), fd_targets(worker1, all: true).count(kind),
                   "#{kind}: worker 1 has its own server's only"
    end
  end

  private

  def ppid(pid)
    Integer(File.read("/proc/#{pid}/stat")[/\) \S (\d+)/, 1])
  end

  def fd_targets(pid, all: false)
    targets = Dir.glob("/proc/#{pid}/fd/*").map { |fd| File.readlink(fd) rescue nil }.compact
    all ? targets : targets.uniq
  end

  def deleted_files(pid)
    fd_targets(pid).grep(/ \(deleted\)\z/)
  end

  # The listening socket on the server's port (from /proc/net/tcp: state
  # 0A is LISTEN), which every worker shares by design.
  def listener_sockets
    port = format("%04X", @srv.port)
    File.readlines("/proc/net/tcp").filter_map do |line|
      fields = line.split
      "socket:[#{fields[9]}]" if fields[1].end_with?(":#{port}") && fields[3] == "0A"
    end
  end
end
