#include "download/downloader.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>

#include "archive/archive.hpp"
#include "archive/checksums.hpp"

namespace gio::download {

namespace {

namespace asio = boost::asio;
using boost::system::error_code;

// The verifier reads the file back in pieces of this size (from the page cache: the
// bytes were just written), and is woken when at least kBatch new bytes wait for it.
// 64 KiB: a piece stays in the core's cache between the read and the hash or inflate,
// and each of the pool's threads holds one while it checks (256 KiB cost 0.4 MiB of
// the daemon's peak RSS for no speed; scripts/bench_daemon_path.sh).
constexpr std::size_t kReadPiece = 64 << 10;
constexpr std::uint64_t kBatch = 4 << 20;
// The body is written to the staging file in pieces of this size. Since Linux 6.16 ext4
// caches a file in folios as large as the writes that fill it, and a 1 MiB folio needs
// memory compacted when it is fragmented: 16 KiB writes measured steadier and faster on
// a busy machine (scripts/bench-download.sh), and cost only syscalls elsewhere.
constexpr std::size_t kWritePiece = 16 << 10;
// The downloaded file's mode until it is published (the archive then gives it its own).
constexpr unsigned kStagedMode = 0640;

std::string errno_text(int error) {
  return std::generic_category().message(error);
}

struct Problem {
  Failure kind;
  std::string message;
};

// Follows the bytes written to the staging file and checks them on the thread pool:
// one chain hashes, the other (gzip mode) inflates, each reading the written range back
// with pread, so they run in parallel with each other and with the download. The event
// loop only learns about progress through posted completions; everything here except
// the chains' checkers is touched on the loop thread only.
class Verifier : public std::enable_shared_from_this<Verifier> {
 public:
  // `inflater` checks the gzip stream; without one only the hash chain runs. `counter`
  // (with an inflater only) gets the inflated bytes on the gzip chain's thread.
  Verifier(asio::any_io_executor loop, asio::thread_pool& pool,
           std::shared_ptr<archive::StagedFile> file, std::optional<archive::Inflater> inflater,
           std::unique_ptr<archive::CsvRowCounter> counter = nullptr)
      : loop_(std::move(loop)),
        pool_(pool),
        file_(std::move(file)),
        wake_(loop_),
        counter_(std::move(counter)) {
    chains_[0].active = true;
    chains_[1].active = inflater.has_value();
    if (inflater) {
      gzip_ = std::make_unique<archive::GzipChecker>(*inflater);
      gzip_->count_rows(counter_.get());
    }
  }

  // Loop thread: `size` more bytes are in the file.
  void written(std::uint64_t size) {
    written_ += size;
    kick(0);
    kick(1);
  }

  const std::optional<Problem>& problem() const { return problem_; }

