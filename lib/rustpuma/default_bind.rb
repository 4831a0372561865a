# frozen_string_literal: true

require "socket"
require "uri"

module Rustpuma
  # Where a server listens when nothing says so, as Puma 8: every address
  # of both families (`[::]`, which Linux also opens to IPv4 clients) when
  # the machine has a routable IPv6 address, else `0.0.0.0`; and any
  # `[::]` bind is turned into `0.0.0.0` on machines without IPv6, so the
  # same config file boots everywhere.
  module DefaultBind
    IPV6_ANY = "::"
    IPV4_ANY = "0.0.0.0"

    module_function

    # Only a non-loopback IPv6 address counts: `::1` alone is present in
    # containers whose network has no IPv6 at all.
    def ipv6_available?
      Socket.getifaddrs.any? do |ifaddr|
        addr = ifaddr.addr
        addr&.ipv6? && !addr.ipv6_loopback?
      end
    rescue StandardError
      false
    end

    def host
      ipv6_available? ? IPV6_ANY : IPV4_ANY
    end

    def url(port)
      URI::Generic.build(scheme: "tcp", host: host, port: Integer(port)).to_s
    end

    # `binds` with `[::]` turned into `0.0.0.0` when IPv6 is unavailable;
    # `warn` is called once if an IPv6 bind was asked for there.
    def rewrite(binds, warn)
      return binds if ipv6_available?

      asked_ipv6 = false
      rewritten = Array(binds).map do |bind|
        uri = URI.parse(bind)
        host = uri.host.to_s.delete_prefix("[").delete_suffix("]")
        next bind unless %w[tcp ssl].include?(uri.scheme) && host.include?(":")

        asked_ipv6 = true
        next bind unless host == IPV6_ANY

        uri.host = IPV4_ANY
        uri.to_s
      rescue URI::InvalidURIError
        bind
      end
      warn.call("WARNING: an IPv6 bind was requested, but this machine has no non-loopback IPv6 address") if asked_ipv6
      rewritten
    end
  end
end
