# frozen_string_literal: true

module Rustpuma
  # `rack.input` for requests without a body, as Puma's NullIO: an empty,
  # read-only stream with no state, so one instance serves every request.
  class NullIO
    def gets(*) = nil
    def string = ""
    def each(&) = nil
    def rewind = 0
    def size = 0
    def eof? = true
    def sync = true
    def close = nil
    def closed? = false
    def binmode = self
    def binmode? = true
    def external_encoding = Encoding::ASCII_8BIT
    def set_encoding(_enc) = self
    def puts(*) = nil
    def write(*) = 0
    def flush = self

    def sync=(value)
      value
    end

    # `read(length)` with a length returns nil at end of stream; a plain
    # `read` returns "" (IO's contract, which Rack::Lint checks).
    def read(length = nil, buffer = nil)
      buffer&.clear
      length.nil? || length.zero? ? (buffer || +"") : nil
    end

    INSTANCE = new.freeze
  end
end
