# frozen_string_literal: true

require_relative "../runner"

module Rustpuma
  class Cluster < Runner
    # The words of the pipes between the cluster master and its workers. A
    # message is one line (one write, so lines from several workers never
    # interleave), its kind in the first character.
    #
    # Workers to the master, on the pipe every worker inherits:
    module Pipe
      BOOTED = "b"        # b<pid>:<index>  the worker is serving
      CHECK_IN = "p"      # p<pid><json>    every worker_check_interval, with stats
      TERM_RECEIVED = "e" # e<pid>          it got TERM (from the master or not)
      EXITING = "t"       # t<pid>          it is about to exit
      IDLE = "i"          # i<pid>          idle_timeout reached
      ACTIVE = "u"        # u<pid>          serving again after IDLE
      # fork_worker, from worker 0:
      FORKED = "f"        # f<pid>:<index>  it forked worker <index>
      WAKEUP = "!"        # !               one of its workers was reaped
      #                   (the master also writes it to itself to wake up)

      # The master to worker 0, on the fork pipe (fork_worker):
      #                     <index>         fork worker <index>
      REFORK_START = "r"  # r<phase>        run the before_refork hooks
      REFORK_DONE = "a"   # a<phase>        run the after_refork hooks
    end
  end
end
