// The chart pass: every chart id of the slot asked for, and every finished document
// archived as <job>/<chart_id>/dt=.../[hour=HH/]{chart.json, chart.csv, _manifest.json,
// _SUCCESS}. Charts archived by an earlier pass are never asked for again.

#include "archive/checksums.hpp"
#include "work/slot_work.hpp"

namespace gio::work {
namespace {

namespace asio = boost::asio;

// The two files of one chart as recorded, when both are still in the partition.
std::optional<std::vector<archive::ManifestFile>> archived_files(const SlotWork& work,
                                                                 const std::string& chart_id) {
  std::vector<archive::ManifestFile> files;
  for (RecordedFile& recorded : work.ledger.recorded()) {
    if (recorded.data_type != chart_id) {
      continue;
    }
    if (!work.archive.holds(work.job.name, chart_id, work.slot, recorded.file)) {
      return std::nullopt;
    }
    files.push_back(std::move(recorded.file));
  }
  if (files.size() != 2) {
    return std::nullopt;
  }
  return files;
}

// The chart's partition manifest: its rows are chart.csv's (chart.json holds the same
// data as the vendor's document, not a table), hence a null total with that note.
archive::Manifest chart_manifest(const SlotWork& work, const std::string& chart_id,
                                 std::vector<archive::ManifestFile> files) {
  archive::Manifest manifest = archive::make_manifest(work.job.name, chart_id, work.slot,
                                                      work.clock.now(), std::move(files));
  manifest.rows_note = "not counted for chart.json: see chart.csv's rows";
  return manifest;
}

// Stages both files, records them, publishes them, then completes the partition.
// Recorded before the renames, as for raw parts: a crash in between finds a record
// without its file (or with another size) and fetches the chart again.
void archive_chart(const SlotWork& work, const std::string& chart_id,
                   const api::ChartAnswer& answer) {
  archive::StagedFile json = work.archive.stage_bytes(answer.body);
  archive::StagedFile csv = work.archive.stage_bytes(answer.csv);
  std::vector<archive::ManifestFile> files{
      {.name = std::string{api::kChartJsonName},
       .bytes = answer.body.size(),
       .sha256 = archive::sha256_hex(answer.body)},
      {.name = std::string{api::kChartCsvName},
       .bytes = answer.csv.size(),
       .sha256 = archive::sha256_hex(answer.csv),
       // The rows as the document has them (chart.csv is written from them, one each):
       // a chart at the vendor's cap (api::kChartRowCap) shows in `gaps` from the state.
       .rows = answer.rows,
       .columns = answer.columns},
  };
  for (const archive::ManifestFile& file : files) {
    work.ledger.record({.data_type = chart_id, .file = file});
  }
  work.archive.publish(std::move(json), work.job.name, chart_id, work.slot, api::kChartJsonName);
  work.archive.publish(std::move(csv), work.job.name, chart_id, work.slot, api::kChartCsvName);
  work.archive.complete_partition(chart_manifest(work, chart_id, std::move(files)), work.slot);
}

}  // namespace

asio::awaitable<Outcome> chart(const SlotWork& work, const config::ChartJob& chart) {
  Outcome outcome;
  int waiting = 0;
  for (const std::string& chart_id : chart.charts) {
    if (auto files = archived_files(work, chart_id)) {
      // Archived by an earlier pass; a crash may have come before _SUCCESS.
      if (!work.archive.is_complete(work.job.name, chart_id, work.slot)) {
        work.archive.complete_partition(chart_manifest(work, chart_id, std::move(*files)),
                                        work.slot);
      }
      continue;
    }
    outcome.progress.asked = true;
    const api::ChartRequest request{.resource = chart.resource,
                                    .chart_id = chart_id,
                                    .interval = chart.interval,
                                    .conversion_window = chart.conversion_window,
                                    .range = chart.range};
    auto answer = co_await work.api.chart(request, work.slot, work.turn);
    if (!answer) {
      // Stops at the first failure; charts archived before it stay archived.
      outcome.result = result_of(answer.error());
      co_return outcome;
    }
    if (answer->status == api::ChartStatus::doing) {
      ++waiting;
      continue;  // the others are asked too, so the vendor computes them side by side
    }
    if (answer->rows >= api::kChartRowCap) {
      work.observer.chart_capped(work.job, work.slot, chart_id, answer->rows);
    }
    archive_chart(work, chart_id, *answer);
    const std::uint64_t bytes = answer->body.size() + answer->csv.size();
    work.observer.archived(work.job, 2, bytes);
    outcome.progress.archived_files += 2;
    outcome.progress.archived_bytes += bytes;
  }
  if (waiting > 0) {
    // Charts archived in this pass stay archived; only the "doing" ones are asked again.
    outcome.result = Wait{.api_status = std::string{api::to_string(api::ChartStatus::doing)},
                          .detail = " charts_doing=" + std::to_string(waiting)};
  } else {
    outcome.result =
        Done{.files = outcome.progress.archived_files,
             .bytes = outcome.progress.archived_bytes,
             .items = "charts=" + std::to_string(chart.charts.size()),
             .api_status = outcome.progress.asked
                               ? std::optional<std::string>{api::to_string(api::ChartStatus::done)}
                               : std::nullopt};
  }
  co_return outcome;
}

}  // namespace gio::work
