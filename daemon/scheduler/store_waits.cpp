#include "scheduler/store_waits.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "ops/logging.hpp"
#include "state/state_error.hpp"

namespace gio::scheduler {

namespace asio = boost::asio;

StoreWaits::StoreWaits(asio::any_io_executor executor, std::string database,
                       std::chrono::steady_clock::duration warn_after)
    : executor_(std::move(executor)), database_(std::move(database)), warn_after_(warn_after) {}

asio::awaitable<void> StoreWaits::retry(std::function<void()> call) {
  std::chrono::milliseconds wait = kFirstWait;
  for (;;) {
    try {
      call();
      answered();
      co_return;
    } catch (const state::StateError& error) {
      if (!error.busy()) {
        throw;
      }
    }
    // Outside the handler: a coroutine cannot suspend inside a catch block.
    busy();
    asio::steady_timer timer{executor_, wait};
    co_await timer.async_wait(asio::use_awaitable);
    wait = std::min(wait * 2, kLongestWait);
  }
}

void StoreWaits::busy() {
  const auto now = std::chrono::steady_clock::now();
  if (!locked_since_) {
    locked_since_ = now;
  }
  if (!warned_ && now - *locked_since_ >= warn_after_) {
    warned_ = true;
    ops::log_event(
        ops::Level::warning, "state_db_locked",
        "the state database is locked by another process; the daemon waits and keeps trying",
        {{"database", database_},
         {"for",
          std::to_string(
              std::chrono::duration_cast<std::chrono::seconds>(now - *locked_since_).count()) +
              "s"},
         {"reason",
          "another process (a backfill, retry or verify --repair, a backup, a sqlite3 "
          "shell) holds a write transaction open"}});
  }
}

void StoreWaits::answered() {
  if (!locked_since_) {
    return;
  }
  if (warned_) {
    ops::log_event(
        ops::Level::info, "state_db_unlocked", "the state database takes writes again",
        {{"database", database_},
         {"locked_for", std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                           std::chrono::steady_clock::now() - *locked_since_)
                                           .count()) +
                            "s"}});
  }
  locked_since_.reset();
  warned_ = false;
}

std::optional<std::chrono::steady_clock::duration> StoreWaits::locked_for() const {
  if (!locked_since_) {
    return std::nullopt;
  }
  return std::chrono::steady_clock::now() - *locked_since_;
}

}  // namespace gio::scheduler
