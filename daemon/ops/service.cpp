#include "ops/service.hpp"

#include <systemd/sd-daemon.h>

#include <boost/json.hpp>
#include <ctime>

#include "ops/exporter_metrics.hpp"

namespace gio::ops {
namespace {

namespace json = boost::json;

constexpr std::chrono::hours kAtRisk{72};
// /healthz waits this long at most for another process's database transaction.
constexpr std::chrono::milliseconds kHealthWriteWait{500};

constexpr state::SlotState kStates[] = {state::SlotState::pending,     state::SlotState::waiting,
                                        state::SlotState::downloading, state::SlotState::done,
                                        state::SlotState::failed,      state::SlotState::lost};

int count_of(const state::JobSummary& summary, state::SlotState state) {
  const auto found = summary.counts.find(state);
  return found == summary.counts.end() ? 0 : found->second;
}

}  // namespace

void notify(std::string_view state) {
  sd_notify(0, std::string{state}.c_str());
}

std::string reloading_state() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const long long usec = static_cast<long long>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1'000;
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
}

std::optional<std::chrono::microseconds> watchdog_interval() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    return std::chrono::microseconds{usec};
  }
  return std::nullopt;
}

std::string status_line(const config::Config& config, state::StateStore& store, Instant now) {
  int waiting = 0;
  int downloading = 0;
  int failed = 0;
  int at_risk = 0;
  for (const config::Job& job : config.jobs) {
    const state::JobSummary summary = store.summarize(job.name);
    waiting +=
        count_of(summary, state::SlotState::pending) + count_of(summary, state::SlotState::waiting);
    downloading += count_of(summary, state::SlotState::downloading);
    failed += count_of(summary, state::SlotState::failed);
    at_risk += store.count_at_risk(job.name, now - kRetention + kAtRisk);
  }
  return std::to_string(waiting) + " slots waiting, " + std::to_string(downloading) +
         " downloading, " + std::to_string(failed) + " failed, " + std::to_string(at_risk) +
         " at risk";
}

Reply scrape(const config::Config& config, state::StateStore& store, Registry& registry,
             Instant now) {
  // Gauges are read afresh: a job removed by a reload disappears from the answer.
  for (const std::string_view gauge :
       {kSlots, kSlotsAtRisk, kNextLossSeconds, kNewestArchivedSlot}) {
    registry.clear(gauge);
  }
  for (const config::Job& job : config.jobs) {
    const state::JobSummary summary = store.summarize(job.name);
    for (const state::SlotState state : kStates) {
      registry.set(kSlots, {{"gio_job", job.name}, {"state", std::string{to_string(state)}}},
                   count_of(summary, state));
    }
    registry.set(kSlotsAtRisk, {{"gio_job", job.name}},
                 store.count_at_risk(job.name, now - kRetention + kAtRisk));
    if (const auto oldest = store.oldest_not_done_start(job.name)) {
      const auto left = std::max(std::chrono::seconds{0}, *oldest + kRetention - now);
      registry.set(kNextLossSeconds, {{"gio_job", job.name}}, static_cast<double>(left.count()));
    }
    if (summary.newest_done) {
      if (const auto slot = Slot::parse(*summary.newest_done, job.granularity)) {
        registry.set(
            kNewestArchivedSlot,
            {{"gio_job", job.name}, {"granularity", std::string{to_string(job.granularity)}}},
            static_cast<double>(to_unix(slot->start())));
      }
    }
  }
  return {.content_type = "text/plain; version=0.0.4; charset=utf-8", .body = registry.text()};
}

Reply health(LoopHealth loop, state::StateStore& store, Instant now) {
  const auto loop_age = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::steady_clock::now() - loop.alive_at);
  const bool loop_ok = loop.alive;
  std::string database = "writable";
  try {
    store.check_writable(now, kHealthWriteWait);
  } catch (const std::exception& error) {
    database = error.what();
  }
  const bool ok = loop_ok && database == "writable";
  json::object body{{"status", ok ? "ok" : "unhealthy"},
                    {"loop_age_seconds", loop_age.count()},
                    {"database", database}};
  return {.status = ok ? 200u : 503u,
          .content_type = "application/json",
          .body = json::serialize(body) + "\n"};
}

}  // namespace gio::ops
