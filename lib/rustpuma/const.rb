# frozen_string_literal: true

require_relative "version"

module Rustpuma
  # What lowlevel_error_handler receives for a request the parser refused
  # (Puma passes its Puma::HttpParserError).
  class HttpParserError < StandardError; end

  # Names and messages shared across the Ruby glue. Log lines are part of the
  # interface (Procfile tools and tests grep them), so they live here.
  module Const
    SERVER_SOFTWARE = "rustpuma #{VERSION}"
    GATEWAY_INTERFACE = "CGI/1.2"
    RACK_VERSION = [1, 6].freeze

    # Puma's write timeout (seconds): a client that takes no response bytes
    # for this long is dropped. Puma has no setting for it either.
    WRITE_TIMEOUT = 10

    # Request#respond's second mode: the app owns the socket after the head.
    RESPOND_NORMAL = 0
    RESPOND_RAW = 1

    # Puma's low-level error bodies.
    ERROR_BODY_PRODUCTION = "An unhandled lowlevel error occurred. The application logs may have details.\n"
    DEV_ENVIRONMENTS = %w[development test].freeze

    # Puma's default `supported_http_methods`; others get 501 unless the
    # configuration says `supported_http_methods :any`.
    SUPPORTED_HTTP_METHODS = %w[HEAD GET POST PUT DELETE OPTIONS TRACE PATCH].freeze

    GRACEFUL_STOP = "- Gracefully stopping, waiting for requests to finish"
    GOODBYE = "- Goodbye!"
    # `rustpumactl info` sends it; the server logs every thread's backtrace
    # (Puma's choice: SIGINFO where it exists, SIGPWR on Linux).
    BACKTRACE_SIGNAL = if Signal.list.key?("INFO") then "SIGINFO"
                       elsif Signal.list.key?("PWR") then "SIGPWR"
                       end
  end
end
