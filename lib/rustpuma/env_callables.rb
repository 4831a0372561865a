# frozen_string_literal: true

require "socket"

module Rustpuma
  # env["rack.hijack"] of one request (Rack's hijack: the app takes the
  # socket). A small object rather than a lambda: a lambda would capture
  # Handler#handle's locals, and Ruby then moves that whole frame to the
  # heap on every request, hijacked or not.
  class Hijack
    HIJACK_IO = "rack.hijack_io"

    # Truthy once the app has the socket: Handler sends nothing after a full
    # hijack. (An attribute, read without a native call.)
    attr_reader :taken

    # (@io and @taken start unset: nil. Fewer writes per request.)
    def initialize(req, env)
      @req = req
      @env = env
    end

    # Sets env["rack.hijack_io"] and returns it; a second call returns the
    # same socket (as Puma's).
    def call
      return @io if @io

      fd = @req.hijack
      @taken = true
      @io = ForkHook.handed_out(Socket.for_fd(fd).tap { |io| io.autoclose = true })
      @env[HIJACK_IO] = @io
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
