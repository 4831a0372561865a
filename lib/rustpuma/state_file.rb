# frozen_string_literal: true

module Rustpuma
  # The state file (`state_path` / `-S`): what rustpumactl (and pumactl)
  # needs to reach a running server. YAML, in Puma's fields and layout:
  #
  #   ---
  #   pid: 12345
  #   control_url: tcp://127.0.0.1:9293
  #   control_auth_token: secret
  #   running_from: "/srv/app"
  class StateFile
    FIELDS = %w[pid control_url control_auth_token running_from].freeze

    # Written by the runner once the server is up.
    def self.write(launcher)
      options = launcher.options
      path = options[:state_path]
      return unless path

      sf = new
      sf.pid = Process.pid
      sf.control_url = options[:control_url]
      sf.control_auth_token = options[:control_auth_token]
      sf.running_from = File.expand_path(".")
      sf.save(path, options[:state_permission])
    rescue SystemCallError => e
      launcher.log_writer.log "! Could not write state file #{path}: #{e.message}"
    end

    def initialize
      @values = {}
    end

    FIELDS.each do |field|
      define_method(field) { @values[field] }
      define_method("#{field}=") { |v| @values[field] = v }
    end

    def save(path, permission = nil)
      text = +"---\n"
      FIELDS.each do |k|
        v = @values[k]
        case v
        when Numeric then text << "#{k}: #{v}\n"
        when String
          next if v.strip.empty?

          text << (k == "running_from" || v.include?(" ") ? "#{k}: #{v.inspect}\n" : "#{k}: #{v}\n")
        end
      end
      File.write(path, text, mode: "wb:UTF-8")
      File.chmod(permission, path) if permission
    end

    # A tolerant line reader (no YAML dependency), as Puma's.
    def load(path)
      File.read(path).each_line do |line|
        next if line.start_with?("#")

        key, value = line.split(":", 2)
        next unless value && FIELDS.include?(key)

        value = value.strip
        @values[key] =
          case value
          when "" then nil
          when /\A\d+\z/ then value.to_i
          else value.delete_prefix('"').delete_suffix('"')
          end
      end
      self
    end
  end
end