  // Loop thread: waits until both chains have checked every written byte, or one failed.
  asio::awaitable<void> finish() {
    finished_ = true;
    kick(0);
    kick(1);
    while (!settled()) {
      wake_.expires_at(asio::steady_timer::time_point::max());
      co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }

  // Loop thread, after finish(): syncs (fsync + close) the staged file on the pool;
  // returns why it failed, or nullopt.
  asio::awaitable<std::optional<std::string>> sync() {
    // Posted jobs rather than co_spawn with a capturing lambda: GCC 12 destroys such a
    // temporary twice when it sits in a co_await expression.
    synced_ = false;
    asio::post(pool_, [self = shared_from_this()]() mutable {
      std::optional<std::string> result;
      try {
        self->file_->sync();  // no check reads the file any more: the chains are settled
      } catch (const std::exception& error) {
        result = error.what();
      }
      const asio::any_io_executor loop = self->loop_;
      asio::post(loop, [self = std::move(self), result = std::move(result)]() mutable {
        self->sync_error_ = std::move(result);
        self->synced_ = true;
        self->wake_.cancel();
      });
    });
    while (!synced_) {
      wake_.expires_at(asio::steady_timer::time_point::max());
      co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return sync_error_;
  }

  // Loop thread, after finish(): the checkers are idle, so reading them is safe.
  std::string sha256() { return sha_.hex(); }
  bool gzip_complete() const { return gzip_ && gzip_->complete(); }
  // Loop thread, after finish() found the stream whole: the counts, if counted.
  std::optional<archive::CsvRows> rows() {
    if (!counter_ || !gzip_) {
      return std::nullopt;
    }
    return counter_->finish();
  }

  // Loop thread: stop handing out work (the download failed).
  void abandon() { abandoned_ = true; }

  // Loop thread, before finish(): also inflate the bytes, from the first one (a size-mode
  // part that came without Content-Length, see fetch()). Throws as GzipChecker does.
  void check_gzip_too(archive::Inflater inflater) {
    if (!gzip_) {
      gzip_ = std::make_unique<archive::GzipChecker>(inflater);
      chains_[1] = Chain{.active = true};
    }
  }

 private:
  struct Chain {
    bool active = false;
    bool busy = false;
    std::uint64_t done = 0;
  };

  bool settled() const {
    if (problem_) {
      return !chains_[0].busy && !chains_[1].busy;
    }
    for (const Chain& chain : chains_) {
      if (chain.active && (chain.busy || chain.done != written_)) {
        return false;
      }
    }
    return true;
  }

  void kick(int index) {
    Chain& chain = chains_[index];
    if (!chain.active || chain.busy || problem_ || abandoned_) {
      return;
    }
    const std::uint64_t pending = written_ - chain.done;
    if (pending == 0 || (pending < kBatch && !finished_)) {
      return;
    }
    chain.busy = true;
    // The reference travels back with the result, so that the verifier (and its timer,
    // a loop object) is only ever released on the loop thread.
    asio::post(pool_, [self = shared_from_this(), index, from = chain.done,
                       to = written_]() mutable {
      std::optional<Problem> problem = self->check(index, from, to);
      const asio::any_io_executor loop = self->loop_;
      asio::post(loop, [self = std::move(self), index, to, problem = std::move(problem)]() mutable {
        self->checked(index, to, std::move(problem));
      });
    });
  }

  // Loop thread.
  void checked(int index, std::uint64_t to, std::optional<Problem> problem) {
    chains_[index].busy = false;
    chains_[index].done = to;
    if (problem && !problem_) {
      problem_ = std::move(problem);
    }
    kick(index);
    wake_.cancel();
  }

  // Pool thread; one job per chain at a time, so a chain's checker is never shared.
  std::optional<Problem> check(int index, std::uint64_t from, std::uint64_t to) {
    std::vector<char> piece(
        static_cast<std::size_t>(std::min<std::uint64_t>(kReadPiece, to - from)));
    for (std::uint64_t at = from; at < to;) {
      const std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), to - at));
      const ssize_t got = ::pread(file_->fd(), piece.data(), want, static_cast<off_t>(at));
      if (got < 0 && errno == EINTR) {
        continue;
      }
      if (got <= 0) {
        return Problem{Failure::local, "reading back the staging file: " +
                                           (got < 0 ? errno_text(errno) : "unexpected end")};
      }
      const auto size = static_cast<std::size_t>(got);
      try {
        if (index == 0) {
          sha_.update(piece.data(), size);
        } else if (auto bad = gzip_->feed(piece.data(), size, at)) {
          return Problem{Failure::corrupt, std::move(*bad)};
        }
      } catch (const std::exception& error) {
        return Problem{Failure::local, error.what()};
      }
      at += size;
    }
    if (index == 0) {
      // Start writing the checked range to disk now, so that the fsync at the end has
      // little left to wait for and a large file never sits in memory as dirty pages.
      // Only a hint: the fsync still decides, so a failure here is not one.
      ::sync_file_range(file_->fd(), static_cast<off_t>(from), static_cast<off_t>(to - from),
                        SYNC_FILE_RANGE_WRITE);
    }
    return std::nullopt;
  }

  asio::any_io_executor loop_;
  asio::thread_pool& pool_;
  // Shared: a pool job may outlive the fetch if the loop is torn down, and the staged file
  // is removed only when the last of them lets go.
  std::shared_ptr<archive::StagedFile> file_;
  asio::steady_timer wake_;
  std::array<Chain, 2> chains_;
  std::uint64_t written_ = 0;
  bool finished_ = false;
  bool abandoned_ = false;
  bool synced_ = false;
  std::optional<std::string> sync_error_;
  std::optional<Problem> problem_;
  archive::Sha256 sha_;
  std::unique_ptr<archive::CsvRowCounter> counter_;  // before gzip_, which points to it
  std::unique_ptr<archive::GzipChecker> gzip_;
};

// Writes the body to the staging file on the loop thread (a write to the page cache) and
// tells the verifier; stops the download early once the verifier found the data bad, or
// the body outgrew the part size limit, and refuses before the first byte a body whose
// Content-Length is over that limit or does not fit in the free space.
class FileSink : public http::BodySink {
 public:
  FileSink(archive::StagedFile& file, Verifier& verifier, const Limits& limits,
           FetchListener* listener)
      : file_(file), verifier_(verifier), limits_(limits), listener_(listener) {}

