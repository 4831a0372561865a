# frozen_string_literal: true

module Rustpuma
  # `rustpumactl info` (Puma's backtrace signal, SIGPWR on Linux): the
  # server logs each thread's name and backtrace, as Puma does, to see what
  # a stuck server is doing without a control app. Trapped by the Launcher;
  # cluster workers inherit the handler through fork.
  module ThreadStatus
    def self.trap(log_writer)
      return unless (signal = Const::BACKTRACE_SIGNAL)

      Signal.trap(signal) { log(log_writer) }
    rescue ArgumentError
      log_writer.log "*** SIGINFO/SIGPWR not implemented, signal based backtrace unavailable!"
    end

    def self.log(log_writer)
      Thread.list.each do |thread|
        name = "Thread: TID-#{thread.object_id.to_s(36)}"
        name += " #{thread['label']}" if thread["label"]
        name += " #{thread.name}" if thread.name
        log_writer.log name
        log_writer.log((thread.backtrace || ["<no backtrace available>"]).map { |line| "  #{line}" })
      end
    end
  end
end
