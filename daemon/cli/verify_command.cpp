// `verify`: re-read done slots' partitions against their manifests and, with --repair,
// queue the damaged ones that the vendor still has.
//
// The reading (archive::scrub_partition) happens outside any transaction, so a long
// scrub never holds the database; the repair is then one transaction that re-checks
// each slot is still done. No Archive object is made: its staging lock is the daemon's.

#include <iostream>
#include <limits>
#include <set>

#include "archive/scrub.hpp"
#include "cli/archive_binding.hpp"
#include "cli/byte_text.hpp"
#include "cli/commands.hpp"
#include "requeue/requeue.hpp"
#include "scheduler/notices.hpp"
#include "state/state_store.hpp"

namespace gio::cli {
namespace {

using state::SlotRecord;
using state::SlotState;

using requeue::DamagedSlot;

// What one verify run read, and what it found.
struct Findings {
  std::size_t slots = 0, partitions = 0, files = 0;
  std::uint64_t bytes = 0;
  std::vector<DamagedSlot> damaged;
};

// How a job's files are checked, and the words that say so. A raw job's parts are gzip
// by the vendor's contract, so they are inflated whatever the job's own verify mode (a
// size-verified job archives a corrupt body of the right length, and only this finds
// it); chart files are never gzip; user-list files are gzip only when the job says so.
struct Checks {
  archive::VerifyMode mode;
  std::string said;
};

Checks checks_of(const config::Job& job, archive::VerifyMode requested) {
  const Checks sized{archive::VerifyMode::size, "size and sha256"};
  const Checks inflated{archive::VerifyMode::gzip, "size, sha256 and the gzip stream to its end"};
  if (requested == archive::VerifyMode::size) {
    return {sized.mode, sized.said + " (--mode size)"};
  }
  return std::visit(
      config::Overloaded{[&](const config::RawJob&) { return inflated; },
                         [&](const config::ChartJob&) {
                           return Checks{sized.mode, sized.said + " (chart files are not gzip)"};
                         },
                         [&](const config::UserListJob&) {
                           return job.verify == archive::VerifyMode::gzip
                                      ? inflated
                                      : Checks{sized.mode, sized.said +
                                                               " (the job's verify: size; its "
                                                               "files are not known to be gzip)"};
                         }},
      job.settings);
}

// Partitions a done slot should have: those its files rows name, one per chart (or
// list) id for chart jobs, and any folder the archive holds at the slot's path. A raw
// data type with no files has no row: it is checked when its folder exists, but a
// deleted empty partition cannot be told from one the API never listed.
std::set<std::string> expected_partitions(const config::Config& config, state::StateStore& store,
                                          const config::Job& job, const Slot& slot) {
  std::set<std::string> types;
  for (const state::ArchivedFile& file : store.files(job.name, slot.name())) {
    types.insert(file.data_type);
  }
  std::visit(config::Overloaded{[](const config::RawJob&) {},
                                [&](const config::ChartJob& chart) {
                                  types.insert(chart.charts.begin(), chart.charts.end());
                                },
                                [&](const config::UserListJob& lists) {
                                  types.insert(lists.lists.begin(), lists.lists.end());
                                }},
             job.settings);
  for (std::string& type : archive::partitions_on_disk(config.archive_dir, job.name, slot)) {
    types.insert(std::move(type));
  }
  return types;
}

// Scrubs every partition of one done slot, printing each damage found.
void scrub_slot(const config::Config& config, state::StateStore& store, const config::Job& job,
                const Slot& slot, archive::VerifyMode mode, Findings& findings) {
  ++findings.slots;
  DamagedSlot found{&job, slot, {}, {}};
  for (const std::string& type : expected_partitions(config, store, job, slot)) {
    const archive::PartitionScrub result =
        archive::scrub_partition(config.archive_dir, job.name, type, slot, mode);
    ++findings.partitions;
    findings.files += result.files;
    findings.bytes += result.bytes;
    for (const archive::Damage& damage : result.damage) {
      std::cout << job.name << " " << slot.name() << " damaged: " << type << "/"
                << (damage.file.empty() ? std::string{"(partition)"} : damage.file) << ": "
                << damage.problem << "\n";
      found.forget.emplace_back(type, damage.file);
      found.damaged_types.insert(type);
    }
  }
  if (!found.damaged_types.empty()) {
    findings.damaged.push_back(std::move(found));
  }
}

}  // namespace

std::optional<std::vector<VerifyScope>> verify_scopes(const config::Config& config,
                                                      const config::Job* only_job,
                                                      const std::optional<std::string>& from,
                                                      const std::optional<std::string>& to) {
  std::vector<VerifyScope> scopes;
  for (const config::Job& job : config.jobs) {
    if (only_job != nullptr && &job != only_job) {
      continue;
    }
    VerifyScope scope{&job, from_unix(0), from_unix(std::numeric_limits<std::int32_t>::max())};
    if (from) {
      const bool fits = Slot::parse(*from, job.granularity) && Slot::parse(*to, job.granularity);
      if (!fits && only_job == nullptr) {
        continue;
      }
      const auto range = parse_slot_range(job, *from, *to);
      if (!range) {
        return std::nullopt;
      }
      scope.from = range->from.start();
      scope.to = range->to.start();
    }
    scopes.push_back(scope);
  }
  if (scopes.empty() && from) {
    std::cerr << "gio-exporter: --from " << *from << " --to " << *to
              << " names no slots of any job's granularity\n";
    return std::nullopt;
  }
  return scopes;
}

int verify(const config::Config& config, const config::Job* only_job,
           const std::optional<std::string>& from_text, const std::optional<std::string>& to_text,
           bool repair, archive::VerifyMode mode) {
  const auto scopes = verify_scopes(config, only_job, from_text, to_text);
  if (!scopes) {
    return 1;
  }
  // Read-only for the reading, so a plain verify never creates or writes the database
  // (it works for a user who may only read it); --repair opens it for writing only
  // when there is something to queue.
  state::StateStore store = open_for_reading(config);
  Findings findings;
  for (const VerifyScope& scope : *scopes) {
    const config::Job& job = *scope.job;
    const Checks checks = checks_of(job, mode);
    const std::size_t slots_before = findings.slots;
    std::size_t pruned = 0;
    for (const SlotRecord& record :
         store.slots(job.name, scope.from, scope.to + std::chrono::seconds{1})) {
      if (record.state != SlotState::done) {
        continue;
      }
      // A landed slot whose local copy went after keep_local is not missing: it is on
      // the sink (verify --sink reads it there).
      if (!job.sink.empty() && (record.notices & scheduler::kNoticeLocalPruned) != 0) {
        ++pruned;
        continue;
      }
      const auto slot = Slot::parse(record.slot, job.granularity);
      if (!slot) {
        continue;  // a row of another granularity (the job was redefined): not ours to judge
      }
      scrub_slot(config, store, job, *slot, checks.mode, findings);
    }
    // What "no damage" means depends on what was read: said for every job.
    std::cout << "verify: " << job.name << ": " << (findings.slots - slots_before)
              << " done slot(s), checked " << checks.said << "\n";
    if (pruned > 0) {
      std::cout << "verify: " << job.name << ": " << pruned
                << " landed slot(s) whose local copy was removed after keep_local (on sink "
                << job.sink << "; verify --sink checks them)\n";
    }
  }
  if (repair && !findings.damaged.empty()) {
    state::StateStore writer = open_for_queueing(config);
    requeue::Requeuer requeuer{writer, config.archive_dir, command_clock().now()};
    print_report(requeuer.repair(findings.damaged), "repair", false);
  }
  std::cout << "verify: " << findings.slots << " done slot(s), " << findings.partitions
            << " partition(s), " << findings.files << " file(s), " << human_bytes(findings.bytes)
            << " read; " << findings.damaged.size() << " damaged slot(s)\n";
  return findings.damaged.empty() ? 0 : 2;
}

}  // namespace gio::cli
