#pragma once

// Waiting for a state database that another process holds locked (a `retry` or
// `backfill` in its transaction, a backup, an open sqlite3 shell), without blocking the
// event loop. SQLite's own busy timeout waits by sleeping in the calling thread; on the
// loop that stalled /healthz, the metrics, signals and every other slot. So the loop's
// connection gives up after a few milliseconds (kTryTimeout), and the coroutine that
// needs the write waits on a timer and tries again, as long as it takes. A stop leaves
// a waiting write unwritten: the process ends, and the next start redoes it, as after a
// crash (every step is recorded before it is acted on).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace gio::scheduler {

class StoreWaits {
 public:
  // The busy timeout of the loop's connection: the longest one try blocks the loop.
  static constexpr std::chrono::milliseconds kTryTimeout{5};
  // Timer waits between tries: doubling from the first to the last.
  static constexpr std::chrono::milliseconds kFirstWait{50};
  static constexpr std::chrono::milliseconds kLongestWait{1000};
  // A lock held this long is worth a warning (once per lock).
  static constexpr std::chrono::seconds kWarnAfter{30};

  // `database`: the file's path, for the warning.
  StoreWaits(boost::asio::any_io_executor executor, std::string database,
             std::chrono::steady_clock::duration warn_after = kWarnAfter);

  // Runs `call` until it returns without a busy StateError (another process holds the
  // lock), waiting on a timer between tries, so the loop runs meanwhile; any other
  // exception is thrown at once. `call` must be all or nothing (one transaction, and
  // nothing done before it that must not be done twice).
  boost::asio::awaitable<void> retry(std::function<void()> call);

  // For callers that retry on their own (the scheduler's loop): a try failed because
  // the database is locked, or one went through after such failures.
  void busy();
  void answered();
  // How long the database has been found locked, without a write in between; nullopt
  // when the last try went through.
  std::optional<std::chrono::steady_clock::duration> locked_for() const;
  bool warned() const { return warned_; }

 private:
  boost::asio::any_io_executor executor_;
  std::string database_;
  std::chrono::steady_clock::duration warn_after_;
  std::optional<std::chrono::steady_clock::time_point> locked_since_;
  bool warned_ = false;
};

}  // namespace gio::scheduler
