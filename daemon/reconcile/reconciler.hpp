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
#include <string>
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
// The pair `job` is part of (as the hourly or the daily job), if any.
std::optional<Pair> pair_of(const config::Config& config, const config::Job& job);

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

// Called when `slot` of `job` became done: reconciles its date when that completed it.
// Never throws (a failure is logged: the slot's own state is settled already).
void after_slot_done(const config::Config& config, state::StateStore& store, const config::Job& job,
                     const Slot& slot, Instant now);

// At start: every date within the vendor's retention whose slots are all done and that
// was neither reconciled nor skipped before. Never throws.
void catch_up(const config::Config& config, state::StateStore& store, Instant now);

}  // namespace gio::reconcile
