// The `sinks:` list (issue 15): where jobs' partitions land beyond the local archive,
// through rclone. The remote string may hold credentials (an on-the-fly backend such as
// ":s3,access_key_id=...:bucket"), so no message here ever quotes it.

#include <algorithm>

#include "config/parse_support.hpp"

namespace gio::config::parsing {
namespace {

// [A-Za-z0-9_-]+: a sink's name is logged, labels metrics and names rclone's alias.
bool is_sink_name(std::string_view text) {
  return !text.empty() && text.size() <= kMaxNameLength &&
         std::all_of(text.begin(), text.end(),
                     [](char c) { return is_alnum(c) || c == '_' || c == '-'; });
}

// What rclone can be handed through an environment variable: one line of printable text.
bool is_remote_text(std::string_view text) {
  return !text.empty() && std::none_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

Sink read_sink(const YAML::Node& node, const std::vector<Sink>& earlier,
               const std::filesystem::path& base, Reporter& reporter) {
  Sink sink;
  if (!node.IsMap()) {
    reporter.add(node.Mark(),
                 "a sink must be a map with name and rclone_remote, not " + describe(node));
    return sink;
  }
  const MapReader map(node, "a sink", keys::kSink, reporter);
  sink.place = place_of(map.mark());
  if (const Entry* entry = map.find("name")) {
    if (auto name = read_string(*entry, reporter)) {
      sink.name = *name;
      if (!is_sink_name(*name)) {
        reporter.add(entry->value_mark(), "sink name " + in_quotes(*name) + " must be 1 to " +
                                              std::to_string(kMaxNameLength) +
                                              " letters, digits, '_' or '-'");
      }
      const bool duplicate = std::any_of(earlier.begin(), earlier.end(),
                                         [&](const Sink& other) { return other.name == *name; });
      if (duplicate) {
        reporter.add(entry->value_mark(), "duplicate sink name " + in_quotes(*name));
      }
    }
  } else {
    reporter.add(map.mark(), "this sink has no 'name'");
  }
  if (const Entry* entry = map.find("rclone_remote")) {
    if (auto remote = read_string(*entry, reporter)) {
      if (is_remote_text(*remote)) {
        sink.rclone_remote = *remote;
      } else {
        // Not echoed: an on-the-fly backend string may hold a key.
        reporter.add(entry->value_mark(),
                     "'rclone_remote' must be an rclone remote:path such as "
                     "\"oss:bucket/growingio\" or \":webdav,url='http://h:8080':\", on one line");
      }
    }
  } else {
    reporter.add(map.mark(), "this sink has no 'rclone_remote' (an rclone remote:path)");
  }
  if (const Entry* entry = map.find("rclone_config")) {
    if (auto path = read_path(*entry, base, reporter, /*allow_empty=*/true)) {
      sink.rclone_config = *path;
    }
  }
  if (const Entry* entry = map.find("keep_local")) {
    sink.keep_local =
        read_duration(*entry, reporter, Duration{0}, kMaxKeepLocal).value_or(sink.keep_local);
  }
  return sink;
}

}  // namespace

std::optional<std::vector<Sink>> read_sinks(const Entry* entry, const std::filesystem::path& base,
                                            Reporter& reporter) {
  std::vector<Sink> sinks;
  if (entry == nullptr || entry->value.IsNull()) {
    return sinks;  // optional: the local archive is every job's destination
  }
  if (!entry->value.IsSequence()) {
    reporter.add(entry->value_mark(),
                 "'sinks' must be a list of sinks, not " + describe(entry->value));
    return std::nullopt;
  }
  for (const YAML::Node& node : entry->value) {
    Sink sink = read_sink(node, sinks, base, reporter);
    sinks.push_back(std::move(sink));
  }
  return sinks;
}

}  // namespace gio::config::parsing
