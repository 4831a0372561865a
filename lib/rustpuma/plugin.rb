# frozen_string_literal: true

require_relative "events"

module Rustpuma
  class UnknownPlugin < RuntimeError; end

  # Puma's plugin API, so plugins written for Puma load and run:
  #
  #   # lib/puma/plugin/my_plugin.rb (in a gem, or anywhere on $LOAD_PATH)
  #   Puma::Plugin.create do
  #     def config(dsl) … end           # optional: after the config file
  #     def start(launcher)               # before the server boots
  #       launcher.events.after_booted { … }
  #       in_background { loop { … } }    # a thread, once the server is up
  #     end
  #   end
  #
  # `plugin :my_plugin` in config/puma.rb (or --plugin) loads it. Our own
  # plugins live in lib/rustpuma/plugin/; any other is looked up as
  # puma/plugin/<name>.rb on the load path and evaluated where `Puma` means
  # PluginSandbox::Puma, so the app never sees a ::Puma constant.
  class Plugin
    # The plugin's name is its file's: …/puma/plugin/<name>.rb.
    NAME_FROM_PATH = %r{puma/plugin/([^/]+)\.rb\z}

    def self.create(&block)
      path = caller_locations(1, 1).first.path
      name = path[NAME_FROM_PATH, 1] or raise UnknownPlugin, "#{path}: a plugin file must be named puma/plugin/<name>.rb"
      cls = Class.new(self)
      cls.class_eval(&block)
      Plugins.register(name, cls)
    end

    def in_background(&block)
      Plugins.add_background(block)
    end
  end

  # Plugin classes by name (Puma::Plugins), and the background blocks that
  # plugins' #start asked for.
  class PluginRegistry
    def initialize
      @plugins = {}
      @background = []
    end

    def register(name, cls)
      @plugins[name.to_s] = cls
    end

    def find(name)
      name = name.to_s
      @plugins[name] || load_plugin_file(name)
      @plugins[name] or raise UnknownPlugin, "file failed to register a plugin: #{name}"
    end

    def add_background(block)
      @background << block
    end

    # Started once per process, after every plugin's #start.
    def fire_background
      blocks = @background
      @background = []
      blocks.each_with_index do |block, i|
        Thread.new do
          Thread.current.name = "plgn bg #{i}"
          block.call
        end
      end
    end

    private

    def load_plugin_file(name)
      own = File.join(__dir__, "plugin", "#{name}.rb")
      return require(own) if File.file?(own)

      path = $LOAD_PATH.resolve_feature_path("puma/plugin/#{name}")&.last ||
             Gem.find_files("puma/plugin/#{name}.rb").first
      raise UnknownPlugin, "Unable to find plugin: #{name}" unless path

      PluginSandbox.load(path)
    rescue LoadError
      raise UnknownPlugin, "Unable to find plugin: #{name}"
    end
  end

  Plugins = PluginRegistry.new

  # Instances of the plugins one Configuration named (Puma's PluginLoader).
  class PluginLoader
    def initialize
      @instances = {}
      @offered = {}
    end

    # The plugin named +name+, created on first use.
    def create(name)
      @instances[name.to_s] ||= Plugins.find(name).new
    end

    # The plugin, the first time it is asked for here (for #config); nil after.
    def offer(name)
      return nil if @offered[name.to_s]

      @offered[name.to_s] = true
      create(name)
    end

    def fire_starts(launcher)
      @instances.each_value { |plugin| plugin.start(launcher) if plugin.respond_to?(:start) }
    end
  end
end

require_relative "plugin_sandbox"