  void begin(std::optional<std::uint64_t> content_length) override {
    if (listener_ != nullptr) {
      total_ = content_length;
      listener_->fetched(0, total_);
    }
    if (!content_length) {
      return;  // chunked or ended by the connection: write() watches the limit
    }
    if (*content_length > limits_.max_part_size) {
      refuse(Failure::too_large, "Content-Length " + std::to_string(*content_length) +
                                     " is more than limits.max_part_size (" + limit_text() + ")");
    }
    check_free_space(*content_length);
  }

  void write(const char* data, std::size_t size) override {
    if (verifier_.problem()) {
      throw std::runtime_error("download stopped: " + verifier_.problem()->message);
    }
    if (size > limits_.max_part_size - received_) {
      // Nothing past the limit reaches the disk: an endless body costs at most this.
      refuse(Failure::too_large, "the body grew past limits.max_part_size (" + limit_text() +
                                     "); stopped after " + std::to_string(received_) + " bytes");
    }
    received_ += size;
    for (std::size_t done = 0; done < size; done += kWritePiece) {
      file_.write({data + done, std::min(kWritePiece, size - done)});
    }
    verifier_.written(size);
    if (listener_ != nullptr) {
      listener_->fetched(received_, total_);
    }
  }

  // Why the sink stopped the download, when it did.
  const std::optional<Problem>& problem() const { return problem_; }

 private:
  [[noreturn]] void refuse(Failure kind, std::string message) {
    problem_ = Problem{kind, message};
    throw std::runtime_error(std::move(message));
  }

  std::string limit_text() const { return std::to_string(limits_.max_part_size) + " bytes"; }

  // The part and a margin must fit in what the staging file system has left; else it is
  // a local fault (downloads pause) rather than a disk filled to the last byte.
  void check_free_space(std::uint64_t content_length) {
    struct statvfs info {};
    if (::fstatvfs(file_.fd(), &info) != 0) {
      return;  // no answer is no reason to refuse: the writes still fail on a full disk
    }
    const std::uint64_t available = static_cast<std::uint64_t>(info.f_bavail) * info.f_frsize;
    const std::uint64_t margin = limits_.free_space_margin;
    if (content_length > available || available - content_length < margin) {
      refuse(Failure::local, "not enough free space in " + file_.path().parent_path().string() +
                                 " for this part: it needs " + std::to_string(content_length) +
                                 " bytes (its Content-Length) and a margin of " +
                                 std::to_string(margin) + " bytes; " + std::to_string(available) +
                                 " bytes free");
    }
  }

  archive::StagedFile& file_;
  Verifier& verifier_;
  const Limits& limits_;
  FetchListener* listener_;
  std::optional<std::uint64_t> total_;
  std::uint64_t received_ = 0;
  std::optional<Problem> problem_;
};

// Whether a size-mode part that came without Content-Length is a gzip stream worth
// inflating: its link names a .gz file, or its first bytes are the gzip magic.
bool looks_like_gzip(const archive::StagedFile& file, std::string_view shown,
                     std::string_view final_shown) {
  if (shown.ends_with(".gz") || final_shown.ends_with(".gz")) {
    return true;
  }
  std::array<unsigned char, 2> magic{};
  return ::pread(file.fd(), magic.data(), magic.size(), 0) == 2 && magic[0] == 0x1f &&
         magic[1] == 0x8b;
}

Failure from_http(http::Failure failure) {
  switch (failure) {
    case http::Failure::resolve:
    case http::Failure::connect:
    case http::Failure::tls:
    case http::Failure::timeout:
    case http::Failure::reset:
      return Failure::network;
    case http::Failure::io:
      return Failure::local;
    case http::Failure::protocol:
    case http::Failure::too_large:
    case http::Failure::redirect:
      return Failure::server;
    case http::Failure::refused:
      return Failure::refused;
  }
  return Failure::server;
}

}  // namespace

std::string_view to_string(Failure failure) {
  switch (failure) {
    case Failure::link_rejected:
      return "link_rejected";
    case Failure::server:
      return "server";
    case Failure::network:
      return "network";
    case Failure::truncated:
      return "truncated";
    case Failure::corrupt:
      return "corrupt";
    case Failure::local:
      return "local";
    case Failure::too_large:
      return "too_large";
    case Failure::refused:
      return "refused";
  }
  return "unknown";
}

Downloader::Downloader(http::Client& client, asio::thread_pool& verify_pool,
                       archive::Inflater inflater, Limits limits)
    : client_(client), verify_pool_(verify_pool), inflater_(inflater), limits_(limits) {}

