# frozen_string_literal: true

require "json"
require "open3"

# Parses Prometheus text with Prometheus' own parser (Debian's
# python3-prometheus-client, installed by bin/setup), so a format error is
# found by the reference implementation rather than by our reading of the
# rules. Returns { family name => { "type" =>, "samples" => [[name, labels, value]] } }.
module Prometheus
  PYTHON = "/usr/bin/python3"
  PARSE = <<~PY
    import json, math, sys
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for family in text_string_to_metric_families(sys.stdin.read()):
        if family.name in out:
            raise SystemExit("family %s appears twice" % family.name)
        out[family.name] = {"type": family.type, "samples": [
            [s.name, s.labels, s.value if math.isfinite(s.value) else str(s.value)] for s in family.samples]}
    print(json.dumps(out))
  PY

  module_function

  def parse(text)
    out, err, status = Open3.capture3(PYTHON, "-c", PARSE, stdin_data: text)
    raise "Prometheus parser rejected the text: #{err}\n#{text}" unless status.success?

    JSON.parse(out)
  end

  # The samples named `name` whose labels include `labels`.
  def samples(families, family, name, labels = {})
    families.fetch(family)["samples"].select do |n, l, _|
      n == name && labels.all? { |k, v| l[k.to_s] == v.to_s }
    end
  end
end
