#pragma once

// A download link to a verified file in a staging folder: streamed to disk, hashed and
// (gzip mode) inflated to its end on a thread pool while it arrives, fsynced.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "archive/checksums.hpp"
#include "archive/csv_rows.hpp"
#include "archive/staged_file.hpp"
#include "archive/verify_mode.hpp"
#include "http/client.hpp"

namespace gio::download {

struct VerifiedFile {
  // Synced, in the staging folder: the caller publishes it (Archive::publish) or drops it,
  // which removes it.
  archive::StagedFile file;
  std::uint64_t bytes = 0;
  std::string sha256;  // lowercase hex
  // Its CSV records, counted as the gzip check inflated them (archive/csv_rows.hpp);
  // nullopt unless fetch() was asked to count (only gzip mode can: size mode inflates
  // nothing).
  std::optional<archive::CsvRows> rows{};
};

enum class Failure {
  link_rejected,  // 4xx from the file host: expired or rejected link -> ask the API for fresh links
  server,         // 5xx / 429 / other non-2xx
  network,        // resolve/connect/tls/timeout/reset
  truncated,      // fewer (or more) bytes than Content-Length
  corrupt,        // gzip stream invalid or incomplete (VerifyMode::gzip, or size without a length)
  local,          // writing the staging file failed (disk full, permissions), or too little space
  too_large,      // the body is (or announces) more than Limits::max_part_size
  refused,        // the link or a redirect leads to an internal address (http.allow_private_links)
};
std::string_view to_string(Failure failure);

struct Error {
  Failure kind;
  std::string message;  // names the link only in its http::redact() form
  unsigned status = 0;  // the HTTP status for link_rejected and server
  std::optional<std::chrono::seconds> retry_after = std::nullopt;
};

// What one part may take of the disk.
struct Limits {
  // The vendor's parts are at most 64 MiB; an endless body stops here (config key
  // limits.max_part_size).
  std::uint64_t max_part_size = std::uint64_t{1} << 30;
  // A part whose Content-Length does not fit in the staging file system's free space
  // with this much to spare is not started (the database and manifests need room too).
  std::uint64_t free_space_margin = std::uint64_t{64} << 20;
};

// Hears how a body arrives (progress for `status` and `fetch`): on the loop thread, once
// when a 2xx answer starts (bytes 0; total: its Content-Length, when it has one) and after
// every piece written, with the bytes of this try so far. Called per piece: it must be
// cheap (a listener that does more rate-limits itself).
class FetchListener {
 public:
  virtual ~FetchListener() = default;
  virtual void fetched(std::uint64_t bytes, std::optional<std::uint64_t> total) = 0;
};

class Downloader {
 public:
  // verify_pool: threads that inflate and hash, so that the event loop only moves bytes;
  // inflater: the library that checks gzip streams.
  Downloader(http::Client& client, boost::asio::thread_pool& verify_pool,
             archive::Inflater inflater = archive::best_inflater(), Limits limits = {});

  // Streams `url` into a new StagedFile inside `staging_dir` (created if missing; refused
  // when a symlink), computing its sha256 and, in gzip mode, inflating it to the end of the
  // gzip stream (several members allowed, trailing garbage not); checks Content-Length and
  // syncs the file. On any failure the staging file is removed. Several fetches may run at
  // once. count_rows (gzip mode only): also counts the CSV records in the same pass, and
  // when split_by names a column, splits them by its hour (VerifiedFile::rows), only
  // the records whose time is within split_window in an hour. A
  // string_view rather than a string: no non-trivial temporary in a co_await'ed call
  // (GCC 12); the text is copied before the first suspension. `listener` (when set, it
  // outlives the call) hears the bytes as they arrive.
  boost::asio::awaitable<boost::system::result<VerifiedFile, Error>> fetch(
      std::string url, std::filesystem::path staging_dir, archive::VerifyMode mode,
      bool count_rows = false, std::string_view split_by = {},
      archive::SplitWindow split_window = {}, FetchListener* listener = nullptr);

  // The threads that verify: other blocking reads of the archive (re-hashing an
  // archived part) run there too, off the event loop.
  boost::asio::thread_pool& verify_pool() const { return verify_pool_; }

 private:
  http::Client& client_;
  boost::asio::thread_pool& verify_pool_;
  archive::Inflater inflater_;
  Limits limits_;
};

}  // namespace gio::download
