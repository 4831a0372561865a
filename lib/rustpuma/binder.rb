# frozen_string_literal: true

require "socket"
require "uri"

module Rustpuma
  # Turns bind URIs (`tcp://host:port`, `unix://path`) into listening
  # sockets, as Puma's Binder. Sockets are opened by Ruby, before any fork
  # and before the native server exists, so that they can be handed to
  # workers or a re-exec'd master; the native server gets duplicates.
  class Binder
    # Puma's default listen backlog.
    DEFAULT_BACKLOG = 1024
    # Sockets handed over by a restarting master: PUMA_INHERIT_<n>=<fd>:<url>
    # (Puma's variable, so tools that know it keep working).
    INHERIT_PREFIX = "PUMA_INHERIT_"

    Listener = Struct.new(:io, :kind, :uri, :path, :bind, :tls)
    # The ssl:// query parameters the native TLS layer reads.
    TLS_PARAMS = %w[cert key ca verify_mode].freeze

    attr_reader :listeners

    # `store`: PEM strings that `ssl_bind cert_pem:/key_pem:` put aside
    # (referenced from the bind URI as `store:<index>`).
    # `bind_to_activated`: Puma's `bind_to_activated_sockets` (true: serve
    # every systemd-activated socket as well; "only": just those).
    # `unix_umask`: the umask unix sockets get when their bind has no
    # `umask=` (Puma's 0: anyone can connect).
    def initialize(log_writer, env = ENV, store: [], bind_to_activated: nil, unix_umask: 0)
      @log_writer = log_writer
      @unix_umask = unix_umask
      @listeners = []
      @store = store || []
      @bind_to_activated = bind_to_activated
      @inherited = take_inherited(env)
      @activated = take_activated(env)
    end

    # `log_msg`: how each new listener is announced ("Listening on ...";
    # the control server says "Starting control server on ...", as Puma).
    def parse(uris, log_msg = "Listening")
      @log_msg = log_msg
      if @bind_to_activated
        @activated.each_key { |key| bind(key) }
        uris = [] if @bind_to_activated.to_s == "only"
      end
      uris.each { |uri| bind(uri) unless @listeners.any? { |l| l.bind == uri } }
      # Inherited or activated sockets the configuration does not bind.
      (@inherited.values + @activated.values).each { |fd| IO.for_fd(fd).close rescue nil }
      @inherited.clear
      @activated.clear
      self
    end

    # Environment and exec redirections that pass every listener to a new
    # process image (hot restart).
    def inherit_env_and_redirects
      env = {}
      redirects = {}
      @listeners.each_with_index do |l, i|
        l.io.close_on_exec = false
        env["#{INHERIT_PREFIX}#{i}"] = "#{l.io.fileno}:#{l.bind}"
        redirects[l.io.fileno] = l.io.fileno
      end
      [env, redirects]
    end

    # `[[fd, "tcp" | "unix" | "ssl", tls settings or nil], ...]` for
    # Native::Server.new.
    def native_listeners
      @listeners.map { |l| [l.io.fileno, l.kind, l.tls] }
    end

    # The URLs clients can use, for the boot banner.
    def urls
      @listeners.map(&:uri)
    end

    # `unlink: false` on a restart: the next process keeps the unix sockets.
    def close(unlink: true)
      @listeners.each do |l|
        l.io.close unless l.io.closed?
        File.unlink(l.path) if unlink && l.path && File.socket?(l.path)
      rescue SystemCallError, IOError
        nil
      end
      @listeners.clear
    end

    private

    def bind(str)
      if (fd = @inherited.delete(str))
        return adopt(fd, str, "Inherited")
      end
      if (fd = @activated.delete(activation_key(str)))
        return adopt(fd, str, "Activated")
      end

      uri = URI.parse(str)
      params = uri.query ? URI.decode_www_form(uri.query).to_h : {}
      first = @listeners.size
      case uri.scheme
      when "tcp" then bind_tcp(uri.host, uri.port, params)
      when "ssl" then bind_ssl(uri, params)
      when "unix" then bind_unix(unix_path(str), params)
      else
        raise ArgumentError, "rustpuma does not support #{uri.scheme}:// binds yet (#{str})"
      end
      # Keyed by the configured string, so a restart finds it again even
      # for port 0. `localhost` made several listeners, one per address.
      @listeners[first..].each do |l|
        l.bind = str
        @log_writer.log "* #{@log_msg} on #{listening_url(l, str)}"
      end
    end

    # Puma's wording: the address bound (ssl:// with the bind's query),
    # or the unix bind as configured.
    def listening_url(listener, str)
      case listener.kind
      when "unix" then str
      when "ssl"
        query = URI.parse(str).query
        query ? "#{listener.uri}?#{query}" : listener.uri
      else listener.uri
      end
    end

    # `localhost` is every loopback address the interfaces carry (127.0.0.1,
    # and ::1 where IPv6 is configured), as Puma binds it: /etc/hosts may
    # list only one of them, while clients resolve `localhost` to either.
    def bind_tcp(host, port, params)
      host = host.delete_prefix("[").delete_suffix("]")
      if host == "localhost"
        loopback_addresses.each { |addr| bind_tcp(addr, port, params) }
        return
      end

      server = TCPServer.new(host, port)
      server.setsockopt(Socket::SOL_SOCKET, Socket::SO_REUSEADDR, true)
      server.listen(Integer(params.fetch("backlog", DEFAULT_BACKLOG)))
      addr = server.local_address
      shown = addr.ipv6? ? "[#{addr.ip_address}]" : addr.ip_address
      @listeners << Listener.new(server, "tcp", "http://#{shown}:#{addr.ip_port}", nil)
    end

    def loopback_addresses
      addrs = Socket.ip_address_list.select { |a| a.ipv4_loopback? || a.ipv6_loopback? }.map(&:ip_address).uniq
      addrs.empty? ? ["127.0.0.1"] : addrs
    end

    def bind_ssl(uri, params)
      first = @listeners.size
      bind_tcp(uri.host, uri.port, params)
      @listeners[first..].each { |l| make_tls(l, params) }
    end

    # Turns a TCP listener into an ssl:// one with its TLS settings.
    def make_tls(listener, params)
      tls = {}
      TLS_PARAMS.each do |name|
        value = params[name]
        next if value.nil? || value.empty?

        if %w[cert key].include?(name) && value.start_with?("store:")
          tls["#{name}_pem"] = @store.fetch(Integer(value.delete_prefix("store:")))
        else
          tls[name] = value
        end
      end
      listener.kind = "ssl"
      listener.tls = tls
      listener.uri = listener.uri.sub("http://", "ssl://")
    end

    # As Puma: the socket is created with umask 0 unless `umask` says, so
    # that a proxy running as another user (nginx) can connect; `mode`
    # chmods it afterwards. A stale socket file (no server behind it) is
    # replaced; a live one is an error. Only a file this process created
    # is removed at shutdown: one that existed before boot is left alone.
    def bind_unix(path, params)
      abstract = path.start_with?("\0")
      created = !abstract && !File.exist?(path)
      if !abstract && File.exist?(path)
        raise ArgumentError, "There is already a server bound to: #{path}" if live_unix_socket?(path)

        File.unlink(path)
      end
      old_umask = File.umask(params["umask"] ? Integer(params["umask"]) : @unix_umask)
      begin
        server = UNIXServer.new(path)
      ensure
        File.umask(old_umask)
      end
      File.chmod(Integer("0#{params['mode']}"), path) if params["mode"] && !abstract
      server.listen(Integer(params.fetch("backlog", DEFAULT_BACKLOG)))
      @listeners << Listener.new(server, "unix", "unix://#{path}", created ? path : nil)
    end

    def take_inherited(env)
      inherited = {}
      env.keys.grep(/\A#{INHERIT_PREFIX}\d+\z/o).each do |key|
        fd, url = env.delete(key).split(":", 2)
        inherited[url] = fd.to_i
      end
      inherited
    end

    # systemd socket activation: LISTEN_FDS sockets from fd 3 on, meant for
    # this process (LISTEN_PID), keyed like a bind URI (`tcp://host:port`,
    # `unix://path`) so that a matching bind uses them.
    def take_activated(env)
      count = env["LISTEN_FDS"].to_i
      return {} unless count.positive? && env["LISTEN_PID"].to_i == Process.pid

      env.delete("LISTEN_FDS")
      env.delete("LISTEN_PID")
      (3...(3 + count)).to_h do |fd|
        addr = Socket.for_fd(fd).tap { |s| s.autoclose = false }.local_address
        key = if addr.unix?
                "unix://#{addr.unix_path}"
              else
                host = addr.ipv6? ? "[#{addr.ip_address}]" : addr.ip_address
                "tcp://#{host}:#{addr.ip_port}"
              end
        [key, fd]
      end
    end

    def activation_key(str)
      return str.sub(/\?.*\z/, "") if str.start_with?("unix://")

      uri = URI.parse(str)
      "tcp://#{uri.host}:#{uri.port}"
    rescue URI::InvalidURIError
      str
    end

    # A socket an earlier process bound (the previous image on a hot
    # restart, or systemd); it is already listening, so connections queued
    # meanwhile are served, none refused.
    def adopt(fd, str, how)
      if str.start_with?("unix://")
        io = UNIXServer.for_fd(fd)
        path = unix_path(str)
        @listeners << Listener.new(io, "unix", "unix://#{path}", path, str)
      else
        io = TCPServer.for_fd(fd)
        addr = io.local_address
        shown = addr.ipv6? ? "[#{addr.ip_address}]" : addr.ip_address
        @listeners << Listener.new(io, "tcp", "http://#{shown}:#{addr.ip_port}", nil, str)
        make_tls(@listeners.last, URI.decode_www_form(URI.parse(str).query.to_s).to_h) if str.start_with?("ssl://")
      end
      io.close_on_exec = true
      @log_writer.log "* #{how} #{str}"
    end

    def live_unix_socket?(path)
      UNIXSocket.new(path).close
      true
    rescue SystemCallError
      false
    end

    # `unix://relative/path` keeps the host part as the start of the path.
    def unix_path(str)
      path = str.sub(%r{\Aunix://}, "").sub(/\?.*\z/, "")
      path.start_with?("@") ? "\0#{path[1..]}" : path
    end
  end
end
