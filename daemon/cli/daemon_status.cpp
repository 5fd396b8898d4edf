#include "cli/daemon_status.hpp"

#include <boost/json.hpp>
#include <ctime>

#include "ops/exporter_metrics.hpp"
#include "ops/process_metrics.hpp"
#include "reconcile/reconciler.hpp"

namespace gio::cli {
namespace {

namespace json = boost::json;

constexpr std::chrono::hours kAtRisk{72};
// /healthz waits this long at most for another process's database transaction: it runs
// on the event loop, which SQLite's wait would stall (the scheduler's tries wait as long).
constexpr std::chrono::milliseconds kHealthWriteWait{5};
// A lock held longer than this makes /healthz unhealthy (as long as the scheduler waits
// before it warns in the log).
constexpr std::chrono::seconds kLockedUnhealthyAfter{30};

constexpr state::SlotState kStates[] = {state::SlotState::pending,     state::SlotState::waiting,
                                        state::SlotState::downloading, state::SlotState::uploading,
                                        state::SlotState::done,        state::SlotState::failed,
                                        state::SlotState::lost};

int count_of(const state::JobSummary& summary, state::SlotState state) {
  const auto found = summary.counts.find(state);
  return found == summary.counts.end() ? 0 : found->second;
}

}  // namespace

std::string status_line(const config::Config& config, state::StateStore& store, Instant now) {
  int waiting = 0;
  int downloading = 0;
  int uploading = 0;
  int failed = 0;
  int at_risk = 0;
  // Only the states it shows: counting the done ones too read every row of the store
  // (a million with 200 jobs and years of history) at start and every 30 s.
  constexpr state::SlotState kShown[] = {state::SlotState::pending, state::SlotState::waiting,
                                         state::SlotState::downloading, state::SlotState::uploading,
                                         state::SlotState::failed};
  for (const config::Job& job : config.jobs) {
    std::map<state::SlotState, int> counts = store.count_states(job.name, kShown);
    waiting += counts[state::SlotState::pending] + counts[state::SlotState::waiting];
    downloading += counts[state::SlotState::downloading];
    uploading += counts[state::SlotState::uploading];
    failed += counts[state::SlotState::failed];
    at_risk += store.count_at_risk(job.name, now - kRetention + kAtRisk);
  }
  return std::to_string(waiting) + " slots waiting, " + std::to_string(downloading) +
         " downloading, " +
         (config.sinks.empty() ? "" : std::to_string(uploading) + " uploading, ") +
         std::to_string(failed) + " failed, " + std::to_string(at_risk) + " at risk";
}

namespace {

// Hourly against daily: each pair's last date compared, per data type.
void set_reconcile_gauges(const config::Config& config, state::StateStore& store,
                          ops::Registry& registry) {
  for (const reconcile::Pair& pair : reconcile::pairs(config)) {
    const std::string& job = pair.hourly->name;
    registry.set(ops::kReconcileTolerance, {{"gio_job", job}}, pair.tolerance_percent());
    for (const state::Reconciliation& row : store.latest_reconciliations(job)) {
      const ops::Labels labels{{"gio_job", job}, {"type", row.data_type}};
      const double late =
          static_cast<double>(row.daily_rows) - static_cast<double>(row.hourly_rows);
      registry.set(ops::kReconcileLateRows, labels, late);
      registry.set(ops::kReconcileLatePercent, labels,
                   row.daily_rows == 0 ? (row.hourly_rows == 0 ? 0.0 : -100.0)
                                       : late * 100.0 / static_cast<double>(row.daily_rows));
      if (const auto day = Slot::parse(row.date, Granularity::day)) {
        registry.set(ops::kReconcileLastDate, labels, static_cast<double>(to_unix(day->start())));
      }
    }
  }
}

}  // namespace

ops::Reply scrape(const config::Config& config, state::StateStore& store, ops::Registry& registry,
                  Instant now) {
  // Gauges are read afresh: a job removed by a reload disappears from the answer.
  for (const std::string_view gauge :
       {ops::kSlots, ops::kSlotsAtRisk, ops::kNextLossSeconds, ops::kNewestArchivedSlot,
        ops::kSinkBacklogSlots, ops::kSinkBacklogBytes, ops::kSinkOldestBacklogSeconds,
        ops::kReconcileLateRows, ops::kReconcileLastDate, ops::kReconcileLatePercent,
        ops::kReconcileTolerance, ops::kSchemaSince}) {
    registry.clear(gauge);
  }
  set_reconcile_gauges(config, store, registry);
  // Each sink's backlog: the uploading slots of the jobs that land on it.
  for (const config::Sink& sink : config.sinks) {
    std::vector<std::string> jobs;
    for (const config::Job& job : config.jobs) {
      if (job.sink == sink.name) {
        jobs.push_back(job.name);
      }
    }
    const state::UploadBacklog backlog = store.upload_backlog(jobs);
    const ops::Labels labels{{"sink", sink.name}};
    registry.set(ops::kSinkBacklogSlots, labels, backlog.slots);
    registry.set(ops::kSinkBacklogBytes, labels, static_cast<double>(backlog.bytes));
    const auto waited = backlog.oldest_since
                            ? std::max(std::chrono::seconds{0}, now - *backlog.oldest_since)
                            : std::chrono::seconds{0};
    registry.set(ops::kSinkOldestBacklogSeconds, labels, static_cast<double>(waited.count()));
  }
  for (const config::Job& job : config.jobs) {
    const state::JobSummary summary = store.summarize(job.name);
    for (const state::SlotState state : kStates) {
      registry.set(ops::kSlots, {{"gio_job", job.name}, {"state", std::string{to_string(state)}}},
                   count_of(summary, state));
    }
    registry.set(ops::kSlotsAtRisk, {{"gio_job", job.name}},
                 store.count_at_risk(job.name, now - kRetention + kAtRisk));
    if (const auto oldest = store.oldest_not_done_start(job.name)) {
      const auto left = std::max(std::chrono::seconds{0}, *oldest + kRetention - now);
      registry.set(ops::kNextLossSeconds, {{"gio_job", job.name}},
                   static_cast<double>(left.count()));
    }
    for (const auto& [type, record] : store.current_schemas(job.name)) {
      if (const auto since = Slot::parse(record.since_slot, job.granularity)) {
        registry.set(ops::kSchemaSince, {{"gio_job", job.name}, {"type", type}},
                     static_cast<double>(to_unix(since->start())));
      }
    }
    if (summary.newest_done) {
      if (const auto slot = Slot::parse(*summary.newest_done, job.granularity)) {
        registry.set(
            ops::kNewestArchivedSlot,
            {{"gio_job", job.name}, {"granularity", std::string{to_string(job.granularity)}}},
            static_cast<double>(to_unix(slot->start())));
      }
    }
  }
  ops::update_process_metrics(registry);
  return {.content_type = "text/plain; version=0.0.4; charset=utf-8", .body = registry.text()};
}

ops::Reply health(LoopHealth loop, state::StateStore& store, Instant now) {
  const auto loop_age = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::steady_clock::now() - loop.alive_at);
  const bool loop_ok = loop.alive;
  std::string database = "writable";
  bool database_ok = true;
  try {
    store.check_writable(now, kHealthWriteWait);
  } catch (const state::StateError& error) {
    database = error.what();
    database_ok = false;
    if (error.busy()) {
      const auto locked_for = std::chrono::duration_cast<std::chrono::seconds>(
          loop.database_locked_for.value_or(std::chrono::seconds{0}));
      database =
          "locked by another process" +
          (locked_for.count() > 0 ? " for " + std::to_string(locked_for.count()) + "s" : "") +
          "; the daemon waits for it";
      database_ok = locked_for < kLockedUnhealthyAfter;
    }
  } catch (const std::exception& error) {
    database = error.what();
    database_ok = false;
  }
  const bool ok = loop_ok && database_ok;
  json::object body{{"status", ok ? "ok" : "unhealthy"},
                    {"loop_age_seconds", loop_age.count()},
                    {"database", database}};
  return {.status = ok ? 200u : 503u,
          .content_type = "application/json",
          .body = json::serialize(body) + "\n"};
}

ops::Reply unhealthy_database(const std::string& why) {
  const json::object body{{"status", "unhealthy"}, {"database", why}};
  return {.status = 503u, .content_type = "application/json", .body = json::serialize(body) + "\n"};
}

}  // namespace gio::cli
