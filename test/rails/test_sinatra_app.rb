# frozen_string_literal: true

require "support/helper"
require "net/http"
require "json"

# A Sinatra app (Debian's ruby-sinatra) with its own config file, started
# with `rustpuma -C puma.rb` from its directory, and through `rackup -s`.
class TestSinatraApp < Minitest::Test
  APP = File.join(FIXTURES, "sinatra_app")

  def test_rustpuma_serves_get_post_and_streaming
    server = ServerProcess.new("-C", "puma.rb", dir: APP).start
    begin
      assert_includes server.output, "*  Max threads: 4"
      get = Net::HTTP.get_response(URI("http://127.0.0.1:#{server.port}/"))
      assert_equal "200", get.code
      assert_match(/\AHello from Sinatra [\d.]+ on rustpuma/, get.body)
      post = Net::HTTP.post_form(URI("http://127.0.0.1:#{server.port}/echo"), "name" => "bo")
      assert_equal "name=bo", post.body
      api = Net::HTTP.get_response(URI("http://127.0.0.1:#{server.port}/api/7"))
      assert_equal "application/json", api["content-type"]
      assert_equal 7, JSON.parse(api.body)["id"]
      stream = Net::HTTP.get_response(URI("http://127.0.0.1:#{server.port}/stream"))
      assert_equal "part 0\npart 1\npart 2\n", stream.body
    ensure
      server.stop
    end
  end

  def test_rackup_handler
    port = ServerProcess.free_port
    server = ServerProcess.new(bind: nil, dir: APP, command: [RbConfig.ruby, "-I", File.join(ServerProcess::ROOT, "lib"),
                                                               "-S", "rackup", "-s", "rustpuma", "-p", port.to_s]).start
    begin
      assert_match(/\AHello from Sinatra/, Net::HTTP.get(URI("http://127.0.0.1:#{port}/")))
    ensure
      server.stop
    end
  end
end
