# frozen_string_literal: true

require "io/wait"

module Rustpuma
  # The control app's own server (`activate_control_app`): plain Ruby
  # sockets and Ruby threads, never the native core. In cluster mode it runs
  # in the master, which keeps forking workers: a native thread there could
  # hold a lock at a fork that the child then waits for, and its
  # descriptors would leak into every worker. Ruby's threads and mutexes
  # are fork-safe (the child keeps only the forking thread).
  #
  # Requests are tiny and rare (rustpumactl, pumactl, monitoring), so each
  # connection gets a short-lived thread, reads one request head, gets one
  # response and is closed.
  class ControlServer
    # Most connections served at once; more are closed unanswered.
    MAX_CONNECTIONS = 16
    # A client has this long to send its request head and read the answer.
    IO_TIMEOUT = 10
    MAX_HEAD = 16 * 1024
    REASONS = { 200 => "OK", 400 => "Bad Request", 403 => "Forbidden", 404 => "Not Found",
                500 => "Internal Server Error" }.freeze

    def self.start(launcher, log_writer)
      bind(launcher, log_writer)&.tap(&:serve)
    end

    # Only the listening socket, no thread: a cluster master binds it before
    # forking, as Puma starts its control server there, so clients that
    # connect before the workers boot wait in the backlog instead of being
    # refused; #serve answers them once the workers run.
    def self.bind(launcher, log_writer)
      url = launcher.options[:control_url]
      return nil unless url

      new(launcher, log_writer, url).tap(&:bind)
    rescue SystemCallError, ArgumentError => e
      log_writer.log "! Could not start control server on #{url}: #{e.message}"
      nil
    end

    def initialize(launcher, log_writer, url)
      @launcher = launcher
      @log_writer = log_writer
      @url = url
      @connections = {} # socket => thread
      @lock = Mutex.new
    end

    def bind
      # {}: the inherited sockets are the main binder's. Puma 8 stores
      # `control_url_umask` without using it; here it still narrows the
      # control socket, which grants stop/restart to whoever can connect.
      umask = @launcher.options[:control_url_umask]
      @binder = Binder.new(@log_writer, {}, unix_umask: umask ? Integer(umask.to_s, 8) : 0)
      @binder.parse([@url], "Starting control server")
    end

    def serve
      @app = ControlApp.new(@launcher, @launcher.options[:control_auth_token])
      @tls = @binder.listeners.to_h { |l| [l.io, l.tls && tls_context(l.tls)] }
      @stop_reader, @stop_writer = IO.pipe
      @thread = Thread.new do
        Thread.current.name = "rustpuma control"
        accept_loop
      end
    end

    def stop
      @stop_writer&.write_nonblock(".", exception: false)
      @thread&.join(5)
      @binder&.close
      [@stop_reader, @stop_writer].each { |io| io.close if io && !io.closed? }
    end

    # In a freshly forked worker: drop our copy of the listening socket and
    # of any control connection the master was answering.
    def close_in_child
      @binder&.close(unlink: false)
      @connections.each_key { |io| io.close unless io.closed? }
      @connections.clear
      [@stop_reader, @stop_writer].each { |io| io.close if io && !io.closed? }
    end

    private

    def accept_loop
      listening = @binder.listeners.map(&:io)
      loop do
        ready, = IO.select(listening + [@stop_reader])
        break if ready.include?(@stop_reader)

        ready.each do |server|
          sock = server.accept_nonblock(exception: false)
          next if sock == :wait_readable

          start_connection(server, sock)
        end
      rescue IOError, Errno::EBADF
        break # closed under us: stopping
      rescue SystemCallError => e # EMFILE and the like: not worth dying for
        @log_writer.log "! Control server: #{e.message}"
        sleep 0.1
      end
    end

    def start_connection(server, sock)
      @lock.synchronize do
        if @connections.size >= MAX_CONNECTIONS
          sock.close
          return
        end
        @connections[sock] = Thread.new do
          Thread.current.name = "rustpuma control client"
          handle(sock, @tls[server])
        ensure
          @lock.synchronize { @connections.delete(sock) }
          sock.close unless sock.closed?
        end
      end
    end

    def handle(sock, tls)
      io = tls ? tls_accept(sock, tls) : sock
      return unless io

      head = read_head(io)
      return unless head

      after_reply = []
      status, headers, body = respond_to(head, after_reply)
      write_response(io, status, headers, body)
      io.close
      after_reply.each(&:call)
    rescue StandardError # a client that went away, a failed TLS handshake
      nil
    end

    # Only the request line matters to the control app (no body, no
    # keep-alive: each answer says `Connection: close`).
    def respond_to(head, after_reply)
      method, target, version = head.lines.first.to_s.split(" ", 3)
      return [400, { "content-type" => "text/plain" }, ["Bad Request"]] unless version&.start_with?("HTTP/")

      path, query = target.split("?", 2)
      env = { "REQUEST_METHOD" => method, "PATH_INFO" => path, "QUERY_STRING" => query.to_s,
              "SCRIPT_NAME" => "", "rack.after_reply" => after_reply }
      @app.call(env)
    rescue StandardError => e
      @log_writer.log "! Control app error: #{e.class}: #{e.message}"
      [500, { "content-type" => "text/plain" }, ["Internal Server Error"]]
    end

    def read_head(io)
      head = +""
      deadline = now + IO_TIMEOUT
      until (stop = head.index("\r\n\r\n") || head.index("\n\n"))
        return nil if head.bytesize > MAX_HEAD

        chunk = io.read_nonblock(4096, exception: false)
        case chunk
        when nil then return nil
        when :wait_readable then return nil unless wait(io, :wait_readable, deadline)
        when :wait_writable then return nil unless wait(io, :wait_writable, deadline)
        else head << chunk
        end
      end
      head[0, stop]
    end

    def write_response(io, status, headers, body)
      out = +"HTTP/1.1 #{status} #{REASONS.fetch(status, 'Unknown')}\r\n"
      headers.each { |k, v| out << "#{k}: #{v}\r\n" unless k.casecmp?("connection") }
      out << "connection: close\r\n\r\n"
      body.each { |part| out << part }
      body.close if body.respond_to?(:close)
      deadline = now + IO_TIMEOUT
      until out.empty?
        n = io.write_nonblock(out, exception: false)
        case n
        when :wait_writable then return unless wait(io, :wait_writable, deadline)
        when :wait_readable then return unless wait(io, :wait_readable, deadline)
        else out = out.byteslice(n..)
        end
      end
    end

    # Waits on the socket under `io` (a TLS socket's too), never past `deadline`.
    def wait(io, how, deadline)
      left = deadline - now
      left.positive? && io.to_io.public_send(how, left)
    end

    def now
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    # ssl:// control URLs (the settings native TLS binds take: cert, key or
    # their PEM text, ca, verify_mode), served with Ruby's OpenSSL.
    def tls_context(settings)
      require "openssl"
      ctx = OpenSSL::SSL::SSLContext.new
      ctx.cert = OpenSSL::X509::Certificate.new(settings["cert_pem"] || File.read(settings["cert"]))
      ctx.key = OpenSSL::PKey.read(settings["key_pem"] || File.read(settings["key"]))
      if settings["ca"]
        ctx.ca_file = settings["ca"]
        ctx.verify_mode = OpenSSL::SSL::VERIFY_PEER
        ctx.verify_mode |= OpenSSL::SSL::VERIFY_FAIL_IF_NO_PEER_CERT if settings["verify_mode"] == "force_peer"
      end
      ctx.verify_mode = OpenSSL::SSL::VERIFY_NONE if settings["verify_mode"] == "none"
      ctx
    end

    def tls_accept(sock, ctx)
      ssl = OpenSSL::SSL::SSLSocket.new(sock, ctx)
      ssl.sync_close = true
      deadline = now + IO_TIMEOUT
      loop do
        case ssl.accept_nonblock(exception: false)
        when :wait_readable then return nil unless wait(sock, :wait_readable, deadline)
        when :wait_writable then return nil unless wait(sock, :wait_writable, deadline)
        else return ssl
        end
      end
    end
  end
end
