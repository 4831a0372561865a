# frozen_string_literal: true

require "socket"

module Rustpuma
  module Native
    # env["rack.hijack"] (Rack's hijack: the app takes the socket) is the
    # native request itself: no object per request for a call most requests
    # never make. (A lambda would also have captured Handler#handle's locals,
    # which makes Ruby move that whole frame to the heap on every request.)
    class Request
      HIJACK_IO = "rack.hijack_io"

      # Sets env["rack.hijack_io"] and returns it; a second call returns the
      # same socket (as Puma's).
      def call
        env = hijack_env
        env[HIJACK_IO] ||= ForkHook.handed_out(Socket.for_fd(hijack).tap { |io| io.autoclose = true })
      end
    end
  end

  # env["rack.early_hints"] of one request: sends a 103 with the headers.
  class EarlyHints
    def initialize(req)
      @req = req
    end

    def call(headers)
      @req.early_hints(headers.to_h)
    end
  end
end
