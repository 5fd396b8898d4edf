#pragma once

// What the raw-export and user-list workers share: the daemon's download slots, the
// pause that follows a local write failure, and archiving one answer's parts.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "archive/archive.hpp"
#include "async/async.hpp"
#include "config/config.hpp"
#include "download/downloader.hpp"
#include "slot/slot.hpp"
#include "work/outcome.hpp"

namespace gio::work {

// A file of the slot as recorded in the state store.
struct RecordedFile {
  std::string data_type;
  archive::ManifestFile file;
  // The object it was fetched from: object_of(link). A later answer's part with the same
  // name is this file only when its link names the same object ("" matches none).
  std::string object{};
};

// A download link's object: scheme, host and path, without the query that signs it (nor
// user info or fragment). Two links of one object differ only in their signatures.
std::string object_of(std::string_view link);

// The slot's own record, as far as its worker needs it. The scheduler implements it over
// the state store; a test can keep it in memory.
class Ledger {
 public:
  virtual ~Ledger() = default;
  // The files recorded for the slot by this pass or an earlier, interrupted one.
  virtual std::vector<RecordedFile> recorded() = 0;
  // Recorded before the file is published: a crash in between finds the record, sees no
  // such file in the partition, and fetches it again.
  virtual void record(const RecordedFile& file) = 0;
  // The slot is downloading: recorded before the first byte moves, so that a crash
  // resumes the downloads (with fresh links) on the next start.
  virtual void downloading(std::string_view api_status) = 0;
};

// Told what slot work does as it happens, for the log and the metrics (the scheduler's).
class Observer {
 public:
  virtual ~Observer() = default;
  // Files published into the archive.
  virtual void archived(const config::Job& job, std::size_t files, std::uint64_t bytes) = 0;
  // One part of a slot published into the archive at `file` (a job's sink starts
  // uploading it at once). A no-op unless overridden.
  virtual void published(const config::Job& /*job*/, const Slot& /*slot*/,
                         std::string_view /*data_type*/, const std::filesystem::path& /*file*/) {}
  // One verified download, and how long it took.
  virtual void downloaded(std::uint64_t bytes, std::chrono::duration<double> took) = 0;
  // A chart that reached the vendor's row cap: the vendor cut it, so data is missing.
  virtual void chart_capped(const config::Job& job, const Slot& slot, std::string_view chart_id,
                            std::size_t rows) = 0;
  virtual void paused(const std::string& reason, std::chrono::seconds pause) = 0;
  virtual void resumed(const config::Job& job, const Slot& slot) = 0;
  virtual void part_failed(const config::Job& job, const Slot& slot, std::string_view name,
                           int attempt, int tries, const std::string& error) = 0;
  // How far a slot's downloads have got in this pass: the bytes fetched so far of the
  // parts it fetches (a part tried again counts from 0 again) and their total once every
  // one of them has announced its length. At most every 2 s per slot while bytes move
  // (none for a pass that ends sooner). A no-op unless overridden.
  virtual void fetching(const config::Job& /*job*/, const Slot& /*slot*/,
                        std::uint64_t /*bytes_done*/,
                        std::optional<std::uint64_t> /*bytes_total*/) {}
  // The file host refused a link (most often: it expired); fresh links are asked for.
  virtual void links_expired(const config::Job& job, const Slot& slot) = 0;
  // The answer lists a data type the daemon does not know; it is archived under its own
  // name (a safe folder name). Told once per pass.
  virtual void unknown_data_type(const config::Job& job, const Slot& slot,
                                 std::string_view type) = 0;
  // Two objects of one type came with the same bytes: `name` is left out of the
  // partition (a reader would count its rows twice), `same_as` is listed.
  virtual void duplicate_part(const config::Job& job, const Slot& slot, std::string_view type,
                              std::string_view name, std::string_view same_as) = 0;
};

// Download links by data type (or user-list id), as one answer lists them.
using Links = std::map<std::string, std::vector<std::string>>;

class Downloads {
 public:
  // Tries of one part in one pass before the slot is retried later.
  static constexpr int kTries = 3;
  // A failed local write (disk full, I/O error) pauses every download this long (or
  // for the job's poll_every, when shorter).
  static constexpr std::chrono::seconds kLocalFaultPause{30};

  Downloads(boost::asio::any_io_executor executor, download::Downloader& downloader,
            const archive::Archive& archive, const Clock& clock, int parallel, Observer& observer);

  // No new download try starts after this; the parts in flight end their current try.
  void stop() { stopping_ = true; }
  bool paused() const;
  // A local write failure was seen and no download has succeeded since: once the pause
  // lapses, one slot at a time probes whether the disk has room again.
  bool troubled() const { return !paused_reason_.empty(); }
  // How long the pause still lasts (zero when not paused).
  std::chrono::steady_clock::duration pause_left() const;

  enum class PartsStatus { done, links_expired, retry_later, too_large };
  struct Parts {
    PartsStatus status = PartsStatus::done;
    std::string error{};    // why, unless done
    std::size_t files = 0;  // in the completed partitions
    std::uint64_t bytes = 0;
    // As a pass's result: Done, a Retry (of class links_expired: ask again at once), or
    // Failed (a part larger than limits.max_part_size).
    work::Result result() const;
  };
  // Archives every part of `links` not archived by an earlier pass, then completes each
  // partition: its manifest lists exactly the parts of this answer. A part is one object
  // (a link listed twice is fetched once), named after its link's last segment, with
  // names that collide numbered in the order of their objects, so that an object keeps
  // its name however the answer orders its links. An earlier pass's file counts only
  // when `ledger` records it for the same object under the same name and the partition
  // holds it with the recorded size and sha256 (checked on the download thread pool);
  // any other file under that name is replaced. `progress` counts what was published.
  boost::asio::awaitable<Parts> archive_parts(const config::Job& job, const Slot& slot,
                                              const Links& links, Ledger& ledger,
                                              Progress& progress);

 private:
  struct Part {
    std::string data_type, name, url, object;
  };
  struct Pass;
  class SlotBytes;
  static std::vector<Part> parts_of(const Links& links);
  // The parts an earlier pass archived for good (see archive_parts), by (type, name).
  boost::asio::awaitable<std::set<std::pair<std::string, std::string>>> still_archived(
      const config::Job& job, const Slot& slot, const std::vector<Part>& parts, Ledger& ledger);
  boost::asio::awaitable<void> fetch_part(const config::Job& job, const Slot& slot,
                                          const Part& part, Ledger& ledger, Pass& pass,
                                          download::FetchListener& listener);
  void pause(const std::string& reason, std::chrono::seconds pause);
  void complete_partitions(const config::Job& job, const Slot& slot, const Links& links,
                           const std::vector<Part>& parts, Ledger& ledger, const Pass& pass,
                           Parts& result);

  boost::asio::any_io_executor executor_;
  download::Downloader& downloader_;
  const archive::Archive& archive_;
  const Clock& clock_;
  Observer& observer_;
  async::Semaphore slots_;
  bool stopping_ = false;
  // Set while a local write failure pauses downloads: until when, and why.
  std::chrono::steady_clock::time_point paused_until_{};
  std::string paused_reason_;
};

}  // namespace gio::work
