// `schema --job J --type T [--json]`: the header history the schema watch keeps (issue
// 16), read-only like status and gaps.

#include <boost/json.hpp>
#include <iostream>

#include "cli/archive_binding.hpp"
#include "cli/commands.hpp"
#include "scheduler/schema_watch.hpp"
#include "state/state_store.hpp"

namespace gio::cli {
namespace {

namespace json = boost::json;

json::array names(const std::vector<std::string>& columns) {
  json::array array;
  for (const std::string& name : columns) {
    array.emplace_back(name);
  }
  return array;
}

}  // namespace

int schema(const config::Config& config, const config::Job& job, const std::string& type,
           bool as_json) {
  state::StateStore store = open_for_reading(config);
  const std::vector<state::SchemaRecord> history = store.schemas(job.name, type);
  json::array entries;
  for (std::size_t index = 0; index < history.size(); ++index) {
    const state::SchemaRecord& record = history[index];
    json::object entry{{"since_slot", record.since_slot},
                       {"seen_at", format_utc(record.seen_at)},
                       {"columns", names(record.columns)}};
    if (index == 0) {
      entry["change"] = nullptr;  // the first header seen
    } else {
      const scheduler::HeaderDiff diff =
          scheduler::diff_headers(history[index - 1].columns, record.columns);
      entry["change"] = json::object{{"added", names(diff.added)},
                                     {"removed", names(diff.removed)},
                                     {"reordered", diff.reordered}};
    }
    entries.push_back(std::move(entry));
  }
  if (as_json) {
    std::cout << json::serialize(
                     json::object{{"job", job.name}, {"type", type}, {"schemas", entries}})
              << "\n";
    return 0;
  }
  if (history.empty()) {
    std::cout << "job " << job.name << " type " << type << ": no header recorded\n";
    return 0;
  }
  std::cout << "job " << job.name << " type " << type << ": " << history.size()
            << (history.size() == 1 ? " header" : " headers") << " (the last is current)\n";
  for (std::size_t index = 0; index < history.size(); ++index) {
    const state::SchemaRecord& record = history[index];
    std::cout << "since " << record.since_slot << "  seen " << format_utc(record.seen_at) << "  "
              << record.columns.size() << " columns";
    if (index == 0) {
      std::cout << "  first seen";
    } else {
      const scheduler::HeaderDiff diff =
          scheduler::diff_headers(history[index - 1].columns, record.columns);
      std::cout << "  added=" << scheduler::join_names(diff.added)
                << " removed=" << scheduler::join_names(diff.removed)
                << " reordered=" << (diff.reordered ? "true" : "false");
    }
    std::cout << "\n  " << scheduler::join_names(record.columns) << "\n";
  }
  return 0;
}

}  // namespace gio::cli
