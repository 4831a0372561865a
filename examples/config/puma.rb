# frozen_string_literal: true

# A config/puma.rb as Rails generates it, which rustpuma runs unchanged.
# Start it with `bundle exec rustpuma -C config/puma.rb` (see ../Procfile).

# Each request runs on a thread from a pool. Keep the maximum equal to the
# database pool size (Rails reads RAILS_MAX_THREADS for both) so a request
# never waits for a connection.
max_threads_count = ENV.fetch("RAILS_MAX_THREADS", 5)
min_threads_count = ENV.fetch("RAILS_MIN_THREADS") { max_threads_count }
threads min_threads_count, max_threads_count

# Platforms such as Heroku tell the app which port to use through PORT.
port ENV.fetch("PORT", 3000)

# Follows RAILS_ENV; a `-e` flag on the command line still overrides it.
environment ENV.fetch("RAILS_ENV", "development")

# `rails server` and `bin/dev` look here to see whether a server is running.
pidfile ENV.fetch("PIDFILE", "tmp/pids/server.pid")

# `bin/rails restart` touches tmp/restart.txt; this restarts the server.
plugin :tmp_restart

# Worker processes (cluster mode) for multi-core machines. 0 runs a single
# process, which is the right choice in development.
workers ENV.fetch("WEB_CONCURRENCY", 0)

# Only relevant with workers: load the app once in the master so workers
# share its memory (copy-on-write).
cluster do
  preload_app!

  # Connections opened in the master must not be shared across forks.
  before_worker_boot do
    ActiveRecord::Base.establish_connection if defined?(ActiveRecord::Base)
  end
end
