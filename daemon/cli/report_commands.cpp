// `status` and `gaps`: read the state store, never change it (nor create it: the store
// is opened read-only, so a wrong state_db is an error, not an empty new database).

#include <algorithm>
#include <boost/json.hpp>
#include <iostream>
#include <set>
#include <tuple>

#include "api/chart.hpp"
#include "cli/archive_binding.hpp"
#include "cli/byte_text.hpp"
#include "cli/commands.hpp"
#include "report/format.hpp"
#include "report/slot_view.hpp"
#include "scheduler/planner.hpp"
#include "state/state_store.hpp"

namespace gio::cli {
namespace {

namespace json = boost::json;

json::value optional_text(const std::optional<std::string>& text) {
  return text ? json::value(*text) : json::value(nullptr);
}

constexpr state::SlotState kStates[] = {state::SlotState::pending,     state::SlotState::waiting,
                                        state::SlotState::downloading, state::SlotState::uploading,
                                        state::SlotState::done,        state::SlotState::failed,
                                        state::SlotState::lost};

using report::format_in;
using report::format_left;
using report::next_ask;
using report::NextAsk;

std::string describe_next(const json::object& job, Instant now) {
  const std::string at{job.at("next_action").as_string()};
  const auto when = parse_utc(at);
  std::string text = at + " (slot " + std::string{job.at("next_slot").as_string()} + ", ";
  if (!when || *when > now) {
    text += "in " + format_in(when ? *when - now : std::chrono::seconds{0});
  } else if (now - *when < std::chrono::minutes{1}) {
    text += "due now";
  } else {
    text += "overdue by " + format_in(now - *when);
  }
  return text + ")";
}

// Each data type's current header (schema watch, issue 16): since which slot, and how
// old that slot is; for the text, "page 2d3h, visit 5h10m" (or "-" before any header).
json::array schema_ages(state::StateStore& store, const config::Job& job, Instant now) {
  json::array types;
  for (const auto& [type, record] : store.current_schemas(job.name)) {
    json::object entry{{"type", type}, {"since_slot", record.since_slot}};
    if (const auto since = Slot::parse(record.since_slot, job.granularity)) {
      entry["age_seconds"] = std::max<std::int64_t>(0, (now - since->start()).count());
    }
    entry["columns"] = record.columns.size();
    types.push_back(std::move(entry));
  }
  return types;
}

std::string describe_schemas(const json::array& types) {
  std::string text;
  for (const json::value& entry : types) {
    const json::object& type = entry.as_object();
    text += (text.empty() ? "" : ", ") + std::string{type.at("type").as_string()} + " ";
    const json::value* age = type.if_contains("age_seconds");
    text += age != nullptr ? format_in(std::chrono::seconds{age->as_int64()})
                           : std::string{type.at("since_slot").as_string()};
  }
  return text.empty() ? "-" : text;
}

// The job's downloading slots with the bytes fetched so far (issue 17), by slot; the
// daemon writes them every few seconds while the bytes move.
json::array downloading(state::StateStore& store, const config::Job& job) {
  json::array slots;
  for (const auto& [slot, progress] : store.progress(job.name)) {
    slots.push_back(
        json::object{{"slot", slot},
                     {"bytes_done", progress.bytes_done},
                     {"bytes_total", progress.bytes_total ? json::value(*progress.bytes_total)
                                                          : json::value(nullptr)}});
  }
  return slots;
}

void print_downloading(const json::array& slots) {
  for (const json::value& entry : slots) {
    const json::object& slot = entry.as_object();
    const json::value& total = slot.at("bytes_total");
    std::cout << "  downloading: " << std::string_view{slot.at("slot").as_string()} << " "
              << bytes_of(slot.at("bytes_done").to_number<std::uint64_t>(),
                          total.is_null() ? std::nullopt
                                          : std::optional{total.to_number<std::uint64_t>()})
              << "\n";
  }
}

}  // namespace

int status(const config::Config& config, bool as_json) {
  state::StateStore store = open_for_reading(config);
  const Instant now = command_clock().now();
  // At risk: neither done nor lost, and less than 72 h before the vendor drops it.
  const Instant at_risk_before = now - kRetention + std::chrono::hours{72};
  json::array jobs;
  for (const config::Job& job : config.jobs) {
    const state::JobSummary summary = store.summarize(job.name);
    json::object counts;
    for (const state::SlotState state : kStates) {
      const auto found = summary.counts.find(state);
      counts[to_string(state)] = found == summary.counts.end() ? 0 : found->second;
    }
    const NextAsk next = next_ask(job, store, summary, now);
    jobs.push_back(json::object{
        {"job", job.name},
        {"granularity", to_string(job.granularity)},
        {"counts", std::move(counts)},
        {"at_risk", store.count_at_risk(job.name, at_risk_before)},
        {"newest_done", optional_text(summary.newest_done)},
        {"oldest_not_done", optional_text(summary.oldest_not_done)},
        {"next_action", format_utc(next.at)},
        {"next_slot", next.slot},
        // A size-only job inflates nothing, so its manifests have no rows (issue 16).
        {"rows_counted", job.verify != archive::VerifyMode::size},
        {"schemas", schema_ages(store, job, now)},
        {"downloading", downloading(store, job)},
    });
  }
  if (as_json) {
    std::cout << json::serialize(json::object{{"jobs", std::move(jobs)}}) << "\n";
    return 0;
  }
  for (const json::value& entry : jobs) {
    const json::object& job = entry.as_object();
    std::cout << "job " << std::string_view{job.at("job").as_string()} << " ("
              << std::string_view{job.at("granularity").as_string()} << "):";
    for (const auto& [state, count] : job.at("counts").as_object()) {
      std::cout << " " << std::string_view{state} << "=" << count.as_int64();
    }
    const auto text = [&job](std::string_view key) {
      const json::value& value = job.at(key);
      return value.is_null() ? std::string{"-"} : std::string{value.as_string()};
    };
    std::cout << " at_risk=" << job.at("at_risk").as_int64()
              << "\n  newest archived: " << text("newest_done")
              << "  oldest not archived: " << text("oldest_not_done")
              << "\n  next ask: " << describe_next(job, now) << "\n";
    print_downloading(job.at("downloading").as_array());
    if (!job.at("rows_counted").as_bool()) {
      std::cout << "  rows: not counted (verify: size)\n";
    }
    if (!job.at("schemas").as_array().empty()) {
      std::cout << "  schema age: " << describe_schemas(job.at("schemas").as_array()) << "\n";
    }
  }
  return 0;
}

namespace {

// One slot that is not archived: a stored row, or a ready slot never planned.
struct Gap {
  std::string slot;
  Instant start;
  std::optional<state::SlotRecord> record;  // nullopt: unplanned
};

// The gaps as they are found, written into one buffer: a whole window of gaps (every
// job down for days) is tens of thousands of lines, so there is no JSON tree of them all.
class GapList {
 public:
  GapList(bool as_json, Instant now, const std::vector<std::string>& states)
      : as_json_(as_json), now_(now), states_(states) {}

