#pragma once

// The re-queue and repair policy of `backfill`, `retry` and `verify --repair`: which
// slots go back in the queue, which are left as they are (and why), and what of an
// earlier archive is forgotten so that it is fetched again.
//
// Each call is one transaction on the shared state database (StateStore::requeue): the
// decision for every slot is taken on its row as it is inside that transaction, so a
// slot the daemon moves to `downloading` meanwhile is never yanked from under it. The
// daemon notices the queued rows by polling the database. A partition that is to be
// fetched again loses its _SUCCESS marker inside that transaction, before the daemon
// can see the slot pending: readers stop trusting it, and the daemon marks it again
// when it is complete.
//
// Nothing here prints: the decisions come back as a Report for the command to show.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "slot/slot.hpp"
#include "state/state_store.hpp"

namespace gio::requeue {

enum class Outcome { queued, already_queued, skipped };

// What happened to one slot; a command shows it as "<job> <slot> <what>".
struct Decision {
  std::string job;
  std::string slot;
  Outcome outcome;
  std::string what;

  friend bool operator==(const Decision&, const Decision&) = default;
};

struct Report {
  std::vector<Decision> decisions;  // in the order the slots were decided
  int count(Outcome outcome) const;
};

// Longest range one backfill takes: more than the vendor's retention holds in hours.
inline constexpr std::size_t kMaxBackfillSlots = 10'000;

// The slots from..to (inclusive) of one job; nullopt when they are more than
// kMaxBackfillSlots.
std::optional<std::vector<Slot>> slots_between(const Slot& from, const Slot& to);

// A done slot that `verify` found damaged.
struct DamagedSlot {
  const config::Job* job;
  Slot slot;
  // Files rows to forget: (data_type, name), name "" for a whole partition.
  std::vector<std::pair<std::string, std::string>> forget;
  std::set<std::string> damaged_types;
};

struct BackfillOptions {
  bool force = false;    // done slots too: their partitions are fetched again whole
  bool dry_run = false;  // decide, then change nothing
};

class Requeuer {
 public:
  // `now` decides what is lost (past the vendor's retention) and what is not ready yet.
  Requeuer(state::StateStore& store, std::filesystem::path archive_dir, Instant now);

  // Queues the job's `slots` again: unplanned, pending, waiting, failed and lost ones
  // (these two with a fresh give_up_after), done ones only with `force`; never a slot
  // that is downloading, past retention or not ready yet.
  Report backfill(const config::Job& job, std::span<const Slot> slots, BackfillOptions options);

  // Queues a failed (or lost, while the vendor still has it) slot again with a fresh
  // give_up_after: `slot`, or every failed slot of the job when it is nullopt.
  Report retry(const config::Job& job, const std::optional<Slot>& slot, bool dry_run);

  // Queues damaged slots that are still done and inside retention, forgetting the
  // damaged files rows so that they are fetched again. One transaction per job.
  Report repair(std::span<const DamagedSlot> damaged);

 private:
  state::StateStore& store_;
  std::filesystem::path archive_dir_;
  Instant now_;
};

}  // namespace gio::requeue
