#include "work/downloads.hpp"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <set>
#include <utility>

#include "archive/csv_rows.hpp"
#include "async/on_pool.hpp"
#include "http/client.hpp"

namespace gio::work {
namespace {

namespace asio = boost::asio;
using std::chrono::seconds;
using TypeAndName = std::pair<std::string, std::string>;

using async::on_pool;

// The event-time column of the vendor's raw exports (milliseconds since the epoch): a
// daily part's rows are split by its Beijing hour, so a day can be set against its hours.
constexpr std::string_view kEventTimeColumn = "time";

bool daily_raw(const config::Job& job) {
  return job.granularity == Granularity::day &&
         std::holds_alternative<config::RawJob>(job.settings);
}

// The Beijing date a daily slot covers, in ms: an event timed on another day (a
// device's clock, a late upload) is counted in the part's rows but in none of its hours.
archive::SplitWindow split_window(const Slot& slot) {
  const auto millis = [](Instant instant) {
    return static_cast<std::uint64_t>(std::max<std::int64_t>(to_unix(instant), 0)) * 1000;
  };
  return {.start_ms = millis(slot.start()), .end_ms = millis(slot.end())};
}

// The ledger's files by (type, name); a later record of a name replaces an earlier one.
std::map<TypeAndName, RecordedFile> recorded_by_name(Ledger& ledger) {
  std::map<TypeAndName, RecordedFile> by_name;
  for (RecordedFile& recorded : ledger.recorded()) {
    TypeAndName key{recorded.data_type, recorded.file.name};
    by_name.insert_or_assign(std::move(key), std::move(recorded));
  }
  return by_name;
}

// How often a slot's bytes are told to the Observer while they move: `status` needs no
// finer, and the scheduler commits (fsyncs) each one.
constexpr std::chrono::seconds kTellBytesEvery{2};

}  // namespace

// The bytes of the parts one pass fetches, summed as each piece arrives (a part tried
// again starts from 0 again), told to the Observer at most every kTellBytesEvery.
class Downloads::SlotBytes {
 public:
  SlotBytes(const config::Job& job, const Slot& slot, std::size_t parts, Observer& observer)
      : job_(job),
        slot_(slot),
        observer_(observer),
        parts_(parts),
        next_tell_(std::chrono::steady_clock::now() + kTellBytesEvery) {}

  // One part's listener (index: its place among the parts fetched).
  class Part final : public download::FetchListener {
   public:
    Part(SlotBytes& bytes, std::size_t index) : bytes_(bytes), index_(index) {}
    void fetched(std::uint64_t done, std::optional<std::uint64_t> total) override {
      bytes_.set(index_, done, total);
    }

   private:
    SlotBytes& bytes_;
    std::size_t index_;
  };

 private:
  struct PartBytes {
    std::uint64_t done = 0;
    std::optional<std::uint64_t> total;
  };

  void set(std::size_t index, std::uint64_t done, std::optional<std::uint64_t> total) {
    PartBytes& part = parts_[index];
    done_ = done_ - part.done + done;
    if (part.total != total) {
      sized_ += (total ? 1 : 0) - (part.total ? 1 : 0);
      total_ = total_ - part.total.value_or(0) + total.value_or(0);
      part.total = total;
    }
    part.done = done;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_tell_) {
      return;
    }
    next_tell_ = now + kTellBytesEvery;
    // The slot's total is known once every part it fetches has announced its length.
    observer_.fetching(job_, slot_, done_,
                       sized_ == parts_.size() ? std::optional{total_} : std::nullopt);
  }

  const config::Job& job_;
  const Slot& slot_;
  Observer& observer_;
  std::vector<PartBytes> parts_;
  std::uint64_t done_ = 0;
  std::uint64_t total_ = 0;
  std::size_t sized_ = 0;
  std::chrono::steady_clock::time_point next_tell_;
};

std::string object_of(std::string_view link) {
  return http::redact(link);
}

// One archive_parts call: what its part tasks share.
struct Downloads::Pass {
  Progress& progress;
  bool links_expired = false;
  std::size_t failed_parts = 0;
  std::string last_error{};
  std::string too_large{};  // the error of a part larger than limits.max_part_size
  // The headers of the parts this pass fetched: the state keeps a part's rows but not
  // its header (an earlier pass's part has its first line read again).
  std::map<TypeAndName, std::vector<std::string>> columns{};
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

std::chrono::steady_clock::duration Downloads::pause_left() const {
  return paused() ? paused_until_ - asio::steady_timer::clock_type::now()
                  : std::chrono::steady_clock::duration::zero();
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
    case PartsStatus::too_large:
      return Failed{.reason = error};
  }
  return Retry{.reason = error};
}