  // `in_config`: false for the rows of a job the config no longer has.
  void add(std::string_view job, const Gap& gap, bool in_config) {
    const state::SlotRecord* record = gap.record ? &*gap.record : nullptr;
    const std::string_view state = record ? to_string(record->state) : "unplanned";
    if (!states_.empty() && std::find(states_.begin(), states_.end(), state) == states_.end()) {
      return;
    }
    const Instant lost_at = gap.start + kRetention;
    const std::int64_t seconds_left = std::max<std::int64_t>(0, (lost_at - now_).count());
    const int attempts = record ? record->attempts : 0;
    const std::string_view api_status = record ? std::string_view{record->api_status} : "";
    const std::string_view last_error =
        record ? std::string_view{record->last_error}
               : "not planned yet: the daemon has not run since this slot became ready";
    if (as_json_) {
      json::object entry{{"job", job},
                         {"slot", gap.slot},
                         {"lost_at", format_utc(lost_at)},
                         {"seconds_left", seconds_left},
                         {"state", state},
                         {"attempts", attempts},
                         {"api_status", api_status},
                         {"last_error", last_error},
                         {"in_config", in_config}};
      out_ += count_ == 0 ? "" : ",";
      out_ += json::serialize(entry);
    } else {
      out_ += job;
      out_ += ' ';
      out_ += gap.slot;
      out_ += ' ';
      out_ += state;
      out_ += " attempts=";
      out_ += std::to_string(attempts);
      if (!api_status.empty()) {
        out_ += " api_status=";
        out_ += api_status;
      }
      out_ += " left=";
      out_ += format_left(std::chrono::seconds{seconds_left});
      if (!last_error.empty()) {
        out_ += " error=\"";
        out_ += last_error;
        out_ += '"';
      }
      if (!in_config) {
        out_ += " (job not in the config)";
      }
      out_ += '\n';
    }
    ++count_;
  }

