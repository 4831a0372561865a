# frozen_string_literal: true

require_relative "../plugin"

# `plugin :systemd`: Puma 8 loads it by itself under systemd; rustpuma's
# systemd notifications (lib/rustpuma/systemd.rb) are always on when
# NOTIFY_SOCKET is set. Naming it is accepted and adds nothing, and keeps
# Puma's own file (which needs Puma's internals) from being looked up.
Rustpuma::Plugin.create do
  # nothing to add: see above
end
