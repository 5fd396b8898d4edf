#include "work/downloads.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <set>
#include <utility>

namespace gio::work {
namespace {

namespace asio = boost::asio;
using std::chrono::seconds;

}  // namespace

// One archive_parts call: what its part tasks share.
struct Downloads::Pass {
  Progress& progress;
  bool links_expired = false;
  std::size_t failed_parts = 0;
  std::string last_error{};
};

Downloads::Downloads(asio::any_io_executor executor, download::Downloader& downloader,
                     const archive::Archive& archive, const Clock& clock, int parallel,
                     Observer& observer)
    : executor_(executor),
      downloader_(downloader),
      archive_(archive),
      clock_(clock),
      observer_(observer),
      slots_(executor, parallel) {}

bool Downloads::paused() const {
  return !paused_reason_.empty() && asio::steady_timer::clock_type::now() < paused_until_;
}

void Downloads::pause(const std::string& reason, seconds pause) {
  if (paused_reason_.empty()) {
    observer_.paused(reason, pause);
  }
  paused_reason_ = reason;
  paused_until_ = asio::steady_timer::clock_type::now() + pause;
}

Result Downloads::Parts::result() const {
  switch (status) {
    case PartsStatus::done:
      return Done{.files = files, .bytes = bytes};
    case PartsStatus::links_expired:
      return Retry{.kind = RetryClass::links_expired, .reason = error};
    case PartsStatus::retry_later:
      return Retry{.reason = error};
  }
  return Retry{.reason = error};
}

asio::awaitable<Downloads::Parts> Downloads::archive_parts(const config::Job& job, const Slot& slot,
                                                           const Links& links, Ledger& ledger,
                                                           Progress& progress) {
  // Files verified and archived by an earlier, interrupted pass are kept.
  std::set<std::pair<std::string, std::string>> archived;
  for (const RecordedFile& recorded : ledger.recorded()) {
    if (archive_.holds(job.name, recorded.data_type, slot, recorded.file)) {
      archived.emplace(recorded.data_type, recorded.file.name);
    }
  }
  std::vector<Part> missing;
  for (const auto& [type, urls] : links) {
    const std::vector<std::string> names = archive::file_names_for_links(urls);
    for (std::size_t i = 0; i < urls.size(); ++i) {
      if (!archived.contains({type, names[i]})) {
        missing.push_back({type, names[i], urls[i]});
      }
    }
  }

  Pass pass{.progress = progress};
  async::TaskGroup group{executor_};
  for (const Part& part : missing) {
    group.spawn([&, part]() -> asio::awaitable<void> {
      co_await fetch_part(job, slot, part, ledger, pass);
    });
  }
  co_await group.wait();

  Parts result;
  if (pass.links_expired) {
    result.status = PartsStatus::links_expired;
    result.error = pass.last_error;
    observer_.links_expired(job, slot);
  } else if (pass.failed_parts > 0) {
    result.status = PartsStatus::retry_later;
    result.error = std::to_string(pass.failed_parts) + " part(s) not archived; last error: " +
                   (pass.last_error.empty() ? "stopped" : pass.last_error);
  } else {
    complete_partitions(job, slot, links, ledger, result);
  }
  co_return result;
}

asio::awaitable<void> Downloads::fetch_part(const config::Job& job, const Slot& slot,
                                            const Part& part, Ledger& ledger, Pass& pass) {
  auto permit = co_await slots_.hold();
  for (int attempt = 1; attempt <= kTries && !pass.links_expired && !stopping_; ++attempt) {
    if (paused()) {
      pass.last_error = "downloads are paused: " + paused_reason_;
      break;
    }
    const auto started = std::chrono::steady_clock::now();
    auto fetched = co_await downloader_.fetch(part.url, archive_.staging_dir(), job.verify);
    if (fetched) {
      observer_.downloaded(fetched->bytes, std::chrono::steady_clock::now() - started);
      if (!paused_reason_.empty()) {
        observer_.resumed(job, slot);
        paused_reason_.clear();
      }
      const archive::ManifestFile file{
          .name = part.name, .bytes = fetched->bytes, .sha256 = fetched->sha256};
      ledger.record({.data_type = part.data_type, .file = file});
      archive_.publish(std::move(fetched->file), job.name, part.data_type, slot, part.name);
      observer_.archived(job, 1, file.bytes);
      ++pass.progress.archived_files;
      pass.progress.archived_bytes += file.bytes;
      co_return;
    }
    const download::Error& error = fetched.error();
    pass.last_error = part.data_type + "/" + part.name + ": " +
                      std::string{download::to_string(error.kind)} + ": " + error.message;
    observer_.part_failed(job, slot, part.name, attempt, kTries, pass.last_error);
    if (error.kind == download::Failure::link_rejected) {
      pass.links_expired = true;
      break;
    }
    if (error.kind == download::Failure::refused) {
      break;  // decided here, before any connection: the same link is refused again
    }
    if (error.kind == download::Failure::local) {
      // The disk, not the network: every part would fail the same way.
      pause(error.message, std::min(kLocalFaultPause, job.poll_every));
      break;
    }
    if (attempt < kTries) {
      asio::steady_timer wait{executor_, seconds{attempt}};
      co_await wait.async_wait(asio::use_awaitable);
    }
  }
  ++pass.failed_parts;
}

void Downloads::complete_partitions(const config::Job& job, const Slot& slot, const Links& links,
                                    Ledger& ledger, Parts& result) {
  // The manifests list exactly the parts of this answer, as recorded when archived.
  std::map<std::string, std::vector<archive::ManifestFile>> files_by_type;
  std::set<std::pair<std::string, std::string>> current;
  for (const auto& [type, urls] : links) {
    files_by_type[type];
    for (const std::string& name : archive::file_names_for_links(urls)) {
      current.emplace(type, name);
    }
  }
  for (RecordedFile& recorded : ledger.recorded()) {
    if (current.contains({recorded.data_type, recorded.file.name})) {
      files_by_type[recorded.data_type].push_back(std::move(recorded.file));
    }
  }
  // Every part is in place: each partition's manifest, then its _SUCCESS.
  const Instant now = clock_.now();
  for (auto& [type, files] : files_by_type) {
    for (const archive::ManifestFile& file : files) {
      ++result.files;
      result.bytes += file.bytes;
    }
    archive_.complete_partition(archive::make_manifest(job.name, type, slot, now, std::move(files)),
                                slot);
  }
}

}  // namespace gio::work
