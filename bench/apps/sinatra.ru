# Row "sinatra": a classic Sinatra route returning JSON (Debian's ruby-sinatra).
require "sinatra/base"
require "json"

class BenchSinatra < Sinatra::Base
  set :environment, :production
  set :logging, false

  get "/" do
    content_type :json
    { id: 1, name: "widget", tags: %w[a b c] }.to_json
  end
end

run BenchSinatra
