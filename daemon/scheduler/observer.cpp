// What slot work tells the scheduler as it happens (work::Observer): log lines and
// metrics only; the outcome of a pass is recorded by settle.cpp.

#include <spdlog/spdlog.h>

#include "ops/exporter_metrics.hpp"
#include "ops/logging.hpp"
#include "scheduler/scheduler.hpp"

namespace gio::scheduler {

using std::chrono::seconds;

void Scheduler::archived(const config::Job& job, std::size_t files, std::uint64_t bytes) {
  count(ops::kArchivedFiles, job.name, static_cast<double>(files));
  count(ops::kArchivedBytes, job.name, static_cast<double>(bytes));
}

void Scheduler::downloaded(std::uint64_t bytes, std::chrono::duration<double> took) {
  metrics_.add(ops::kDownloadBytes, {}, static_cast<double>(bytes));
  metrics_.add(ops::kDownloadSeconds, {}, took.count());
}

// Best effort: a busy or failing database costs this report only, and the next comes in
// a few seconds; the slot's work goes on either way.
void Scheduler::fetching(const config::Job& job, const Slot& slot, std::uint64_t bytes_done,
                         std::optional<std::uint64_t> bytes_total) {
  try {
    store_.set_progress(
        job.name, slot.name(),
        {.bytes_done = bytes_done, .bytes_total = bytes_total, .updated_at = clock_.now()});
  } catch (const state::StateError& error) {
    spdlog::debug("job={} slot={}: progress not recorded: {}", job.name, slot.name(), error.what());
  }
}

void Scheduler::chart_capped(const config::Job& job, const Slot& slot, std::string_view chart_id,
                             std::size_t rows) {
  ops::log_event(ops::Level::warning, "chart_row_cap",
                 "the vendor cuts a chart at " + std::to_string(api::kChartRowCap) +
                     " rows: this result is probably incomplete",
                 {{"job", job.name}, {"slot", slot.name()}, {"chart", chart_id}, {"rows", rows}});
}

void Scheduler::paused(const std::string& reason, seconds pause) {
  ops::log_event(ops::Level::error, "downloads_paused", "downloads paused",
                 {{"retry_in", std::to_string(pause.count()) + "s"}, {"reason", reason}});
}

void Scheduler::resumed(const config::Job& job, const Slot& slot) {
  ops::log_event(ops::Level::info, "downloads_resumed", "downloads resumed",
                 {{"job", job.name}, {"slot", slot.name()}});
}

void Scheduler::part_failed(const config::Job& job, const Slot& slot, std::string_view name,
                            int attempt, int tries, const std::string& error) {
  spdlog::warn("job={} slot={} download of {} failed (try {} of {}): {}", job.name, slot.name(),
               name, attempt, tries, error);
}

void Scheduler::links_expired(const config::Job& job, const Slot& slot) {
  spdlog::info("job={} slot={}: download links expired or were refused; asking for fresh ones",
               job.name, slot.name());
}

// A type the vendor added: archived under its own name; said once per job and run, not
// per slot or part, so that a new type does not flood the log.
void Scheduler::unknown_data_type(const config::Job& job, const Slot& slot, std::string_view type) {
  if (!unknown_types_.emplace(job.name, std::string{type}).second) {
    return;
  }
  ops::log_event(ops::Level::warning, "unknown_data_type",
                 "the API lists a data type this version does not know; archived under its name",
                 {{"job", job.name},
                  {"slot", slot.name()},
                  {"data_type", type},
                  {"folder", (archive_.root() / job.name / type).string()}});
}

void Scheduler::duplicate_part(const config::Job& job, const Slot& slot, std::string_view type,
                               std::string_view name, std::string_view same_as) {
  ops::log_event(ops::Level::warning, "duplicate_part",
                 "two parts of the answer have the same bytes; the partition lists one",
                 {{"job", job.name},
                  {"slot", slot.name()},
                  {"data_type", type},
                  {"left_out", name},
                  {"kept", same_as}});
}

}  // namespace gio::scheduler
