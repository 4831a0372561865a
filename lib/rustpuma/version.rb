# frozen_string_literal: true

module Rustpuma
  VERSION = "0.1.0"
  # The Puma release whose behaviour and configuration we follow.
  PUMA_COMPAT_VERSION = "8.0"
end
