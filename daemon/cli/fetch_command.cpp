#include "cli/fetch_command.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <exception>
#include <iostream>
#include <thread>

#include "archive/archive.hpp"
#include "cli/byte_text.hpp"
#include "download/downloader.hpp"

namespace gio::download {

namespace asio = boost::asio;

namespace {

// "GET https://host/path: reason" or "https://host/path: reason" -> "reason": the fetch
// line names the URL itself.
std::string_view reason(std::string_view message, const std::string& shown) {
  for (std::string_view prefix : {std::string_view{"GET "}, std::string_view{}}) {
    std::string head = std::string{prefix} + shown + ": ";
    if (message.substr(0, head.size()) == head) {
      return message.substr(head.size());
    }
  }
  return message;
}

// A progress line per file on stderr, for a person watching a terminal: name, bytes,
// rate and time left, redrawn in place at most every kRedrawEvery (one line shared by
// the files in flight), and a final line when the file ends. Nothing when stderr is not
// a terminal (a script, a log), which sees only stdout's OK/FAILED lines.
class ProgressLine final : public FetchListener {
 public:
  static constexpr std::chrono::milliseconds kRedrawEvery{250};

  ProgressLine(std::string name, std::chrono::steady_clock::time_point& last_drawn)
      : name_(std::move(name)), last_drawn_(last_drawn) {}

  void fetched(std::uint64_t bytes, std::optional<std::uint64_t> total) override {
    bytes_ = bytes;
    total_ = total;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_drawn_ < kRedrawEvery) {
      return;
    }
    last_drawn_ = now;
    std::cerr << "\r\033[K" << line(now) << std::flush;
  }

  // The file ended (verified or not): its last figures on a line of their own.
  void finish() {
    std::cerr << "\r\033[K" << line(std::chrono::steady_clock::now()) << "\n" << std::flush;
  }

 private:
  std::string line(std::chrono::steady_clock::time_point now) const {
    const double seconds = std::chrono::duration<double>(now - started_).count();
    const double rate = seconds > 0 ? static_cast<double>(bytes_) / seconds : 0;
    std::string eta = "--:--";
    if (total_ && rate > 0 && *total_ >= bytes_) {
      eta = cli::clock_text(std::chrono::seconds{
          static_cast<std::int64_t>(static_cast<double>(*total_ - bytes_) / rate)});
    }
    return name_ + " " + cli::bytes_of(bytes_, total_) + " " + cli::human_rate(rate) + " ETA " +
           eta;
  }

  std::string name_;
  std::chrono::steady_clock::time_point& last_drawn_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::uint64_t bytes_ = 0;
  std::optional<std::uint64_t> total_;
};

// Publishes a verified file into `dir` and prints its OK line, or prints why it failed;
// true when it is in place.
bool publish(boost::system::result<VerifiedFile, Error>& fetched, const std::string& shown,
             const std::filesystem::path& dir, const std::string& name) {
  if (!fetched) {
    std::cout << "FAILED " << shown << ": " << to_string(fetched.error().kind) << ": "
              << reason(fetched.error().message, shown) << std::endl;
    return false;
  }
  try {
    fetched->file.publish_to(dir, name);
  } catch (const archive::ArchiveError& error) {
    // The staged file goes with `fetched`.
    std::cout << "FAILED " << shown << ": local: publishing into " << dir.string() << ": "
              << error.what() << std::endl;
    return false;
  }
  std::cout << "OK " << name << " " << fetched->bytes << " " << fetched->sha256;
  if (fetched->rows) {
    std::cout << " rows=" << fetched->rows->rows << " columns=" << fetched->rows->columns.size();
  }
  std::cout << std::endl;
  return true;
}

}  // namespace

int run_fetch(std::vector<std::string> urls, std::filesystem::path dir, archive::VerifyMode mode,
              archive::Inflater inflater, int parallel, bool count_rows, http::Settings settings) {
  std::error_code dir_error;
  std::filesystem::create_directories(dir, dir_error);
  if (dir_error) {
    std::cerr << "gio-exporter: cannot create " << dir.string() << ": " << dir_error.message()
              << "\n";
    return 1;
  }
  // Same file system as DIR, so that publishing a file is a rename.
  const std::filesystem::path staging = dir / ".staging";

  // The archive's own naming: sanitized, and every name used once.
  const std::vector<std::string> names = archive::file_names_for_links(urls);

  // The pool is declared after the loop so that it is joined first: its jobs post back
  // to the loop.
  asio::io_context io;
  asio::thread_pool verify_pool{std::max(2u, std::thread::hardware_concurrency())};
  std::optional<http::Client> client;
  try {
    client.emplace(io.get_executor(), std::move(settings));
  } catch (const std::exception& error) {
    std::cerr << "gio-exporter: " << error.what() << "\n";
    return 1;
  }
  Downloader downloader{*client, verify_pool, inflater};

  std::size_t next = 0;
  std::size_t verified = 0;
  const bool draw = ::isatty(STDERR_FILENO) == 1;
  std::chrono::steady_clock::time_point last_drawn{};
  auto worker = [&]() -> asio::awaitable<void> {
    while (next < urls.size()) {
      const std::size_t index = next++;
      const std::string shown = http::redact(urls[index]);
      std::optional<ProgressLine> progress;
      if (draw) {
        progress.emplace(names[index], last_drawn);
      }
      // Named, not braced temporaries in the co_await (GCC 12).
      FetchListener* const listener = progress ? &*progress : nullptr;
      const std::string_view no_split;
      const archive::SplitWindow no_window;
      auto fetched = co_await downloader.fetch(urls[index], staging, mode, count_rows, no_split,
                                               no_window, listener);
      if (progress) {
        progress->finish();
      }
      verified += publish(fetched, shown, dir, names[index]) ? 1 : 0;
    }
  };
  const auto workers = std::min<std::size_t>(std::max(parallel, 1), urls.size());
  for (std::size_t i = 0; i < workers; ++i) {
    asio::co_spawn(io, worker(), [](std::exception_ptr error) {
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          std::cerr << "gio-exporter: fetch: " << e.what() << "\n";
        }
      }
    });
  }
  io.run();
  verify_pool.join();

  std::error_code ignored;
  std::filesystem::remove(staging, ignored);  // only when empty
  return verified == urls.size() ? 0 : 1;
}

}  // namespace gio::download
