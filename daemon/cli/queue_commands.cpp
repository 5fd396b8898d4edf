// `backfill` and `retry`: put slots back in the queue of a running (or stopped) daemon.
//
// Each command is one transaction on the shared state database (StateStore::requeue):
// the decision for every slot is taken on the row as it is inside that transaction,
// so a slot the daemon moves to `downloading` meanwhile is never yanked from under it.
// The daemon notices the queued rows by polling the database.

#include <iostream>
#include <limits>
#include <map>
#include <set>

#include "archive/scrub.hpp"
#include "cli/commands.hpp"
#include "scheduler/planner.hpp"
#include "state/state_store.hpp"

namespace gio::cli {
namespace {

// Longest range one backfill takes: more than the vendor's retention holds in hours.
constexpr std::size_t kMaxBackfillSlots = 10'000;

using state::SlotRecord;
using state::SlotState;
using Outcome = QueueReport::Outcome;

}  // namespace

std::optional<Slot> parse_slot_option(const config::Job& job, std::string_view option,
                                      std::string_view text) {
  auto slot = Slot::parse(text, job.granularity);
  if (!slot) {
    std::cerr << "gio-exporter: " << option << " " << text << " is not a slot of job " << job.name
              << " (" << to_string(job.granularity) << " slots are named like "
              << (job.granularity == Granularity::hour ? "2026-11-22T03" : "2026-11-22")
              << ", Beijing time)\n";
  }
  return slot;
}

void QueueReport::line(const std::string& job, const std::string& slot, Outcome outcome,
                       const std::string& what) {
  std::cout << job << " " << slot << " " << what << "\n";
  ++counts_[outcome];
}

void QueueReport::summary(std::string_view command, bool dry_run) const {
  const auto count = [this](Outcome outcome) {
    const auto found = counts_.find(outcome);
    return found == counts_.end() ? 0 : found->second;
  };
  std::cout << command << ": " << count(Outcome::queued) << " queued, "
            << count(Outcome::already_queued) << " already queued, " << count(Outcome::skipped)
            << " skipped";
  if (dry_run) {
    std::cout << " (dry run: nothing changed)";
  }
  std::cout << "\n";
}

std::string lost_reason(const Slot& slot) {
  return "skipped: lost (the vendor's 15-day retention passed at " + format_utc(slot.lost_at()) +
         ")";
}

int backfill(const config::Config& config, const config::Job& job, std::string_view from_text,
             std::string_view to_text, bool force, bool dry_run) {
  const auto from = parse_slot_option(job, "--from", from_text);
  const auto to = parse_slot_option(job, "--to", to_text);
  if (!from || !to) {
    return 1;
  }
  if (*to < *from) {
    std::cerr << "gio-exporter: --from " << from_text << " is after --to " << to_text << "\n";
    return 1;
  }
  std::vector<state::RequeueTarget> targets;
  std::map<std::string, Slot> slots;
  for (Slot slot = *from; slot <= *to; slot = slot.next()) {
    if (targets.size() == kMaxBackfillSlots) {
      std::cerr << "gio-exporter: " << from_text << ".." << to_text << " is more than "
                << kMaxBackfillSlots << " slots; the vendor keeps 15 days\n";
      return 1;
    }
    targets.push_back({slot.name(), slot.start()});
    slots.emplace(slot.name(), slot);
  }

  state::StateStore store{config.state_db};
  const Instant now = command_clock().now();
  QueueReport report;
  // Done slots to fetch again, with their partitions' data types: those lose _SUCCESS.
  std::vector<std::pair<Slot, std::set<std::string>>> reopen;
  const auto decide =
      [&](const state::RequeueTarget& target,
          const std::optional<SlotRecord>& current) -> std::optional<state::Requeue> {
    const Slot& slot = slots.at(target.slot);
    const auto skip = [&](const std::string& why) -> std::optional<state::Requeue> {
      report.line(job.name, target.slot, Outcome::skipped, why);
      return std::nullopt;
    };
    if (current && current->state == SlotState::done && !force) {
      return skip("skipped: done (use --force to fetch it again)");
    }
    if (current && current->state == SlotState::downloading) {
      return skip("skipped: downloading (the daemon is on it)");
    }
    if (now >= slot.lost_at()) {
      return skip(lost_reason(slot));
    }
    if (const Instant ready = scheduler::ready_at(job, slot); ready > now) {
      return skip("skipped: not ready until " + format_utc(ready) + " (the daemon plans it then)");
    }
    if (!current) {
      report.line(job.name, target.slot, Outcome::queued, "queued (not planned before)");
      return state::Requeue{};
    }
    switch (current->state) {
      case SlotState::pending:
      case SlotState::waiting:
        // Attempts and the give_up_after clock are kept: the slot was never given up on.
        report.line(job.name, target.slot, Outcome::already_queued,
                    "already queued (" + std::string{to_string(current->state)} + "; due now)");
        return state::Requeue{};
      case SlotState::failed:
      case SlotState::lost:
        // Given up on before: without a fresh give_up_after it would be failed again
        // before it is even asked.
        report.line(job.name, target.slot, Outcome::queued,
                    "queued (was " + std::string{to_string(current->state)} + ")");
        return state::Requeue{.reset_attempts = true};
      case SlotState::done:
        report.line(job.name, target.slot, Outcome::queued, "queued (was done; --force)");
        // Read before requeue deletes the files rows.
        reopen.emplace_back(slot, std::set<std::string>{});
        for (const state::ArchivedFile& file : store.files(job.name, slot.name())) {
          reopen.back().second.insert(file.data_type);
        }
        return state::Requeue{.reset_attempts = true, .forget_all_files = true};
      case SlotState::downloading:
        break;  // handled above
    }
    return std::nullopt;
  };
  // Inside the transaction, before the daemon can see the slot pending: readers stop
  // trusting the partitions being re-fetched; the daemon writes _SUCCESS again when done.
  const auto unmark = [&] {
    for (auto& [slot, types] : reopen) {
      for (const std::string& type :
           archive::partitions_on_disk(config.archive_dir, job.name, slot)) {
        types.insert(type);
      }
      for (const std::string& type : types) {
        archive::remove_success_marker(config.archive_dir, job.name, type, slot);
      }
    }
  };
  store.requeue(job.name, targets, decide, now, {.dry_run = dry_run, .before_commit = unmark});
  report.summary("backfill " + job.name + " " + from->name() + ".." + to->name(), dry_run);
  return 0;
}

int retry(const config::Config& config, const config::Job& job,
          const std::optional<std::string>& slot_text, bool dry_run) {
  std::optional<Slot> named;
  if (slot_text) {
    named = parse_slot_option(job, "--slot", *slot_text);
    if (!named) {
      return 1;
    }
  }
  state::StateStore store{config.state_db};
  const Instant now = command_clock().now();

  std::vector<state::RequeueTarget> targets;
  if (named) {
    targets.push_back({named->name(), named->start()});
  } else {
    for (const SlotRecord& record :
         store.slots(job.name, from_unix(0), from_unix(std::numeric_limits<std::int32_t>::max()))) {
      if (record.state == SlotState::failed) {
        targets.push_back({record.slot, record.start});
      }
    }
  }

  QueueReport report;
  const auto decide =
      [&](const state::RequeueTarget& target,
          const std::optional<SlotRecord>& current) -> std::optional<state::Requeue> {
    const auto skip = [&](const std::string& why) -> std::optional<state::Requeue> {
      report.line(job.name, target.slot, Outcome::skipped, why);
      return std::nullopt;
    };
    const auto slot = Slot::parse(target.slot, job.granularity);
    if (!current || !slot) {
      return skip("skipped: not planned yet (use backfill to queue it)");
    }
    switch (current->state) {
      case SlotState::done:
        return skip("skipped: done (use backfill --force to fetch it again)");
      case SlotState::downloading:
        return skip("skipped: downloading (the daemon is on it)");
      case SlotState::pending:
      case SlotState::waiting:
        report.line(job.name, target.slot, Outcome::already_queued,
                    "already queued (" + std::string{to_string(current->state)} + ")");
        return std::nullopt;
      case SlotState::failed:
      case SlotState::lost:
        // `lost` is retried only while the vendor still has the data (a slot marked
        // lost by a clock that ran ahead, for instance).
        if (now >= slot->lost_at()) {
          return skip(lost_reason(*slot));
        }
        report.line(job.name, target.slot, Outcome::queued,
                    "queued (was " + std::string{to_string(current->state)} +
                        (current->last_error.empty() ? "" : ": " + current->last_error) + ")");
        return state::Requeue{.reset_attempts = true};
    }
    return std::nullopt;
  };
  store.requeue(job.name, targets, decide, now, {.dry_run = dry_run});
  report.summary("retry " + job.name + (named ? " " + named->name() : " --failed"), dry_run);
  return 0;
}

}  // namespace gio::cli