  // A chart archived at the vendor's row cap: its slot is done, but the vendor cut the
  // result, so rows are missing. A warning listed after the gaps (and counted: the
  // archive lacks data), unless only some states are asked for.
  void add_capped(const state::ArchivedFile& chart) {
    if (!states_.empty()) {
      return;
    }
    const std::uint64_t rows = chart.rows.value_or(0);
    if (as_json_) {
      json::object entry{{"job", chart.job},
                         {"slot", chart.slot},
                         {"chart", chart.data_type},
                         {"rows", rows},
                         {"cap", api::kChartRowCap}};
      capped_ += capped_.empty() ? "" : ",";
      capped_ += json::serialize(entry);
    } else {
      capped_ += chart.job + " " + chart.slot + " chart_capped chart=" + chart.data_type +
                 " rows=" + std::to_string(rows) + " warning=\"the vendor cuts a chart at " +
                 std::to_string(api::kChartRowCap) +
                 " rows: this result is probably incomplete (ask for a shorter interval)\"\n";
    }
    ++count_;
  }

  std::size_t count() const { return count_; }

  // The whole answer: the JSON document, or the lines (a sentence when there are none).
  std::string finish() {
    if (as_json_) {
      // "capped_charts" only when there are some: the answer without is as it was.
      return "{\"gaps\":[" + out_ + "]" +
             (capped_.empty() ? std::string{} : ",\"capped_charts\":[" + capped_ + "]") + "}\n";
    }
    if (count_ > 0) {
      return std::move(out_) + capped_;
    }
    if (states_.empty()) {
      return "no gaps: every ready slot inside the backfill window is archived, and no slot "
             "was lost\n";
    }
    std::string states;
    for (const std::string& state : states_) {
      states += (states.empty() ? "" : ",") + state;
    }
    return "no gaps in state " + states + "\n";
  }

 private:
  bool as_json_;
  Instant now_;
  const std::vector<std::string>& states_;
  std::string out_;
  std::string capped_;
  std::size_t count_ = 0;
};

// Every slot of a configured job that is not archived, oldest first: each stored row
// that is not done, wherever it lies (lost ones, and failed ones the backfill window
// has left behind), and each ready slot of the window with no row at all (a daemon
// that never ran still leaves gaps).
std::vector<Gap> gaps_of(state::StateStore& store, const config::Job& job, Instant now) {
  std::vector<Gap> gaps;
  for (state::SlotRecord& record : store.not_done(job.name)) {
    gaps.push_back({record.slot, record.start, std::move(record)});
  }
  const Slot first = scheduler::first_in_window(job, now);
  std::set<std::string> planned;
  for (const state::SlotRecord& record : store.slots(job.name, first.start(), now)) {
    planned.insert(record.slot);
  }
  for (Slot slot = first; scheduler::ready_at(job, slot) <= now; slot = slot.next()) {
    if (!planned.contains(slot.name())) {
      gaps.push_back({slot.name(), slot.start(), std::nullopt});
    }
  }
  std::sort(gaps.begin(), gaps.end(), [](const Gap& a, const Gap& b) {
    return std::tie(a.start, a.slot) < std::tie(b.start, b.slot);
  });
  return gaps;
}

}  // namespace

int gaps(const config::Config& config, const std::optional<std::string>& only_job,
         const std::vector<std::string>& states, bool as_json) {
  state::StateStore store = open_for_reading(config);
  const Instant now = command_clock().now();
  GapList list{as_json, now, states};
  for (const config::Job& job : config.jobs) {
    if (!only_job || job.name == *only_job) {
      for (const Gap& gap : gaps_of(store, job, now)) {
        list.add(job.name, gap, true);
      }
    }
  }
  for (const config::Job& job : config.jobs) {
    if ((!only_job || job.name == *only_job) &&
        std::holds_alternative<config::ChartJob>(job.settings)) {
      for (const state::ArchivedFile& chart :
           store.files_with_rows(job.name, api::kChartCsvName, api::kChartRowCap)) {
        list.add_capped(chart);
      }
    }
  }
  // A job removed from the config gets no new work, but what it left unarchived is
  // still missing from the archive.
  if (!only_job) {
    for (const std::string& name : store.jobs()) {
      if (config.find_job(name) == nullptr) {
        for (state::SlotRecord& record : store.not_done(name)) {
          list.add(name, {record.slot, record.start, std::move(record)}, false);
        }
      }
    }
  }
  std::cout << list.finish();
  return list.count() == 0 ? 0 : 2;
}

}  // namespace gio::cli
