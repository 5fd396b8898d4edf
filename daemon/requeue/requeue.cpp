#include "requeue/requeue.hpp"

#include <limits>
#include <map>

#include "archive/scrub.hpp"
#include "scheduler/planner.hpp"

namespace gio::requeue {
namespace {

using state::SlotRecord;
using state::SlotState;

// "skipped: lost (the vendor's 15-day retention passed at ...)".
std::string lost_reason(const Slot& slot) {
  return "skipped: lost (the vendor's 15-day retention passed at " + format_utc(slot.lost_at()) +
         ")";
}

std::string state_name(SlotState state) {
  return std::string{to_string(state)};
}

// Collects the decisions of one job's requeue as they are taken.
class Decisions {
 public:
  Decisions(Report& report, std::string job) : report_(report), job_(std::move(job)) {}

  std::optional<state::Requeue> skip(const state::RequeueTarget& target, std::string what) {
    add(target, Outcome::skipped, std::move(what));
    return std::nullopt;
  }
  void add(const state::RequeueTarget& target, Outcome outcome, std::string what) {
    report_.decisions.push_back({job_, target.slot, outcome, std::move(what)});
  }

 private:
  Report& report_;
  std::string job_;
};

// An uploading slot is complete locally: the daemon lands it on its sink.
constexpr const char* kUploadingSkip =
    "skipped: uploading (archived locally; the daemon is landing it on its sink)";

}  // namespace

int Report::count(Outcome outcome) const {
  int count = 0;
  for (const Decision& decision : decisions) {
    count += decision.outcome == outcome ? 1 : 0;
  }
  return count;
}

std::optional<std::vector<Slot>> slots_between(const Slot& from, const Slot& to) {
  std::vector<Slot> slots;
  for (Slot slot = from; slot <= to; slot = slot.next()) {
    if (slots.size() == kMaxBackfillSlots) {
      return std::nullopt;
    }
    slots.push_back(slot);
  }
  return slots;
}

Requeuer::Requeuer(state::StateStore& store, std::filesystem::path archive_dir, Instant now)
    : store_(store), archive_dir_(std::move(archive_dir)), now_(now) {}

Report Requeuer::backfill(const config::Job& job, std::span<const Slot> slots,
                          BackfillOptions options) {
  std::vector<state::RequeueTarget> targets;
  std::map<std::string, Slot> by_name;
  for (const Slot& slot : slots) {
    targets.push_back({slot.name(), slot.start()});
    by_name.emplace(slot.name(), slot);
  }
  Report report;
  Decisions decisions{report, job.name};
  // Done slots to fetch again, with their partitions' data types: those lose _SUCCESS.
  std::vector<std::pair<Slot, std::set<std::string>>> reopen;
  const auto decide =
      [&](const state::RequeueTarget& target,
          const std::optional<SlotRecord>& current) -> std::optional<state::Requeue> {
    const Slot& slot = by_name.at(target.slot);
    if (current && current->state == SlotState::done && !options.force) {
      return decisions.skip(target, "skipped: done (use --force to fetch it again)");
    }
    if (current && current->state == SlotState::downloading) {
      return decisions.skip(target, "skipped: downloading (the daemon is on it)");
    }
    if (current && current->state == SlotState::uploading) {
      return decisions.skip(target, kUploadingSkip);
    }
    if (now_ >= slot.lost_at()) {
      return decisions.skip(target, lost_reason(slot));
    }
    if (const Instant ready = scheduler::ready_at(job, slot); ready > now_) {
      return decisions.skip(
          target, "skipped: not ready until " + format_utc(ready) + " (the daemon plans it then)");
    }
    if (!current) {
      decisions.add(target, Outcome::queued, "queued (not planned before)");
      return state::Requeue{};
    }
    switch (current->state) {
      case SlotState::pending:
      case SlotState::waiting:
        // Attempts and the give_up_after clock are kept: the slot was never given up on.
        decisions.add(target, Outcome::already_queued,
                      "already queued (" + state_name(current->state) + "; due now)");
        return state::Requeue{};
      case SlotState::failed:
      case SlotState::lost:
        // Given up on before: without a fresh give_up_after it would be failed again
        // before it is even asked.
        decisions.add(target, Outcome::queued, "queued (was " + state_name(current->state) + ")");
        return state::Requeue{.reset_attempts = true};
      case SlotState::done:
        decisions.add(target, Outcome::queued, "queued (was done; --force)");
        // Read before requeue deletes the files rows.
        reopen.emplace_back(slot, std::set<std::string>{});
        for (const state::ArchivedFile& file : store_.files(job.name, slot.name())) {
          reopen.back().second.insert(file.data_type);
        }
        return state::Requeue{.reset_attempts = true, .forget_all_files = true};
      case SlotState::downloading:
      case SlotState::uploading:
        break;  // handled above
    }
    return std::nullopt;
  };
  const auto unmark = [&] {
    for (auto& [slot, types] : reopen) {
      for (const std::string& type : archive::partitions_on_disk(archive_dir_, job.name, slot)) {
        types.insert(type);
      }
      for (const std::string& type : types) {
        archive::remove_success_marker(archive_dir_, job.name, type, slot);
      }
    }
  };
  store_.requeue(job.name, targets, decide, now_,
                 {.dry_run = options.dry_run, .before_commit = unmark});
  return report;
}

Report Requeuer::retry(const config::Job& job, const std::optional<Slot>& slot, bool dry_run) {
  std::vector<state::RequeueTarget> targets;
  if (slot) {
    targets.push_back({slot->name(), slot->start()});
  } else {
    for (const SlotRecord& record : store_.slots(
             job.name, from_unix(0), from_unix(std::numeric_limits<std::int32_t>::max()))) {
      if (record.state == SlotState::failed) {
        targets.push_back({record.slot, record.start});
      }
    }
  }
  Report report;
  Decisions decisions{report, job.name};
  const auto decide =
      [&](const state::RequeueTarget& target,
          const std::optional<SlotRecord>& current) -> std::optional<state::Requeue> {
    const auto parsed = Slot::parse(target.slot, job.granularity);
    if (!current || !parsed) {
      return decisions.skip(target, "skipped: not planned yet (use backfill to queue it)");
    }
    switch (current->state) {
      case SlotState::done:
        return decisions.skip(target, "skipped: done (use backfill --force to fetch it again)");
      case SlotState::downloading:
        return decisions.skip(target, "skipped: downloading (the daemon is on it)");
      case SlotState::uploading:
        return decisions.skip(target, kUploadingSkip);
      case SlotState::pending:
      case SlotState::waiting:
        decisions.add(target, Outcome::already_queued,
                      "already queued (" + state_name(current->state) + ")");
        return std::nullopt;
      case SlotState::failed:
      case SlotState::lost:
        // `lost` is retried only while the vendor still has the data (a slot marked
        // lost by a clock that ran ahead, for instance).
        if (now_ >= parsed->lost_at()) {
          return decisions.skip(target, lost_reason(*parsed));
        }
        decisions.add(target, Outcome::queued,
                      "queued (was " + state_name(current->state) +
                          (current->last_error.empty() ? "" : ": " + current->last_error) + ")");
        return state::Requeue{.reset_attempts = true};
    }
    return std::nullopt;
  };
  store_.requeue(job.name, targets, decide, now_, {.dry_run = dry_run});
  return report;
}

Report Requeuer::repair(std::span<const DamagedSlot> damaged) {
  // One transaction per job (requeue works on one job's slots).
  std::map<const config::Job*, std::vector<const DamagedSlot*>> by_job;
  for (const DamagedSlot& slot : damaged) {
    by_job[slot.job].push_back(&slot);
  }
  Report report;
  for (const auto& [job, slots] : by_job) {
    std::vector<state::RequeueTarget> targets;
    std::map<std::string, const DamagedSlot*> by_name;
    for (const DamagedSlot* slot : slots) {
      targets.push_back({slot->slot.name(), slot->slot.start()});
      by_name[slot->slot.name()] = slot;
    }
    Decisions decisions{report, job->name};
    std::vector<const DamagedSlot*> queued;
    const auto decide =
        [&](const state::RequeueTarget& target,
            const std::optional<SlotRecord>& current) -> std::optional<state::Requeue> {
      const DamagedSlot& slot = *by_name.at(target.slot);
      if (now_ >= slot.slot.lost_at()) {
        return decisions.skip(target, "not repairable: the vendor's 15-day retention passed at " +
                                          format_utc(slot.slot.lost_at()));
      }
      if (!current || current->state != SlotState::done) {
        decisions.add(target, Outcome::already_queued,
                      "already queued (" + (current ? state_name(current->state) : "gone") + ")");
        return std::nullopt;
      }
      decisions.add(target, Outcome::queued, "queued");
      queued.push_back(&slot);
      return state::Requeue{.reset_attempts = true, .forget_files = slot.forget};
    };
    const auto unmark = [&, job = job] {
      for (const DamagedSlot* slot : queued) {
        for (const std::string& type : slot->damaged_types) {
          archive::remove_success_marker(archive_dir_, job->name, type, slot->slot);
        }
      }
    };
    store_.requeue(job->name, targets, decide, now_, {.before_commit = unmark});
  }
  return report;
}

}  // namespace gio::requeue
