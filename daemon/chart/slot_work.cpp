#include "chart/slot_work.hpp"

#include <spdlog/spdlog.h>

#include <vector>

#include "archive/checksums.hpp"
#include "chart/chart.hpp"

namespace gio::chart {
namespace {

// The two files of one chart as recorded in the state store, when both are still in
// the partition with their recorded size (a symlink never counts).
std::optional<std::vector<archive::ManifestFile>> archived_files(const archive::Archive& archive,
                                                                 state::StateStore& store,
                                                                 const config::Job& job,
                                                                 const std::string& chart_id,
                                                                 const Slot& slot) {
  std::vector<archive::ManifestFile> files;
  for (const state::ArchivedFile& file : store.files(job.name, slot.name())) {
    if (file.data_type != chart_id) {
      continue;
    }
    archive::ManifestFile recorded{.name = file.name, .bytes = file.bytes, .sha256 = file.sha256};
    if (!archive.holds(job.name, chart_id, slot, recorded)) {
      return std::nullopt;
    }
    files.push_back(std::move(recorded));
  }
  if (files.size() != 2) {
    return std::nullopt;
  }
  return files;
}

// Stages both files, records them, publishes them, then completes the partition.
// Recorded before the renames, as for raw parts: a crash in between finds a record
// without its file (or with another size) and fetches the chart again.
std::uint64_t archive_chart(const archive::Archive& archive, state::StateStore& store,
                            const Clock& clock, const config::Job& job, const std::string& chart_id,
                            const Slot& slot, std::string_view json, std::string_view csv) {
  archive::StagedFile json_file = archive.stage_bytes(json);
  archive::StagedFile csv_file = archive.stage_bytes(csv);
  std::vector<archive::ManifestFile> files{
      {.name = std::string{kJsonName}, .bytes = json.size(), .sha256 = archive::sha256_hex(json)},
      {.name = std::string{kCsvName}, .bytes = csv.size(), .sha256 = archive::sha256_hex(csv)},
  };
  for (const archive::ManifestFile& file : files) {
    store.record_file({.job = job.name,
                       .slot = slot.name(),
                       .data_type = chart_id,
                       .name = file.name,
                       .bytes = file.bytes,
                       .sha256 = file.sha256,
                       .archived_at = clock.now()});
  }
  archive.publish(std::move(json_file), job.name, chart_id, slot, kJsonName);
  archive.publish(std::move(csv_file), job.name, chart_id, slot, kCsvName);
  archive.complete_partition(
      archive::make_manifest(job.name, chart_id, slot, clock.now(), std::move(files)), slot);
  return json.size() + csv.size();
}

}  // namespace

boost::asio::awaitable<SlotOutcome> archive_slot(api::Client& api, const archive::Archive& archive,
                                                 state::StateStore& store, const Clock& clock,
                                                 const config::Job& job,
                                                 const config::Project& project, const Slot& slot,
                                                 api::Turn turn) {
  SlotOutcome outcome;
  for (const std::string& chart_id : job.charts) {
    if (auto files = archived_files(archive, store, job, chart_id, slot)) {
      // Archived by an earlier pass; a crash may have come before _SUCCESS.
      if (!archive.is_complete(job.name, chart_id, slot)) {
        archive.complete_partition(
            archive::make_manifest(job.name, chart_id, slot, clock.now(), std::move(*files)),
            slot);
      }
      continue;
    }

    ++outcome.asked;
    auto response = co_await api.get(request_path(job, project.project_uid, chart_id, slot), turn);
    if (!response) {
      const api::Error& error = response.error();
      outcome.result = error.transient ? SlotResult::retry_later : SlotResult::failed;
      outcome.error = "chart " + chart_id + ": " + error.message;
      outcome.retry_after = error.retry_after;
      co_return outcome;
    }
    auto answer = parse_answer(response->body);
    if (!answer) {
      // A garbled or refused answer: asked again later, until give_up_after.
      outcome.result = SlotResult::retry_later;
      outcome.error = "project " + project.name + ": " +
                      std::string{config::to_string(job.resource)} + " " + chart_id + " of " +
                      slot.name() + ": " + answer.error();
      co_return outcome;
    }
    if (answer->doing) {
      ++outcome.waiting;
      continue;  // the others are asked too, so the vendor computes them side by side
    }
    if (answer->rows >= kRowCap) {
      spdlog::warn(
          "event=chart_row_cap job={} slot={} chart={} rows={} (the vendor cuts a chart at {} "
          "rows: this result is probably incomplete)",
          job.name, slot.name(), chart_id, answer->rows, kRowCap);
    }
    outcome.bytes +=
        archive_chart(archive, store, clock, job, chart_id, slot, response->body, answer->csv);
    ++outcome.archived;
    spdlog::debug("job={} slot={} chart {} archived ({} rows)", job.name, slot.name(), chart_id,
                  answer->rows);
  }
  outcome.result = outcome.waiting > 0 ? SlotResult::waiting : SlotResult::done;
  co_return outcome;
}

}  // namespace gio::chart
