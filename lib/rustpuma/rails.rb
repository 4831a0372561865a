# frozen_string_literal: true

# Rails integration, loaded by lib/rustpuma.rb when the app requires the gem
# from its Gemfile. Rails 6.1's system tests set `Capybara.server = :puma`;
# once they are loaded, lib/rustpuma/capybara.rb makes :puma (when the puma
# gem is absent) and :rustpuma start rustpuma, so a system test needs no
# setting. (`bin/rails server` is handled by lib/rustpuma/rack_default.rb.)
if defined?(::ActiveSupport) && ::ActiveSupport.respond_to?(:on_load)
  ::ActiveSupport.on_load(:action_dispatch_system_test_case) { require "rustpuma/capybara" }
end
