# Rows "rails-api", "rails-page" and "rails-w2": the Rails 6.1 fixture app
# (test/fixtures/rails_app: its controllers, views, routes and
# config/environments/production.rb) served in production.
#
# Its own Application class rather than the fixture's config/environment.rb:
# that one goes through Bundler and a Gemfile with `gem "rustpuma"`, which
# would load rustpuma into Puma's and Iodine's processes too. Debian's
# ruby-rails provides the gems here.
require "rails"
require "action_controller/railtie"

class BenchRails < Rails::Application
  config.root = File.expand_path("../../test/fixtures/rails_app", __dir__)
  config.load_defaults 6.1
  config.secret_key_base = "rustpuma-bench-not-a-secret"
  config.logger = ActiveSupport::Logger.new($stdout)
  config.hosts.clear
end

BenchRails.initialize!

run BenchRails
Rails.application.load_server
