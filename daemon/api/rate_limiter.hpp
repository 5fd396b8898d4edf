#pragma once

// Spaces the API calls of one project so they never exceed the vendor's rate, hands the
// turns out by priority rather than by arrival, and pauses every call of the project,
// queued ones included, when the API says so (429/503 with Retry-After).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>

#include "slot/slot.hpp"

namespace gio::api {

// What a call is for, most urgent first. A backlog can hold more calls than the rate
// serves quickly, so the calls that protect data already within reach go first.
enum class Priority {
  fresh_links,  // links for a slot being downloaded (they expired or were refused)
  near_loss,    // a slot close to the vendor's 15-day retention
  first_ask,    // the first ask about a slot
  poll,         // asking again about a slot still being exported
  backlog,      // asking again about a slot the vendor knows nothing about (NOT_EXISTS)
};

struct Turn {
  Priority priority = Priority::first_ask;
  // Within one priority, older slots (closer to their loss) go first.
  Instant slot_start = Instant::max();
  // Asked when the turn comes, before anything is sent: true means the caller can no
  // longer use an answer (downloads paused, the state database failing), so the call
  // ends as held (api::Error::held) instead of spending the vendor's budget.
  std::function<bool()> hold{};
};

class RateLimiter {
 public:
  RateLimiter(boost::asio::any_io_executor executor, double requests_per_second);
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Completes when the caller may send its request. Queued callers are served by
  // priority, then slot start, then arrival; never more than the rate in any second.
  boost::asio::awaitable<void> acquire(Turn turn = {});
  // No call starts before `pause` has passed, including those already queued.
  void pause_for(std::chrono::steady_clock::duration pause);

  // The least time between two turns (the rate, rounded down to whole calls per
  // second when above 1, plus a margin for network jitter).
  std::chrono::steady_clock::duration interval() const { return interval_; }

 private:
  struct Waiter {
    Turn turn;
    std::uint64_t arrival;
    boost::asio::steady_timer* wake;  // in the waiting caller's frame
    bool granted = false;
  };
  // Shared with the coroutines that wait on it, so that frames outliving the limiter
  // (destroyed with the io_context after the limiter's owner) never touch freed state.
  struct State {
    boost::asio::any_io_executor executor;
    std::chrono::steady_clock::duration interval;
    std::chrono::steady_clock::time_point next_turn{};  // the earliest the next call may start
    std::list<Waiter> queue;
    std::uint64_t arrivals = 0;
    bool dispatching = false;
  };
  static boost::asio::awaitable<void> dispatch(std::shared_ptr<State> state);

  std::chrono::steady_clock::duration interval_;
  std::shared_ptr<State> state_;
};

}  // namespace gio::api
