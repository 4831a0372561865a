# frozen_string_literal: true

require "stringio"

module Rustpuma
  # Serves one request on a pool thread: builds the env around what the
  # native request provides, calls the app, sends the response the way Puma
  # does (framing, HEAD, hijack, files, streaming), and always closes the
  # body and runs the after-reply callbacks. Puma keeps this in request.rb.
  #
  # Called by ThreadPool for every request; the socket work happens in
  # Native::Request with the GVL released.
  class Handler
    # env key of this request's phases, set once the response is handed
    # over, for rack.after_reply / rack.response_finished callbacks (a Hash
    # of seconds: queue, gvl_wait, app, write; see docs/observability.md).
    TIMINGS = "rustpuma.timings"
    RACK_INPUT = "rack.input"
    RACK_HIJACK = "rack.hijack"
    AFTER_REPLY = "rack.after_reply"
    RESPONSE_FINISHED = "rack.response_finished"
    MARK_IO = "puma.mark_as_io_bound"
    EARLY_HINTS = "rack.early_hints"
    # What every request's env gets that the server's constant part lacks:
    # what Handler sets, and the CGI entries Native::Request#fill_env sets
    # for every request it has not refused. An env template has a slot
    # (nil) for each, so that filling a copy only replaces values: a Hash
    # that grows past its table's size rehashes every entry (a third of the
    # cost of building an env, counted in instructions).
    SLOTS = [RACK_HIJACK, AFTER_REPLY, RESPONSE_FINISHED,
             "REQUEST_METHOD", "REQUEST_URI", "REQUEST_PATH", "PATH_INFO", "QUERY_STRING",
             "SERVER_PROTOCOL", "HTTP_VERSION", "REMOTE_ADDR", "rack.url_scheme",
             "SERVER_NAME", "SERVER_PORT"].to_h { |key| [key, nil] }.freeze

    def initialize(app, options, log_writer)
      @app = app
      @log_writer = log_writer
      @early_hints = options[:early_hints]
      @log_requests = options[:log_requests]
      # `log_requests :phases`: the log line ends with the request's phases.
      @log_phases = @log_requests == :phases
      @lowlevel_error_handler = options[:lowlevel_error_handler]
      @dev_errors = Const::DEV_ENVIRONMENTS.include?(options[:environment].to_s)
      @base_env = base_env(options)
      # set_remote_address: a fixed value or a header instead of the peer.
      @remote_addr_value = options[:remote_address_value] if options[:remote_address] == :value
      @remote_addr_header = options[:remote_address_header] if options[:remote_address] == :header
      @url_scheme = options[:rack_url_scheme]&.to_s
      @adjust_env = @remote_addr_value || @remote_addr_header || @url_scheme
      @template = env_template
    end

    # The env every request of one pool thread starts from (ThreadPool makes
    # one per thread): the server's constant entries, rack.input for a
    # request without a body, the thread's puma.mark_as_io_bound (+mark_io+)
    # and the SLOTS. Frozen: each request gets a copy.
    def env_template(mark_io = nil)
      env = @base_env.merge(SLOTS)
      env[RACK_INPUT] = NullIO::INSTANCE
      env[MARK_IO] = mark_io if mark_io
      env[EARLY_HINTS] = nil if @early_hints
      env.freeze
    end

    # +template+: this thread's #env_template.
    #
    # This runs for every request: it makes as few native calls, method
    # calls, allocations and env insertions as the features allow
    # (docs/performance.md).
    def handle(req, template = @template)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC) if @log_requests
      env = template.dup
      # nil (no body), a String, a temp file's descriptor, or false: refused.
      input = req.fill_env(env)
      return handle_rejection(req, env, *req.rejection) if input == false

      adjust_env(env) if @adjust_env
      env[RACK_INPUT] = input = rack_input(input) if input
      env[RACK_HIJACK] = req
      env[AFTER_REPLY] = after_reply = []
      env[RESPONSE_FINISHED] = response_finished = []
      env[EARLY_HINTS] = EarlyHints.new(req) if @early_hints

      status = headers = body = error = sending = nil
      begin
        status, headers, body = @app.call(env)
        # A full hijack: the app owns the socket and writes what it likes.
        return if req.hijacked?

        sending = true
        send_response(req, env, response_status(status), headers, body)
      rescue Exception => e # rubocop:disable Lint/RescueException -- like Puma: any app failure becomes a 500
        error = e
        raise if e.is_a?(SystemExit) || e.is_a?(NoMemoryError)

        @log_writer.unknown_error(e, "Rack app (\"#{req.request_line}\" - (#{req.remote_addr}))")
        # Failing while sending (a body raising, a bad response): whatever
        # went out cannot be trusted, so the connection closes after it, as
        # Puma closes after an error in its response writing.
        req.abort if sending
        status, headers = send_error(req, env, e) unless req.head_sent? || req.hijacked?
      ensure
        close_body(body) if body.respond_to?(:close)
        input&.close
        if after_reply.empty? && response_finished.empty?
          # The common case: the reactor writes the response, this thread
          # moves on.
          req.finish
          finished(req, env, status, started) if @log_requests
        else
          reply_callbacks(req, env, [status, headers, error, started], after_reply, response_finished)
        end
      end
    end

    private

    # after_reply promises the response is on the wire, so this thread
    # writes it before the callbacks run.
    def reply_callbacks(req, env, outcome, after_reply, response_finished)
      status, headers, error, started = outcome
      req.flush unless after_reply.empty?
      req.finish
      env[TIMINGS] = req.timings
      log_request(env, status, started) if @log_requests
      after_reply.each { |callback| run_callback(callback) }
      response_finished.reverse_each { |callback| run_callback(callback, env, status, headers, error) }
    end

    # The request's log line; the phases only when the log shows them (a
    # Hash per request costs).
    def finished(req, env, status, started)
      env[TIMINGS] = req.timings if @log_phases
      log_request(env, status, started)
    end

    def base_env(options)
      {
        "rack.version" => defined?(::Rack::VERSION) ? ::Rack::VERSION : Const::RACK_VERSION,
        "rack.errors" => $stderr,
        "rack.multithread" => options.fetch(:max_threads, 5).to_i > 1,
        "rack.multiprocess" => options.fetch(:workers, 0).to_i.positive?,
        "rack.run_once" => false,
        "rack.hijack?" => true,
        "SCRIPT_NAME" => ENV.fetch("SCRIPT_NAME", ""),
        "SERVER_SOFTWARE" => Const::SERVER_SOFTWARE,
        "GATEWAY_INTERFACE" => Const::GATEWAY_INTERFACE,
      }.freeze
    end

    def adjust_env(env)
      if @remote_addr_value
        env["REMOTE_ADDR"] = @remote_addr_value
      elsif @remote_addr_header && (forwarded = env[@remote_addr_header])
        env["REMOTE_ADDR"] = forwarded
      end
      env["rack.url_scheme"] = @url_scheme if @url_scheme
    end

    # Small bodies arrive as a String, large ones as the descriptor of an
    # unlinked temp file (no body: the shared NullIO, no allocation).
    def rack_input(body)
      if body.is_a?(Integer)
        ForkHook.handed_out(File.for_fd(body, "rb"))
      else
        StringIO.new(body)
      end
    end

    # The status as an Integer of three digits (Integers, and Strings of
    # digits as Puma accepts them); anything else is an app error.
    def response_status(status)
      # Comparisons, not between?: they are not method calls.
      return status if status.is_a?(Integer) && status >= 100 && status <= 999

      code = status.is_a?(String) ? Integer(status, 10, exception: false) : status
      return code if code.is_a?(Integer) && code >= 100 && code <= 999

      raise TypeError, "invalid response status #{status.inspect} (an Integer from 100 to 999 is required)"
    end

    # Body parts must be Strings: the native side raises TypeError for
    # anything else, before the head for Arrays and mid-stream otherwise.
    def send_response(req, env, status, headers, body)
      headers = plain_hash(headers)
      if (hijack = headers["rack.hijack"])
        # Partial hijack: we send the head, the app writes the rest.
        req.respond(status, headers, nil, Const::RESPOND_RAW)
        hijack.call(env[RACK_HIJACK].call)
      elsif body.instance_of?(Array)
        # The common case, without asking: an Array is its own to_ary.
        req.respond(status, headers, body, Const::RESPOND_NORMAL)
      elsif body.respond_to?(:to_ary) && (parts = body.to_ary).is_a?(Array)
        req.respond(status, headers, parts, Const::RESPOND_NORMAL)
      elsif body.respond_to?(:to_path) && File.file?(path = body.to_path)
        req.respond_file(status, headers, path)
      elsif body.respond_to?(:each)
        return unless req.respond(status, headers, nil, Const::RESPOND_NORMAL)

        # Each chunk leaves as soon as the app yields it (streaming bodies,
        # ActionController::Live); a gone client, or a declared length used
        # up, stops the iteration.
        body.each { |chunk| break unless req.write_body(chunk) }
        req.finish_body
      elsif body.respond_to?(:call)
        # Rack 3 streaming body: it gets the socket after the head.
        req.respond(status, headers, nil, Const::RESPOND_RAW)
        body.call(env[RACK_HIJACK].call)
      else
        raise TypeError, "the response body (#{body.inspect[0, 60]}) is not a Rack body: " \
                         "it responds to none of each, to_ary, to_path and call"
      end
    end

    # A request the reactor refused (400, 413, 414, 431, 501…), answered by
    # the configured lowlevel_error_handler with the status Puma would pass.
    def handle_rejection(req, env, status, reason)
      # Only what is known about the client: no empty slots of the template.
      env.compact!
      send_error(req, env, HttpParserError.new(reason), status)
    ensure
      req.finish
    end

    def send_error(req, env, error, fallback_status = 500)
      status, headers, body = lowlevel_error(error, env, fallback_status)
      send_response(req, env, response_status(status), headers, body)
      [status, headers]
    rescue StandardError => e
      @log_writer.unknown_error(e, "lowlevel_error_handler")
      req.abort
      req.respond(fallback_status, {}, [Const::ERROR_BODY_PRODUCTION], Const::RESPOND_NORMAL) unless req.head_sent?
      [fallback_status, {}]
    end

    def lowlevel_error(error, env, status = 500)
      if (handler = @lowlevel_error_handler)
        case handler.arity
        when 1 then return handler.call(error)
        when 2 then return handler.call(error, env)
        else return handler.call(error, env, status)
        end
      end
      body = if @dev_errors
               "rustpuma caught this error: #{error.message} (#{error.class})\n#{Array(error.backtrace).join("\n")}"
             else
               Const::ERROR_BODY_PRODUCTION
             end
      [status, { "content-type" => "text/plain" }, [body]]
    end

    # Rack 2 allows any object that responds to `each` as headers. A Hash is
    # used as it is (never modified here).
    def plain_hash(headers)
      return headers if headers.is_a?(Hash)

      hash = {}
      headers.each { |k, v| hash[k] = v }
      hash
    end

    def close_body(body)
      body.close
    rescue StandardError => e
      @log_writer.unknown_error(e, "body.close")
    end

    def run_callback(callback, *args)
      callback.call(*args)
    rescue StandardError => e
      @log_writer.unknown_error(e, "after reply")
    end

    # Apache common log format with the duration, like Puma's CommonLogger;
    # with `log_requests :phases`, then each phase in seconds ("-" for one
    # not known yet: the reactor writes most responses after this line).
    def log_request(env, status, started)
      elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
      query = env["QUERY_STRING"].to_s.empty? ? "" : "?#{env['QUERY_STRING']}"
      line = format('%s - - [%s] "%s %s%s %s" %s - %0.4f',
                    env["HTTP_X_FORWARDED_FOR"] || env["REMOTE_ADDR"] || "-",
                    Time.now.strftime("%d/%b/%Y:%H:%M:%S %z"),
                    env["REQUEST_METHOD"], env["PATH_INFO"], query, env["SERVER_PROTOCOL"],
                    status.to_s[0..3], elapsed)
      line << phases_text(env[TIMINGS]) if @log_phases
      @log_writer.log(line)
    end

    def phases_text(timings)
      timings.map { |phase, secs| secs ? format(" %s=%0.6f", phase, secs) : " #{phase}=-" }.join
    end
  end
end
