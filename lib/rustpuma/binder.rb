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

    Listener = Struct.new(:io, :kind, :uri, :path)

    attr_reader :listeners

    def initialize(log_writer)
      @log_writer = log_writer
      @listeners = []
    end

    def parse(uris)
      uris.each { |uri| bind(uri) }
      self
    end

    # `[[fd, "tcp" | "unix"], ...]` for Native::Server.new.
    def native_listeners
      @listeners.map { |l| [l.io.fileno, l.kind] }
    end

    # The URLs clients can use, for the boot banner.
    def urls
      @listeners.map(&:uri)
    end

    def close
      @listeners.each do |l|
        l.io.close unless l.io.closed?
        File.unlink(l.path) if l.path && File.socket?(l.path)
      rescue SystemCallError, IOError
        nil
      end
      @listeners.clear
    end

    private

    def bind(str)
      uri = URI.parse(str)
      params = uri.query ? URI.decode_www_form(uri.query).to_h : {}
      case uri.scheme
      when "tcp" then bind_tcp(uri.host, uri.port, params)
      when "unix" then bind_unix(unix_path(str), params)
      else
        raise ArgumentError, "rustpuma does not support #{uri.scheme}:// binds yet (#{str})"
      end
    end

    def bind_tcp(host, port, params)
      host = host.delete_prefix("[").delete_suffix("]")
      server = TCPServer.new(host, port)
      server.setsockopt(Socket::SOL_SOCKET, Socket::SO_REUSEADDR, true)
      server.listen(Integer(params.fetch("backlog", DEFAULT_BACKLOG)))
      addr = server.local_address
      shown = addr.ipv6? ? "[#{addr.ip_address}]" : addr.ip_address
      @listeners << Listener.new(server, "tcp", "http://#{shown}:#{addr.ip_port}", nil)
    end

    # A stale socket file (no server behind it) is replaced; a live one is
    # an error, as in Puma.
    def bind_unix(path, params)
      if File.exist?(path)
        raise ArgumentError, "There is already a server bound to: #{path}" if live_unix_socket?(path)

        File.unlink(path)
      end
      old_umask = File.umask(Integer(params["umask"], 8)) if params["umask"]
      server = UNIXServer.new(path)
      File.umask(old_umask) if old_umask
      File.chmod(Integer(params["mode"], 8), path) if params["mode"]
      server.listen(Integer(params.fetch("backlog", DEFAULT_BACKLOG)))
      @listeners << Listener.new(server, "unix", "unix://#{path}", path)
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
