// The JSON lines of `k6 run --out json`, parsed in place by simdjson.
#include <simdjson.h>

#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "lib/k6/record_parsers.h"

namespace rwexport {
namespace k6_reader {
namespace {

// simdjson speaks std::string_view; Debian's Abseil has its own string_view.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

class JsonLineParser::Impl {
 public:
  Impl(const K6ResultsReader::Callbacks& callbacks, K6ReadStats& stats)
      : callbacks_(callbacks), stats_(stats) {}

  void Parse(absl::string_view line, int64_t line_no) {
    std::string error = ParseLine(line);
    if (!error.empty()) {
      ++stats_.errors;
      if (callbacks_.on_error) callbacks_.on_error(ReadError{line_no, std::move(error)});
    }
  }

 private:
  static std::string JsonError(absl::string_view what, simdjson::error_code code) {
    return absl::StrCat(what, ": ", simdjson::error_message(code));
  }

  // Returns an empty string on success, else what is wrong with the line.
  std::string ParseLine(absl::string_view line) {
    simdjson::dom::element doc;
    simdjson::error_code err =
        parser_.parse(line.data(), line.size(), /*realloc_if_needed=*/false).get(doc);
    if (err) return JsonError("invalid JSON", err);
    simdjson::dom::object root;
    if (doc.get_object().get(root)) return "not a JSON object";

    std::string_view type;
    std::string_view metric;
    bool has_metric = false;
    simdjson::dom::element data;
    bool has_data = false;
    for (simdjson::dom::key_value_pair field : root) {
      if (field.key == "type") {
        if (field.value.get_string().get(type)) return "\"type\" is not a string";
      } else if (field.key == "metric") {
        if (field.value.get_string().get(metric)) return "\"metric\" is not a string";
        has_metric = true;
      } else if (field.key == "data") {
        data = field.value;
        has_data = true;
      }
    }
    if (type.empty()) return "missing \"type\"";
    if (!has_data) return "missing \"data\"";
    if (type == "Point") {
      if (!has_metric) return "Point without \"metric\"";
      return ParsePoint(metric, data);
    }
    if (type == "Metric") return ParseMetric(metric, data);
    return absl::StrCat("unknown record type \"", Sv(type), "\" (want Metric or Point)");
  }

  std::string ParsePoint(std::string_view metric, simdjson::dom::element data) {
    if (metric.empty()) return "Point with an empty metric name";
    simdjson::dom::object object;
    if (data.get_object().get(object)) return "Point \"data\" is not an object";
    std::string_view time;
    bool has_time = false;
    bool has_value = false;
    double value = 0;
    simdjson::dom::element tags;
    bool has_tags = false;
    for (simdjson::dom::key_value_pair field : object) {
      if (field.key == "time") {
        if (field.value.get_string().get(time)) return "Point \"time\" is not a string";
        has_time = true;
      } else if (field.key == "value") {
        simdjson::error_code err = field.value.get_double().get(value);
        if (err) return "Point \"value\" is not a number";
        has_value = true;
      } else if (field.key == "tags") {
        tags = field.value;
        has_tags = !tags.is_null();
      }
    }
    if (!has_time) return "Point without \"time\"";
    if (!has_value) return "Point without \"value\"";
    absl::StatusOr<int64_t> nanos = ParseRfc3339UnixNanos(Sv(time));
    if (!nanos.ok()) return std::string(nanos.status().message());

    sample_.metric.assign(metric.data(), metric.size());
    sample_.time_unix_nano = *nanos;
    sample_.value = value;
    {
      TagWriter writer(sample_);
      if (has_tags) {
        simdjson::dom::object tag_object;
        if (tags.get_object().get(tag_object)) {
          return "Point \"tags\" is neither an object nor null";
        }
        for (simdjson::dom::key_value_pair tag : tag_object) {
          std::string_view tag_value;
          if (tag.value.get_string().get(tag_value)) {
            return absl::StrCat("tag \"", Sv(tag.key), "\" is not a string");
          }
          writer.Add(Sv(tag.key), Sv(tag_value));
        }
      }
    }
    ++stats_.samples;
    if (callbacks_.on_sample) callbacks_.on_sample(std::move(sample_));
    return std::string();
  }

  std::string ParseMetric(std::string_view metric, simdjson::dom::element data) {
    simdjson::dom::object object;
    if (data.get_object().get(object)) return "Metric \"data\" is not an object";
    std::string_view name = metric;
    std::string_view type;
    std::string_view contains;
    bool has_type = false;
    bool has_contains = false;
    for (simdjson::dom::key_value_pair field : object) {
      if (field.key == "name") {
        if (field.value.get_string().get(name)) return "Metric \"name\" is not a string";
      } else if (field.key == "type") {
        if (field.value.get_string().get(type)) return "Metric \"type\" is not a string";
        has_type = true;
      } else if (field.key == "contains") {
        if (field.value.get_string().get(contains)) return "Metric \"contains\" is not a string";
        has_contains = true;
      }
    }
    if (name.empty()) return "Metric without a name";
    if (!has_type) return absl::StrCat("Metric \"", Sv(name), "\" without \"type\"");
    std::optional<MetricType> metric_type = ParseMetricType(Sv(type));
    if (!metric_type) {
      return absl::StrCat("Metric \"", Sv(name), "\" has unknown type \"", Sv(type),
                          "\" (want counter, gauge, rate or trend)");
    }
    ValueKind kind = ValueKind::kDefault;
    if (has_contains) {
      std::optional<ValueKind> parsed = ParseValueKind(Sv(contains));
      if (!parsed) {
        return absl::StrCat("Metric \"", Sv(name), "\" has unknown \"contains\" \"", Sv(contains),
                            "\" (want default, time or data)");
      }
      kind = *parsed;
    }
    ++stats_.metrics;
    if (callbacks_.on_metric) {
      callbacks_.on_metric(K6Metric{std::string(name), *metric_type, kind});
    }
    return std::string();
  }

  const K6ResultsReader::Callbacks& callbacks_;
  K6ReadStats& stats_;
  simdjson::dom::parser parser_;
  K6Sample sample_;
};

JsonLineParser::JsonLineParser(const K6ResultsReader::Callbacks& callbacks, K6ReadStats& stats)
    : impl_(std::make_unique<Impl>(callbacks, stats)) {}
JsonLineParser::~JsonLineParser() = default;
void JsonLineParser::Parse(absl::string_view line, int64_t line_no) { impl_->Parse(line, line_no); }

}  // namespace k6_reader
}  // namespace rwexport