std::vector<Downloads::Part> Downloads::parts_of(const Links& links) {
  std::vector<Part> parts;
  for (const auto& [type, urls] : links) {
    // By object: one part per object (its first link), in the order of the objects.
    std::map<std::string, const std::string*> by_object;
    for (const std::string& url : urls) {
      by_object.try_emplace(object_of(url), &url);
    }
    std::vector<std::string> ordered;
    for (const auto& [object, url] : by_object) {
      ordered.push_back(*url);
    }
    const std::vector<std::string> names = archive::file_names_for_links(ordered);
    std::size_t index = 0;
    for (const auto& [object, url] : by_object) {
      parts.push_back({type, names[index++], *url, object});
    }
  }
  return parts;
}

asio::awaitable<std::set<TypeAndName>> Downloads::still_archived(const config::Job& job,
                                                                 const Slot& slot,
                                                                 const std::vector<Part>& parts,
                                                                 Ledger& ledger) {
  // A recorded file under a part's name counts only when it came from the part's object.
  std::vector<RecordedFile> candidates;
  const std::map<TypeAndName, RecordedFile> recorded = recorded_by_name(ledger);
  for (const Part& part : parts) {
    const auto found = recorded.find({part.data_type, part.name});
    if (found != recorded.end() && found->second.object == part.object) {
      candidates.push_back(found->second);
    }
  }
  if (candidates.empty()) {
    co_return std::set<TypeAndName>{};
  }
  // Re-hashing parts of up to 64 MB each is the download pool's kind of work.
  const auto check = [&archive = archive_, &job, &slot, candidates = std::move(candidates)] {
    std::set<TypeAndName> held;
    for (const RecordedFile& candidate : candidates) {
      try {
        if (archive.holds(job.name, candidate.data_type, slot, candidate.file)) {
          held.emplace(candidate.data_type, candidate.file.name);
        }
      } catch (const std::exception&) {
        // Not known to be held: fetched again, and publishing says what is wrong.
      }
    }
    return held;
  };
  co_return co_await on_pool<std::set<TypeAndName>>(downloader_.verify_pool(), check);
}

asio::awaitable<Downloads::Parts> Downloads::archive_parts(const config::Job& job, const Slot& slot,
                                                           const Links& links, Ledger& ledger,
                                                           Progress& progress) {
  const std::vector<Part> parts = parts_of(links);
  // Files verified and archived by an earlier, interrupted pass are kept.
  const std::set<TypeAndName> archived = co_await still_archived(job, slot, parts, ledger);
  std::vector<Part> missing;
  for (const Part& part : parts) {
    if (!archived.contains({part.data_type, part.name})) {
      missing.push_back(part);
    }
  }

  Pass pass{.progress = progress};
  SlotBytes bytes{job, slot, missing.size(), observer_};
  async::TaskGroup group{executor_};
  for (std::size_t index = 0; index < missing.size(); ++index) {
    group.spawn([&, index]() -> asio::awaitable<void> {
      SlotBytes::Part listener{bytes, index};
      co_await fetch_part(job, slot, missing[index], ledger, pass, listener);
    });
  }
  co_await group.wait();

  Parts result;
  if (pass.links_expired) {
    result.status = PartsStatus::links_expired;
    result.error = pass.last_error;
    observer_.links_expired(job, slot);
  } else if (!pass.too_large.empty()) {
    // The vendor serves the same object again: asking later would download up to the
    // limit each time, for nothing. A person raises the limit and re-queues the slot.
    result.status = PartsStatus::too_large;
    result.error = pass.too_large +
                   "; raise limits.max_part_size if the part is genuine, then `gio-exporter "
                   "retry` the slot";
  } else if (pass.failed_parts > 0) {
    result.status = PartsStatus::retry_later;
    result.error = std::to_string(pass.failed_parts) + " part(s) not archived; last error: " +
                   (pass.last_error.empty() ? "stopped" : pass.last_error);
  } else {
    complete_partitions(job, slot, links, parts, ledger, pass, result);
  }
  co_return result;
}

