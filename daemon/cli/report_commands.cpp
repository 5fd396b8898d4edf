// `status` and `gaps`: read the state store, never change it.

#include <boost/json.hpp>
#include <iostream>

#include "cli/commands.hpp"
#include "scheduler/planner.hpp"
#include "state/state_store.hpp"

namespace gio::cli {
namespace {

namespace json = boost::json;

json::value optional_text(const std::optional<std::string>& text) {
  return text ? json::value(*text) : json::value(nullptr);
}

std::string format_left(std::chrono::seconds left) {
  if (left <= std::chrono::seconds{0}) {
    return "none";
  }
  const auto days = std::chrono::duration_cast<std::chrono::days>(left);
  const auto hours = std::chrono::duration_cast<std::chrono::hours>(left - days);
  const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(left - days - hours);
  if (days.count() > 0) {
    return std::to_string(days.count()) + "d" + std::to_string(hours.count()) + "h";
  }
  return std::to_string(hours.count()) + "h" + std::to_string(minutes.count()) + "m";
}

constexpr state::SlotState kStates[] = {state::SlotState::pending,     state::SlotState::waiting,
                                        state::SlotState::downloading, state::SlotState::done,
                                        state::SlotState::failed,      state::SlotState::lost};

}  // namespace

int status(const config::Config& config, bool as_json) {
  state::StateStore store{config.state_db};
  // At risk: neither done nor lost, and less than 72 h before the vendor drops it.
  const Instant at_risk_before = command_clock().now() - kRetention + std::chrono::hours{72};
  json::array jobs;
  for (const config::Job& job : config.jobs) {
    const state::JobSummary summary = store.summarize(job.name);
    json::object counts;
    for (const state::SlotState state : kStates) {
      const auto found = summary.counts.find(state);
      counts[to_string(state)] = found == summary.counts.end() ? 0 : found->second;
    }
    jobs.push_back(json::object{
        {"job", job.name},
        {"granularity", to_string(job.granularity)},
        {"counts", std::move(counts)},
        {"at_risk", store.count_at_risk(job.name, at_risk_before)},
        {"newest_done", optional_text(summary.newest_done)},
        {"oldest_not_done", optional_text(summary.oldest_not_done)},
        {"next_action", summary.next_action ? json::value(format_utc(*summary.next_action))
                                            : json::value(nullptr)},
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
              << "  next action: " << text("next_action") << "\n";
  }
  return 0;
}

namespace {

// The gaps as they are found, written into one buffer: a whole window of gaps (every
// job down for days) is tens of thousands of lines, so there is no JSON tree of them all.
class GapList {
 public:
  GapList(bool as_json, Instant now) : as_json_(as_json), now_(now) {}

  void add(const config::Job& job, const std::string& slot, Instant start,
           const state::SlotRecord* record) {
    const Instant lost_at = start + kRetention;
    const std::int64_t seconds_left = std::max<std::int64_t>(0, (lost_at - now_).count());
    const std::string_view state = record ? to_string(record->state) : "unplanned";
    const int attempts = record ? record->attempts : 0;
    const std::string_view api_status = record ? std::string_view{record->api_status} : "";
    const std::string_view last_error =
        record ? std::string_view{record->last_error}
               : "not planned yet: the daemon has not run since this slot became ready";
    if (as_json_) {
      json::object gap{{"job", job.name},
                       {"slot", slot},
                       {"lost_at", format_utc(lost_at)},
                       {"seconds_left", seconds_left},
                       {"state", state},
                       {"attempts", attempts},
                       {"api_status", api_status},
                       {"last_error", last_error}};
      out_ += count_ == 0 ? "" : ",";
      out_ += json::serialize(gap);
    } else {
      out_ += job.name;
      out_ += ' ';
      out_ += slot;
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
      out_ += '\n';
    }
    ++count_;
  }

  std::size_t count() const { return count_; }

  // The whole answer: the JSON document, or the lines (a sentence when there are none).
  std::string finish() {
    if (as_json_) {
      return "{\"gaps\":[" + out_ + "]}\n";
    }
    return count_ == 0 ? "no gaps: every ready slot inside the backfill window is archived\n"
                       : std::move(out_);
  }

 private:
  bool as_json_;
  Instant now_;
  std::string out_;
  std::size_t count_ = 0;
};

}  // namespace

int gaps(const config::Config& config, const std::optional<std::string>& only_job, bool as_json) {
  state::StateStore store{config.state_db};
  const Instant now = command_clock().now();
  GapList gaps{as_json, now};
  for (const config::Job& job : config.jobs) {
    if (only_job && job.name != *only_job) {
      continue;
    }
    // Every slot of the window that is ready by now, whether or not it was planned
    // (a daemon that never ran still leaves gaps), walked beside the stored rows of
    // the window: both go by start.
    const Slot first = scheduler::first_in_window(job, now);
    const std::vector<state::SlotRecord> records = store.slots(job.name, first.start(), now);
    auto record = records.begin();
    for (Slot slot = first; scheduler::ready_at(job, slot) <= now; slot = slot.next()) {
      while (record != records.end() && record->start < slot.start()) {
        ++record;
      }
      // Rows of another granularity (the job's changed) can share a start: match by name.
      const state::SlotRecord* found = nullptr;
      std::string name;
      for (auto same = record; same != records.end() && same->start == slot.start(); ++same) {
        if (name.empty()) {
          name = slot.name();
        }
        if (same->slot == name) {
          found = &*same;
          break;
        }
      }
      if (found != nullptr && found->state == state::SlotState::done) {
        continue;
      }
      gaps.add(job, name.empty() ? slot.name() : name, slot.start(), found);
    }
  }
  std::cout << gaps.finish();
  return gaps.count() == 0 ? 0 : 2;
}

}  // namespace gio::cli
