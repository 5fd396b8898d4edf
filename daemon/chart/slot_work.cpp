#include "chart/slot_work.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "api/chart.hpp"
#include "archive/checksums.hpp"

namespace gio::chart {
namespace {

namespace fs = std::filesystem;

// A file in the staging folder, removed unless published.
class StagedFile {
 public:
  // Writes `content` to a new file in `staging` and fsyncs it: publish() only renames,
  // so the bytes must be durable before the name appears in the partition.
  StagedFile(const fs::path& staging, std::string_view content) {
    static std::atomic<unsigned> counter = 0;
    int fd = -1;
    for (;;) {
      path_ = staging /
              ("chart-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + ".tmp");
      fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
      if (fd >= 0) {
        break;
      }
      if (errno != EEXIST) {
        throw archive::ArchiveError("cannot create", path_, errno);
      }
    }
    const auto fail = [&](std::string_view what) {
      const int error = errno;
      ::close(fd);
      throw archive::ArchiveError(what, path_, error);
    };
    owned_ = true;
    while (!content.empty()) {
      const ssize_t written = ::write(fd, content.data(), content.size());
      if (written < 0) {
        if (errno == EINTR) {
          continue;
        }
        fail("cannot write");
      }
      content.remove_prefix(static_cast<std::size_t>(written));
    }
    if (::fsync(fd) != 0) {
      fail("cannot fsync");
    }
    if (::close(fd) != 0) {
      throw archive::ArchiveError("cannot close", path_, errno);
    }
  }
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  ~StagedFile() {
    if (owned_) {
      std::error_code ignored;
      fs::remove(path_, ignored);
    }
  }
  const fs::path& path() const { return path_; }
  void published() { owned_ = false; }

 private:
  fs::path path_;
  bool owned_ = false;
};

// The two files of one chart as recorded in the state store, when both are still in
// the partition with their recorded size (a symlink never counts).
std::optional<std::vector<archive::ManifestFile>> archived_files(const archive::Archive& archive,
                                                                 state::StateStore& store,
                                                                 const config::Job& job,
                                                                 const std::string& chart_id,
                                                                 const Slot& slot) {
  std::vector<archive::ManifestFile> files;
  const fs::path dir = archive.partition_dir(job.name, chart_id, slot);
  for (const state::ArchivedFile& file : store.files(job.name, slot.name())) {
    if (file.data_type != chart_id) {
      continue;
    }
    std::error_code ec;
    const fs::path path = dir / file.name;
    if (!fs::is_regular_file(fs::symlink_status(path, ec)) ||
        fs::file_size(path, ec) != file.bytes || ec) {
      return std::nullopt;
    }
    files.push_back({.name = file.name, .bytes = file.bytes, .sha256 = file.sha256});
  }
  if (files.size() != 2) {
    return std::nullopt;
  }
  return files;
}

archive::Manifest manifest_for(const config::Job& job, const std::string& chart_id,
                               const Slot& slot, Instant now,
                               std::vector<archive::ManifestFile> files) {
  return {.job = job.name,
          .data_type = chart_id,
          .slot = slot.name(),
          .export_date = slot.export_date(),
          .archived_at = now,
          .files = std::move(files)};
}

// Stages both files, records them, publishes them, then completes the partition.
// Recorded before the renames, as for raw parts: a crash in between finds a record
// without its file (or with another size) and fetches the chart again.
std::uint64_t archive_chart(const archive::Archive& archive, state::StateStore& store,
                            const Clock& clock, const config::Job& job, const std::string& chart_id,
                            const Slot& slot, std::string_view json, std::string_view csv) {
  StagedFile json_file{archive.staging_dir(), json};
  StagedFile csv_file{archive.staging_dir(), csv};
  std::vector<archive::ManifestFile> files{
      {.name = std::string{api::kChartJsonName},
       .bytes = json.size(),
       .sha256 = archive::sha256_hex(json)},
      {.name = std::string{api::kChartCsvName},
       .bytes = csv.size(),
       .sha256 = archive::sha256_hex(csv)},
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
  archive.publish(json_file.path(), job.name, chart_id, slot, api::kChartJsonName);
  json_file.published();
  archive.publish(csv_file.path(), job.name, chart_id, slot, api::kChartCsvName);
  csv_file.published();
  archive.complete_partition(manifest_for(job, chart_id, slot, clock.now(), std::move(files)),
                             slot);
  return json.size() + csv.size();
}

}  // namespace

boost::asio::awaitable<SlotOutcome> archive_slot(api::Client& api, const archive::Archive& archive,
                                                 state::StateStore& store, const Clock& clock,
                                                 const config::Job& job,
                                                 const config::Project& /*project*/,
                                                 const Slot& slot, api::Turn turn) {
  SlotOutcome outcome;
  for (const std::string& chart_id : job.charts) {
    if (auto files = archived_files(archive, store, job, chart_id, slot)) {
      // Archived by an earlier pass; a crash may have come before _SUCCESS.
      if (!archive.is_complete(job.name, chart_id, slot)) {
        archive.complete_partition(
            manifest_for(job, chart_id, slot, clock.now(), std::move(*files)), slot);
      }
      continue;
    }

    ++outcome.asked;
    // A named request: GCC 12 destroys a braced temporary inside co_await twice.
    const api::ChartRequest request{.resource = job.resource,
                                    .chart_id = chart_id,
                                    .interval = job.interval,
                                    .conversion_window = job.conversion_window,
                                    .range = job.range};
    auto answer = co_await api.chart(request, slot, turn);
    if (!answer) {
      // A garbled or refused answer comes back transient: asked again later, until
      // give_up_after.
      const api::Error& error = answer.error();
      outcome.result = error.transient ? SlotResult::retry_later : SlotResult::failed;
      outcome.error = error.message;
      outcome.retry_after = error.retry_after;
      co_return outcome;
    }
    if (answer->status == api::ChartStatus::doing) {
      ++outcome.waiting;
      continue;  // the others are asked too, so the vendor computes them side by side
    }
    if (answer->rows >= api::kChartRowCap) {
      spdlog::warn(
          "event=chart_row_cap job={} slot={} chart={} rows={} (the vendor cuts a chart at {} "
          "rows: this result is probably incomplete)",
          job.name, slot.name(), chart_id, answer->rows, api::kChartRowCap);
    }
    outcome.bytes +=
        archive_chart(archive, store, clock, job, chart_id, slot, answer->body, answer->csv);
    ++outcome.archived;
    spdlog::debug("job={} slot={} chart {} archived ({} rows)", job.name, slot.name(), chart_id,
                  answer->rows);
  }
  outcome.result = outcome.waiting > 0 ? SlotResult::waiting : SlotResult::done;
  co_return outcome;
}

}  // namespace gio::chart
