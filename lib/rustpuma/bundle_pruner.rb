# frozen_string_literal: true

module Rustpuma
  # `prune_bundler` (cluster mode, app not preloaded): the master re-execs
  # itself without Bundler, with only rustpuma's own load path (and the
  # gems named by `extra_runtime_dependencies`), so it never holds the app's
  # gem versions; each worker runs `bundler/setup` when it loads the app
  # (Configuration#app), which lets a phased restart pick up a new
  # Gemfile.lock. Puma's Launcher::BundlePruner does the same.
  #
  # Called by Launcher#run before anything is bound.
  class BundlePruner
    EXE = File.expand_path("../../exe/rustpuma", __dir__)

    def initialize(argv, extra_runtime_dependencies, log_writer)
      @argv = Array(argv)
      @extra = Array(extra_runtime_dependencies)
      @log_writer = log_writer
    end

    def prune
      return if ENV["PUMA_BUNDLER_PRUNED"]
      return unless defined?(::Bundler)

      dirs = [File.expand_path("..", __dir__), *extra_paths]
      @log_writer.log "* Pruning Bundler environment"
      home = ENV["GEM_HOME"]
      bundle_env = ::Bundler.original_env.select { |k, v| k.start_with?("BUNDLE_") && v }
      ::Bundler.with_unbundled_env do
        ENV["GEM_HOME"] = home if home
        ENV["PUMA_BUNDLER_PRUNED"] = "1"
        bundle_env.each { |k, v| ENV[k] = v }
        Kernel.exec(Gem.ruby, "-I", dirs.join(":"), EXE, *@argv)
      end
    end

    private

    def extra_paths
      @extra.flat_map do |name|
        spec = Gem.loaded_specs[name.to_s]
        next spec.full_require_paths if spec

        @log_writer.log "* Could not load extra dependency: #{name}"
        []
      end
    end
  end
end
