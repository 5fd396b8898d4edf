#include "reconcile/reconciler.hpp"

#include <exception>
#include <set>

#include "ops/logging.hpp"
#include "requeue/requeue.hpp"

namespace gio::reconcile {
namespace {

// kv keys: a date left out because no type could be compared (so that a restart does
// not try it again), and a date whose short hours were asked for again (once per date).
std::string skipped_key(const Pair& pair, const std::string& date) {
  return "reconcile/skipped/" + pair.hourly->name + "/" + date;
}
std::string refetched_key(const Pair& pair, const std::string& date) {
  return "reconcile/refetched/" + pair.hourly->name + "/" + date;
}

std::string slot_name_of_hour(const Slot& day, int hour) {
  return Slot::containing(day.start() + std::chrono::hours{hour}, Granularity::hour).name();
}

void log_result(const Pair& pair, const std::string& date, const TypeResult& result) {
  const double tolerance = pair.tolerance_percent();
  ops::Fields fields{{"job", pair.hourly->name},
                     {"daily_job", pair.daily->name},
                     {"date", date},
                     {"type", result.data_type},
                     {"hourly_rows", result.hourly_rows},
                     {"daily_rows", result.daily_rows},
                     {"late_rows", result.late_rows()}};
  if (matches(result, tolerance)) {
    ops::log_event(ops::Level::info, "reconcile_ok",
                   "the hourly partitions hold the daily export's rows", fields);
    return;
  }
  fields.emplace_back("short_hours", format_short_hours(result, tolerance));
  fields.emplace_back("tolerance_percent", tolerance);
  ops::log_event(ops::Level::warning, "reconcile_mismatch",
                 "the hourly partitions and the daily export differ beyond the tolerance", fields);
}

// The short hours of the mismatched types, asked for again while the vendor has them.
std::vector<std::string> refetch(state::StateStore& store, const Pair& pair, const Slot& day,
                                 const std::vector<TypeResult>& types, Instant now,
                                 const std::filesystem::path& archive_dir) {
  const double tolerance = pair.tolerance_percent();
  std::set<int> hours;
  for (const TypeResult& result : types) {
    if (!matches(result, tolerance)) {
      for (const int hour : short_hours(result, tolerance)) {
        hours.insert(hour);
      }
    }
  }
  const std::string key = refetched_key(pair, day.date());
  if (hours.empty() || store.get_value(key)) {
    return {};
  }
  std::vector<Slot> slots;
  for (const int hour : hours) {
    slots.push_back(Slot::containing(day.start() + std::chrono::hours{hour}, Granularity::hour));
  }
  requeue::Requeuer requeuer{store, archive_dir, now};
  const requeue::Report report = requeuer.backfill(*pair.hourly, slots, {.force = true});
  store.set_value(key, format_utc(now));
  std::vector<std::string> queued;
  std::string skipped;
  for (const requeue::Decision& decision : report.decisions) {
    if (decision.outcome == requeue::Outcome::skipped) {
      skipped += (skipped.empty() ? "" : "; ") + decision.slot + " " + decision.what;
    } else {
      queued.push_back(decision.slot);
    }
  }
  std::string names;
  for (const std::string& name : queued) {
    names += (names.empty() ? "" : ",") + name;
  }
  ops::log_event(ops::Level::info, "reconcile_refetch",
                 "short hours asked for again (once per date), in case the vendor re-ran "
                 "their hourly exports",
                 {{"job", pair.hourly->name},
                  {"date", day.date()},
                  {"slots", names},
                  {"queued", queued.size()},
                  {"skipped", skipped}});
  return queued;
}

}  // namespace

double Pair::tolerance_percent() const {
  return std::get<config::RawJob>(hourly->settings).reconcile.tolerance_percent;
}

std::vector<Pair> pairs(const config::Config& config) {
  std::vector<Pair> result;
  for (const config::Job& job : config.jobs) {
    const auto* raw = std::get_if<config::RawJob>(&job.settings);
    if (raw == nullptr || job.granularity != Granularity::hour ||
        raw->reconcile.daily_job.empty()) {
      continue;
    }
    if (const config::Job* daily = config.find_job(raw->reconcile.daily_job)) {
      result.push_back({&job, daily});
    }
  }
  return result;
}

std::vector<Pair> pairs_of(const config::Config& config, const config::Job& job) {
  std::vector<Pair> result;
  for (const Pair& pair : pairs(config)) {
    if (pair.hourly->name == job.name || pair.daily->name == job.name) {
      result.push_back(pair);
    }
  }
  return result;
}

bool date_done(state::StateStore& store, const Pair& pair, const Slot& day) {
  const auto daily = store.find(pair.daily->name, day.name());
  if (!daily || daily->state != state::SlotState::done) {
    return false;
  }
  int done = 0;
  for (const state::SlotRecord& record : store.slots(pair.hourly->name, day.start(), day.end())) {
    done += record.state == state::SlotState::done ? 1 : 0;
  }
  return done == kHours;
}

DateOutcome reconcile_date(state::StateStore& store, const Pair& pair, const Slot& day, Instant now,
                           const std::filesystem::path& archive_dir) {
  std::array<std::vector<state::ArchivedFile>, kHours> hourly;
  for (int hour = 0; hour < kHours; ++hour) {
    hourly[hour] = store.files(pair.hourly->name, slot_name_of_hour(day, hour));
  }
  Comparison comparison =
      compare(hourly, store.files(pair.daily->name, day.name()),
              Fetched{std::get<config::RawJob>(pair.hourly->settings).data_types},
              Fetched{std::get<config::RawJob>(pair.daily->settings).data_types});
  const std::string date = day.date();
  std::vector<state::Reconciliation> rows;
  for (const TypeResult& result : comparison.types) {
    rows.push_back({.job = pair.hourly->name,
                    .date = date,
                    .data_type = result.data_type,
                    .daily_job = pair.daily->name,
                    .hourly_rows = result.hourly_rows,
                    .daily_rows = result.daily_rows,
                    .hours = hours_json(result),
                    .match = matches(result, pair.tolerance_percent()),
                    .reconciled_at = now});
  }
  store.replace_reconciliations(pair.hourly->name, date, rows);
  for (const Skipped& skipped : comparison.skipped) {
    ops::log_event(ops::Level::info, "reconcile_skipped", "a data type could not be compared",
                   {{"job", pair.hourly->name},
                    {"daily_job", pair.daily->name},
                    {"date", date},
                    {"type", skipped.data_type},
                    {"reason", skipped.reason}});
  }
  if (rows.empty()) {
    store.set_value(skipped_key(pair, date), format_utc(now));
  }
  for (const TypeResult& result : comparison.types) {
    log_result(pair, date, result);
  }
  DateOutcome outcome{.types = std::move(comparison.types),
                      .skipped = std::move(comparison.skipped)};
  if (std::get<config::RawJob>(pair.hourly->settings).reconcile.refetch) {
    outcome.refetched = refetch(store, pair, day, outcome.types, now, archive_dir);
  }
  return outcome;
}

namespace {

void log_failure(const std::string& job, const std::string& date, const char* error) {
  ops::log_event(ops::Level::warning, "reconcile_failed",
                 "the date could not be compared; it is tried again at the next slot done",
                 {{"job", job}, {"date", date}, {"error", error}});
}

// Reconciles the date unless it was already; false (logged, remembered) when that failed.
void try_date(state::StateStore& store, const Pair& pair, const Slot& day, Instant now,
              const std::filesystem::path& archive_dir, FailedDates& failed) {
  const std::string date = day.date();
  try {
    if (date_done(store, pair, day)) {
      reconcile_date(store, pair, day, now, archive_dir);
    }
    failed.dates.erase({pair.hourly->name, date});
  } catch (const std::exception& error) {
    log_failure(pair.hourly->name, date, error.what());
    failed.add(pair.hourly->name, date);
  }
}

// The dates that failed before (a busy database, say), while their pair still exists and
// they were not reconciled since.
void retry_failed(const config::Config& config, state::StateStore& store, Instant now,
                  FailedDates& failed) {
  const auto remembered = failed.dates;
  for (const auto& [job, date] : remembered) {
    failed.dates.erase({job, date});
    const auto day = Slot::parse(date, Granularity::day);
    for (const Pair& pair : pairs(config)) {
      if (day && pair.hourly->name == job) {
        try_date(store, pair, *day, now, config.archive_dir, failed);
      }
    }
  }
}

}  // namespace

void FailedDates::add(const std::string& job, const std::string& date) {
  // Bounded: a database that stays broken must not grow this; the oldest date goes
  // (catch_up at the next start still finds it).
  dates.emplace(job, date);
  while (dates.size() > kMaxFailedDates) {
    dates.erase(dates.begin());
  }
}

void after_slot_done(const config::Config& config, state::StateStore& store, const config::Job& job,
                     const Slot& slot, Instant now, FailedDates& failed) {
  try {
    retry_failed(config, store, now, failed);
    const auto day = Slot::parse(slot.date(), Granularity::day);
    if (!day) {
      return;
    }
    // Every pair: several hourly jobs may name this daily job.
    for (const Pair& pair : pairs_of(config, job)) {
      try_date(store, pair, *day, now, config.archive_dir, failed);
    }
  } catch (const std::exception& error) {
    log_failure(job.name, slot.date(), error.what());
  } catch (...) {
    log_failure(job.name, slot.date(), "unknown error");
  }
}

void catch_up(const config::Config& config, state::StateStore& store, Instant now,
              FailedDates& failed) {
  for (const Pair& pair : pairs(config)) {
    Slot day = Slot::containing(now - kRetention, Granularity::day);
    const Slot today = Slot::containing(now, Granularity::day);
    for (; day < today; day = day.next()) {
      try {
        const std::string date = day.date();
        if (!store.reconciliations(pair.hourly->name, date, date).empty() ||
            store.get_value(skipped_key(pair, date))) {
          continue;
        }
        try_date(store, pair, day, now, config.archive_dir, failed);
      } catch (const std::exception& error) {
        log_failure(pair.hourly->name, day.date(), error.what());
        failed.add(pair.hourly->name, day.date());
      }
    }
  }
}

}  // namespace gio::reconcile