asio::awaitable<boost::system::result<VerifiedFile, Error>> Downloader::fetch(
    std::string url, std::filesystem::path staging_dir, archive::VerifyMode mode, bool count_rows,
    std::string_view split_by, archive::SplitWindow split_window, FetchListener* listener) {
  const std::string shown = http::redact(url);
  // Size mode counts nothing, even when a part without Content-Length gets the gzip
  // check after all: a job's parts are counted all or none.
  std::unique_ptr<archive::CsvRowCounter> counter;
  if (count_rows && mode == archive::VerifyMode::gzip) {
    counter = split_by.empty()
                  ? std::make_unique<archive::CsvRowCounter>()
                  : std::make_unique<archive::CsvRowCounter>(std::string{split_by}, split_window);
  }

  // The staging file: a fresh name in the staging folder, removed unless returned.
  std::error_code dir_error;
  std::filesystem::create_directories(staging_dir, dir_error);
  if (dir_error) {
    co_return Error{Failure::local, "creating the staging folder " + staging_dir.string() + ": " +
                                        dir_error.message()};
  }
  std::shared_ptr<archive::StagedFile> staged;
  try {
    staged = std::make_shared<archive::StagedFile>(
        archive::StagedFile::create(staging_dir, "fetch", kStagedMode));
  } catch (const archive::ArchiveError& error) {
    co_return Error{Failure::local, error.what()};
  }

  const auto executor = co_await asio::this_coro::executor;
  auto verifier = std::make_shared<Verifier>(
      executor, verify_pool_, staged,
      mode == archive::VerifyMode::gzip ? std::optional{inflater_} : std::nullopt,
      std::move(counter));
  // Whatever way this coroutine ends, checks still queued on the pool stop there.
  struct Abandon {
    Verifier& verifier;
    ~Abandon() { verifier.abandon(); }
  } abandon_on_exit{*verifier};

  FileSink sink{*staged, *verifier, limits_, listener};
  // A named argument, not a braced temporary in the co_await (GCC 12 miscompiles those).
  std::vector<http::Header> no_headers;
  auto response = co_await client_.download(url, std::move(no_headers), sink);
  if (!response) {
    const http::Error& error = response.error();
    if (error.kind == http::Failure::io && sink.problem()) {
      // The sink refused the body: over the size limit, or no room for it.
      co_return Error{sink.problem()->kind, shown + ": " + sink.problem()->message};
    }
    if (error.kind == http::Failure::io && verifier->problem()) {
      // The sink stopped the download because the verifier had found the data bad.
      co_return Error{verifier->problem()->kind, shown + ": " + verifier->problem()->message};
    }
    co_return Error{error.truncated || error.overlong ? Failure::truncated : from_http(error.kind),
                    error.message};
  }

  const unsigned status = response->status;
  if (status < 200 || status >= 300) {
    const bool rejected = status >= 400 && status < 500 && status != 429;
    // The body is not quoted: object stores echo the request, signature included.
    co_return Error{rejected ? Failure::link_rejected : Failure::server,
                    shown + ": answered HTTP " + std::to_string(status) +
                        (rejected ? " (link expired or rejected)" : ""),
                    status, response->retry_after};
  }
  if (response->content_length && *response->content_length != response->body_bytes) {
    co_return Error{Failure::truncated,
                    shown + ": received " + std::to_string(response->body_bytes) +
                        " bytes, Content-Length says " + std::to_string(*response->content_length)};
  }

  // Size mode trusts the length; without one, a body cut off when the connection closed
  // looks whole, so a gzip part gets the full check after all.
  bool gzip = mode == archive::VerifyMode::gzip;
  std::string why;
  if (!gzip && !response->content_length &&
      looks_like_gzip(*staged, shown, http::redact(response->final_url))) {
    try {
      verifier->check_gzip_too(inflater_);
    } catch (const std::exception& error) {
      co_return Error{Failure::local, error.what()};
    }
    gzip = true;
    why = " (no Content-Length, so the gzip stream was checked)";
  }
  co_await verifier->finish();
  if (const auto& problem = verifier->problem()) {
    co_return Error{problem->kind, shown + ": " + problem->message + why};
  }
  if (gzip && !verifier->gzip_complete()) {
    co_return Error{Failure::corrupt, shown + ": the gzip stream ends early, after " +
                                          std::to_string(response->body_bytes) + " bytes" + why};
  }

  // fsync can take a while for a large file: on the pool, not the loop.
  if (auto sync_error = co_await verifier->sync()) {
    co_return Error{Failure::local, std::move(*sync_error)};
  }
  co_return VerifiedFile{std::move(*staged), response->body_bytes, verifier->sha256(),
                         verifier->rows()};
}

}  // namespace gio::download
