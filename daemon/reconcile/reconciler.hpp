#pragma once

// Hourly against daily (issue 16), what the daemon does: once a Beijing date's 24 hourly
// slots and its daily slot are all done, each data type's rows are compared
// (compare.hpp), stored (table reconciliations), and logged: event=reconcile_ok, or
// event=reconcile_mismatch with the late rows and the short hours. With
// `on_reconcile_mismatch: refetch` the short hours are queued again, once per date,
// while the vendor still has them. The metrics are read from the stored rows at each
// scrape (cli/daemon_status.cpp).

#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "reconcile/compare.hpp"
#include "slot/slot.hpp"
#include "state/state_store.hpp"

namespace gio::reconcile {

// An hourly raw job and the daily raw job it is compared with.
struct Pair {
  const config::Job* hourly = nullptr;
  const config::Job* daily = nullptr;
  double tolerance_percent() const;
};

// Every pair of the config, in the order of the hourly jobs.
std::vector<Pair> pairs(const config::Config& config);
// The pairs `job` is part of (as the hourly or the daily job): one daily job may be
// named by several hourly jobs.
std::vector<Pair> pairs_of(const config::Config& config, const config::Job& job);

// Whether the date's 24 hourly slots and its daily slot are all done.
bool date_done(state::StateStore& store, const Pair& pair, const Slot& day);

struct DateOutcome {
  std::vector<TypeResult> types;
  std::vector<Skipped> skipped;
  std::vector<std::string> refetched{};  // hourly slots queued again
};

// Compares the date's rows, stores them, logs them, and refetches when so configured.
// The date's slots must all be done (date_done). Throws StateError.
DateOutcome reconcile_date(state::StateStore& store, const Pair& pair, const Slot& day, Instant now,
                           const std::filesystem::path& archive_dir);

// The dates whose reconcile failed (hourly job, date), kept in memory by the daemon and
// tried again at the next slot done; at most kMaxFailedDates (the oldest dates go: the
// next start's catch_up still finds them).
inline constexpr std::size_t kMaxFailedDates = 64;
struct FailedDates {
  std::set<std::pair<std::string, std::string>> dates;
  void add(const std::string& job, const std::string& date);
};

// Called when `slot` of `job` became done: first tries the failed dates again, then
// reconciles the slot's date for every pair of `job` when that completed it. Never
// throws (a failure is logged and remembered in `failed`: the slot's own state is
// settled already).
void after_slot_done(const config::Config& config, state::StateStore& store, const config::Job& job,
                     const Slot& slot, Instant now, FailedDates& failed);

// At start: every date within the vendor's retention whose slots are all done and that
// was neither reconciled nor skipped before. Never throws; a failed date goes to `failed`.
void catch_up(const config::Config& config, state::StateStore& store, Instant now,
              FailedDates& failed);

}  // namespace gio::reconcile
