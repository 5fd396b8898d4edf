#include "api/rate_limiter.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>

namespace gio::api {

namespace asio = boost::asio;
using Steady = std::chrono::steady_clock;

namespace {

// The vendor counts calls on arrival; a call that needs a new connection reaches it a
// little later than one on a kept-alive connection, so calls sent exactly 1/rate apart
// could still arrive closer together than the limit allows: a tenth more (50 ms at
// 2 per second).
constexpr double kJitterMargin = 1.1;

Steady::duration spacing(double requests_per_second) {
  // "At most 2.5 per second" still means at most 2 in any one second.
  const double per_second =
      requests_per_second >= 1 ? std::floor(requests_per_second) : requests_per_second;
  return std::chrono::duration_cast<Steady::duration>(
      std::chrono::duration<double>(kJitterMargin / per_second));
}

bool before(const auto& a, const auto& b) {
  if (a.turn.priority != b.turn.priority) {
    return a.turn.priority < b.turn.priority;
  }
  if (a.turn.slot_start != b.turn.slot_start) {
    return a.turn.slot_start < b.turn.slot_start;
  }
  return a.arrival < b.arrival;
}

}  // namespace

RateLimiter::RateLimiter(asio::any_io_executor executor, double requests_per_second)
    : interval_(spacing(requests_per_second)), state_(std::make_shared<State>()) {
  state_->executor = std::move(executor);
  state_->interval = interval_;
}

asio::awaitable<void> RateLimiter::acquire(Turn turn) {
  const std::shared_ptr<State> state = state_;
  const auto now = Steady::now();
  if (state->queue.empty() && now >= state->next_turn) {
    state->next_turn = now + state->interval;
    co_return;
  }
  asio::steady_timer wake{state->executor, asio::steady_timer::time_point::max()};
  const auto me = state->queue.insert(
      state->queue.end(), Waiter{.turn = turn, .arrival = state->arrivals++, .wake = &wake});
  // A caller that goes away while queued (its coroutine destroyed) must leave the queue.
  struct Leave {
    State& state;
    std::list<Waiter>::iterator me;
    ~Leave() { state.queue.erase(me); }
  } leave{*state, me};
  if (!state->dispatching) {
    state->dispatching = true;
    asio::co_spawn(state->executor, dispatch(state), asio::detached);
  }
  while (!me->granted) {
    co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<void> RateLimiter::dispatch(std::shared_ptr<State> state) {
  asio::steady_timer timer{state->executor};
  for (;;) {
    // A pause may move next_turn while this waits, so look again after each wait.
    while (Steady::now() < state->next_turn) {
      timer.expires_at(state->next_turn);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    auto best = state->queue.end();
    for (auto it = state->queue.begin(); it != state->queue.end(); ++it) {
      if (!it->granted && (best == state->queue.end() || before(*it, *best))) {
        best = it;
      }
    }
    if (best == state->queue.end()) {
      state->dispatching = false;
      co_return;
    }
    best->granted = true;
    best->wake->cancel();
    state->next_turn = Steady::now() + state->interval;
  }
}

void RateLimiter::pause_for(Steady::duration pause) {
  state_->next_turn = std::max(state_->next_turn, Steady::now() + pause);
}

}  // namespace gio::api
