// `verify`: re-read done slots' partitions against their manifests and, with --repair,
// queue the damaged ones that the vendor still has.
//
// The reading (archive::scrub_partition) happens outside any transaction, so a long
// scrub never holds the database; the repair is then one transaction that re-checks
// each slot is still done. No Archive object is made: its staging lock is the daemon's.

#include <iostream>
#include <limits>
#include <map>
#include <set>

#include "archive/scrub.hpp"
#include "cli/commands.hpp"
#include "state/state_store.hpp"

namespace gio::cli {
namespace {

using state::SlotRecord;
using state::SlotState;
using Outcome = QueueReport::Outcome;

struct DamagedSlot {
  const config::Job* job;
  Slot slot;
  // Files rows to forget: (data_type, name), name "" for a whole partition.
  std::vector<std::pair<std::string, std::string>> forget;
  std::set<std::string> damaged_types;
};

// What a chart job's part is checked as: chart.json and chart.csv are never gzip;
// user-list files go through the raw download path with the job's verify mode.
archive::VerifyMode mode_of(const config::Job& job) {
  return std::visit(
      config::Overloaded{[&](const config::RawJob&) { return job.verify; },
                         [](const config::ChartJob&) { return archive::VerifyMode::size; },
                         [&](const config::UserListJob&) { return job.verify; }},
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

std::string human_bytes(std::uint64_t bytes) {
  if (bytes >= (1ull << 30)) {
    return std::to_string(bytes >> 30) + "." + std::to_string((bytes >> 20) % 1024 * 10 / 1024) +
           " GiB";
  }
  if (bytes >= (1ull << 20)) {
    return std::to_string(bytes >> 20) + " MiB";
  }
  return std::to_string(bytes) + " bytes";
}

}  // namespace

int verify(const config::Config& config, const config::Job* only_job,
           const std::optional<std::string>& from_text, const std::optional<std::string>& to_text,
           bool repair) {
  if (from_text.has_value() != to_text.has_value()) {
    std::cerr << "gio-exporter: verify takes --from and --to together\n";
    return 1;
  }
  // Which jobs, and the range of each (slot names depend on the job's granularity).
  struct Scope {
    const config::Job* job;
    Instant from, to;  // slot starts, inclusive
  };
  std::vector<Scope> scopes;
  for (const config::Job& job : config.jobs) {
    if (only_job != nullptr && &job != only_job) {
      continue;
    }
    Scope scope{&job, from_unix(0), from_unix(std::numeric_limits<std::int32_t>::max())};
    if (from_text) {
      const auto from = Slot::parse(*from_text, job.granularity);
      const auto to = Slot::parse(*to_text, job.granularity);
      if (!from || !to) {
        if (only_job != nullptr) {
          parse_slot_option(job, from ? "--to" : "--from", from ? *to_text : *from_text);
          return 1;
        }
        continue;  // a range of hours says nothing about a daily job
      }
      if (*to < *from) {
        std::cerr << "gio-exporter: --from " << *from_text << " is after --to " << *to_text << "\n";
        return 1;
      }
      scope.from = from->start();
      scope.to = to->start();
    }
    scopes.push_back(scope);
  }
  if (scopes.empty()) {
    std::cerr << "gio-exporter: --from " << *from_text << " --to " << *to_text
              << " names no slots of any job's granularity\n";
    return 1;
  }

  state::StateStore store{config.state_db};
  std::size_t slots_checked = 0, partitions = 0, files = 0;
  std::uint64_t bytes = 0;
  std::vector<DamagedSlot> damaged;
  for (const Scope& scope : scopes) {
    const config::Job& job = *scope.job;
    for (const SlotRecord& record :
         store.slots(job.name, scope.from, scope.to + std::chrono::seconds{1})) {
      if (record.state != SlotState::done) {
        continue;
      }
      const auto slot = Slot::parse(record.slot, job.granularity);
      if (!slot) {
        continue;  // a row of another granularity (the job was redefined): not ours to judge
      }
      ++slots_checked;
      DamagedSlot found{&job, *slot, {}, {}};
      for (const std::string& type : expected_partitions(config, store, job, *slot)) {
        const archive::PartitionScrub result =
            archive::scrub_partition(config.archive_dir, job.name, type, *slot, mode_of(job));
        ++partitions;
        files += result.files;
        bytes += result.bytes;
        for (const archive::Damage& damage : result.damage) {
          std::cout << job.name << " " << record.slot << " damaged: " << type << "/"
                    << (damage.file.empty() ? std::string{"(partition)"} : damage.file) << ": "
                    << damage.problem << "\n";
          found.forget.emplace_back(type, damage.file);
          found.damaged_types.insert(type);
        }
      }
      if (!found.damaged_types.empty()) {
        damaged.push_back(std::move(found));
      }
    }
  }

  if (repair && !damaged.empty()) {
    const Instant now = command_clock().now();
    QueueReport report;
    std::map<std::pair<const config::Job*, std::string>, const DamagedSlot*> by_slot;
    for (const DamagedSlot& slot : damaged) {
      by_slot[{slot.job, slot.slot.name()}] = &slot;
    }
    // One transaction per job (requeue works on one job's slots).
    std::map<const config::Job*, std::vector<state::RequeueTarget>> targets;
    for (const DamagedSlot& slot : damaged) {
      targets[slot.job].push_back({slot.slot.name(), slot.slot.start()});
    }
    for (const auto& [job, job_targets] : targets) {
      std::vector<const DamagedSlot*> queued;
      const auto decide =
          [&, job = job](
              const state::RequeueTarget& target,
              const std::optional<SlotRecord>& current) -> std::optional<state::Requeue> {
        const DamagedSlot& slot = *by_slot.at({job, target.slot});
        if (now >= slot.slot.lost_at()) {
          report.line(job->name, target.slot, Outcome::skipped,
                      "not repairable: the vendor's 15-day retention passed at " +
                          format_utc(slot.slot.lost_at()));
          return std::nullopt;
        }
        if (!current || current->state != SlotState::done) {
          report.line(
              job->name, target.slot, Outcome::already_queued,
              "already queued (" + std::string{current ? to_string(current->state) : "gone"} + ")");
          return std::nullopt;
        }
        report.line(job->name, target.slot, Outcome::queued, "queued");
        queued.push_back(&slot);
        state::Requeue change{.reset_attempts = true};
        for (const auto& [type, name] : slot.forget) {
          change.forget_files.emplace_back(type, name);
        }
        return change;
      };
      // Inside the transaction, before the daemon can see the slots pending: readers
      // stop trusting the damaged partitions; the daemon marks them again when done.
      const auto unmark = [&, job = job] {
        for (const DamagedSlot* slot : queued) {
          for (const std::string& type : slot->damaged_types) {
            archive::remove_success_marker(config.archive_dir, job->name, type, slot->slot);
          }
        }
      };
      store.requeue(job->name, job_targets, decide, now, {.before_commit = unmark});
    }
    report.summary("repair", false);
  }

  std::cout << "verify: " << slots_checked << " done slot(s), " << partitions << " partition(s), "
            << files << " file(s), " << human_bytes(bytes) << " read; " << damaged.size()
            << " damaged slot(s)\n";
  return damaged.empty() ? 0 : 2;
}

}  // namespace gio::cli