asio::awaitable<void> Downloads::fetch_part(const config::Job& job, const Slot& slot,
                                            const Part& part, Ledger& ledger, Pass& pass,
                                            download::FetchListener& listener) {
  auto permit = co_await slots_.hold();
  for (int attempt = 1; attempt <= kTries && !pass.links_expired && !stopping_; ++attempt) {
    if (paused()) {
      pass.last_error = "downloads are paused: " + paused_reason_;
      break;
    }
    const auto started = std::chrono::steady_clock::now();
    const std::string_view split_by = daily_raw(job) ? kEventTimeColumn : std::string_view{};
    const archive::SplitWindow window = split_window(slot);
    download::FetchListener* const listening = &listener;
    auto fetched = co_await downloader_.fetch(part.url, archive_.staging_dir(), job.verify, true,
                                              split_by, window, listening);
    if (fetched) {
      observer_.downloaded(fetched->bytes, std::chrono::steady_clock::now() - started);
      if (!paused_reason_.empty()) {
        observer_.resumed(job, slot);
        paused_reason_.clear();
      }
      archive::ManifestFile file{
          .name = part.name, .bytes = fetched->bytes, .sha256 = fetched->sha256};
      if (fetched->rows) {
        file.rows = fetched->rows->rows;
        file.columns = fetched->rows->columns;
        file.rows_by_hour = std::move(fetched->rows->rows_by_hour);
        pass.columns[{part.data_type, part.name}] = std::move(fetched->rows->columns);
      }
      ledger.record({.data_type = part.data_type, .file = file, .object = part.object});
      const std::filesystem::path published =
          archive_.publish(std::move(fetched->file), job.name, part.data_type, slot, part.name);
      observer_.archived(job, 1, file.bytes);
      observer_.published(job, slot, part.data_type, published);
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
    if (error.kind == download::Failure::too_large) {
      pass.too_large = pass.last_error;  // the slot fails: see archive_parts
      break;
    }
    if (error.kind == download::Failure::refused) {
      // Refused again before any connection: the slot is retried later (the next answer
      // may list other hosts).
      break;
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
                                    const std::vector<Part>& parts, Ledger& ledger,
                                    const Pass& pass, Parts& result) {
  // The manifests list exactly the parts of this answer, as recorded when archived: each
  // name once, and each content once.
  std::map<std::string, std::vector<archive::ManifestFile>> files_by_type;
  for (const auto& [type, urls] : links) {
    files_by_type[type];
  }
  const std::map<TypeAndName, RecordedFile> recorded = recorded_by_name(ledger);
  std::map<TypeAndName, std::string> name_by_content;  // (type, sha256) -> the listed name
  for (const Part& part : parts) {
    const auto found = recorded.find({part.data_type, part.name});
    if (found == recorded.end() || found->second.object != part.object) {
      // Every part was archived and recorded just now: only a broken ledger gets here.
      result.status = PartsStatus::retry_later;
      result.error = part.data_type + "/" + part.name + ": archived but not recorded";
      return;
    }
    archive::ManifestFile file = found->second.file;
    if (const auto columns = pass.columns.find({part.data_type, part.name});
        file.columns.empty() && columns != pass.columns.end()) {
      file.columns = columns->second;
    } else if (file.columns.empty() && file.rows) {
      // Counted by an earlier pass, whose header the state does not keep: its first
      // line, read again (a few KiB), so the manifest names the columns all the same.
      file.columns = archive::read_csv_header(
          archive_.partition_dir(job.name, part.data_type, slot) / file.name);
    }
    const auto [first, added] =
        name_by_content.try_emplace({part.data_type, file.sha256}, file.name);
    if (!added) {
      observer_.duplicate_part(job, slot, part.data_type, file.name, first->second);
      continue;
    }
    files_by_type[part.data_type].push_back(std::move(file));
  }
  // Every part is in place: each partition's manifest, then its _SUCCESS.
  const Instant now = clock_.now();
  for (auto& [type, files] : files_by_type) {
    std::sort(files.begin(), files.end(),
              [](const auto& left, const auto& right) { return left.name < right.name; });
    for (const archive::ManifestFile& file : files) {
      ++result.files;
      result.bytes += file.bytes;
    }
    archive::Manifest manifest =
        archive::make_manifest(job.name, type, slot, now, std::move(files));
    if (job.verify == archive::VerifyMode::size) {
      manifest.rows_note = archive::kRowsNotCountedSize;
    }
    archive_.complete_partition(manifest, slot);
  }
}

}  // namespace gio::work
