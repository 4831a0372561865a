# Row "sinatra": the Sinatra fixture app (test/fixtures/sinatra_app, Debian's
# ruby-sinatra); the row requests its JSON route.
require_relative "../../test/fixtures/sinatra_app/app"

run SinatraFixture
