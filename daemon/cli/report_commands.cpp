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

int gaps(const config::Config& config, const std::optional<std::string>& only_job, bool as_json) {
  state::StateStore store{config.state_db};
  const Instant now = command_clock().now();
  json::array gaps;
  for (const config::Job& job : config.jobs) {
    if (only_job && job.name != *only_job) {
      continue;
    }
    // Every slot of the window that is ready by now, whether or not it was planned
    // (a daemon that never ran still leaves gaps).
    const Slot first = scheduler::first_in_window(job, now);
    std::map<std::string, state::SlotRecord> known;
    for (state::SlotRecord& record : store.slots(job.name, first.start(), now)) {
      known.emplace(record.slot, std::move(record));
    }
    for (const state::PlannedSlot& expected : scheduler::plan_slots(job, first.start(), now)) {
      const auto record = known.find(expected.slot);
      if (record != known.end() && record->second.state == state::SlotState::done) {
        continue;
      }
      const Instant lost_at = expected.start + kRetention;
      json::object gap{{"job", job.name},
                       {"slot", expected.slot},
                       {"lost_at", format_utc(lost_at)},
                       {"seconds_left", std::max<std::int64_t>(0, (lost_at - now).count())}};
      if (record == known.end()) {
        gap["state"] = "unplanned";
        gap["attempts"] = 0;
        gap["api_status"] = "";
        gap["last_error"] = "not planned yet: the daemon has not run since this slot became ready";
      } else {
        gap["state"] = to_string(record->second.state);
        gap["attempts"] = record->second.attempts;
        gap["api_status"] = record->second.api_status;
        gap["last_error"] = record->second.last_error;
      }
      gaps.push_back(std::move(gap));
    }
  }

  if (as_json) {
    std::cout << json::serialize(json::object{{"gaps", gaps}}) << "\n";
  } else if (gaps.empty()) {
    std::cout << "no gaps: every ready slot inside the backfill window is archived\n";
  } else {
    for (const json::value& entry : gaps) {
      const json::object& gap = entry.as_object();
      const auto text = [&gap](std::string_view key) {
        return std::string_view{gap.at(key).as_string()};
      };
      std::cout << text("job") << " " << text("slot") << " " << text("state")
                << " attempts=" << gap.at("attempts").as_int64();
      if (!text("api_status").empty()) {
        std::cout << " api_status=" << text("api_status");
      }
      std::cout << " left=" << format_left(std::chrono::seconds{gap.at("seconds_left").as_int64()});
      if (!text("last_error").empty()) {
        std::cout << " error=\"" << text("last_error") << "\"";
      }
      std::cout << "\n";
    }
  }
  return gaps.empty() ? 0 : 2;
}

}  // namespace gio::cli
