# Rows "rails-api", "rails-page" and "rails-w2": a Rails 6.1 app in
# production settings (classes cached, eager loading, no request log), so
# the figures show what a real framework request costs on each server.
# Debian's ruby-rails provides the gems; no Bundler.
require "rails"
require "action_controller/railtie"
require "action_view/railtie"

class BenchRails < Rails::Application
  config.root = File.join(__dir__, "rails")
  config.load_defaults 6.1
  config.eager_load = true
  config.cache_classes = true
  config.consider_all_requests_local = false
  config.public_file_server.enabled = false
  config.secret_key_base = "rustpuma-bench-not-a-secret"
  config.logger = ActiveSupport::Logger.new(File::NULL)
  config.log_level = :fatal
  config.hosts.clear
end

# An API endpoint: a small JSON document, as an API-only controller renders it.
class ApiController < ActionController::API
  def show
    render json: { id: params[:id].to_i, name: "widget", tags: %w[a b c], price: 12.5, in_stock: true }
  end
end

# A page: an ERB template with a loop, rendered inside a layout.
class PagesController < ActionController::Base
  layout "application"

  def index
    @items = Array.new(20) { |i| { name: "Item #{i}", price: i * 1.5 } }
  end
end

BenchRails.initialize!
BenchRails.routes.draw do
  root to: "api#show"
  get "/api/:id" => "api#show"
  get "/page" => "pages#index"
end

run BenchRails
