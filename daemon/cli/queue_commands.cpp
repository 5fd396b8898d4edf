// `backfill` and `retry`: put slots back in the queue of a running (or stopped) daemon.
// What goes back, and how, is the requeue module's policy; these parse and report.

#include <iostream>

#include "cli/archive_binding.hpp"
#include "cli/commands.hpp"
#include "requeue/requeue.hpp"
#include "state/state_store.hpp"

namespace gio::cli {

void print_report(const requeue::Report& report, std::string_view command, bool dry_run) {
  using requeue::Outcome;
  for (const requeue::Decision& decision : report.decisions) {
    std::cout << decision.job << " " << decision.slot << " " << decision.what << "\n";
  }
  std::cout << command << ": " << report.count(Outcome::queued) << " queued, "
            << report.count(Outcome::already_queued) << " already queued, "
            << report.count(Outcome::skipped) << " skipped";
  if (dry_run) {
    std::cout << " (dry run: nothing changed)";
  }
  std::cout << "\n";
}

int backfill(const config::Config& config, const config::Job& job, std::string_view from_text,
             std::string_view to_text, bool force, bool dry_run) {
  const auto range = parse_slot_range(job, from_text, to_text);
  if (!range) {
    return 1;
  }
  const auto slots = requeue::slots_between(range->from, range->to);
  if (!slots) {
    std::cerr << "gio-exporter: " << from_text << ".." << to_text << " is more than "
              << requeue::kMaxBackfillSlots << " slots; the vendor keeps 15 days\n";
    return 1;
  }
  state::StateStore store = open_for_queueing(config);
  requeue::Requeuer requeuer{store, config.archive_dir, command_clock().now()};
  const requeue::Report report =
      requeuer.backfill(job, *slots, {.force = force, .dry_run = dry_run});
  print_report(report, "backfill " + job.name + " " + range->from.name() + ".." + range->to.name(),
               dry_run);
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
  state::StateStore store = open_for_queueing(config);
  requeue::Requeuer requeuer{store, config.archive_dir, command_clock().now()};
  const requeue::Report report = requeuer.retry(job, named, dry_run);
  print_report(report, "retry " + job.name + (named ? " " + named->name() : " --failed"), dry_run);
  return 0;
}

}  // namespace gio::cli
