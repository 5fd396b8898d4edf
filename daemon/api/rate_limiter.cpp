#include "api/rate_limiter.hpp"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace gio::api {

RateLimiter::RateLimiter(boost::asio::any_io_executor executor, double requests_per_second)
    : executor_(std::move(executor)),
      interval_(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(1.0 / requests_per_second))) {}

boost::asio::awaitable<void> RateLimiter::acquire() {
  // Reserve the turn before waiting, so callers that arrive meanwhile queue behind it.
  const auto now = std::chrono::steady_clock::now();
  const auto turn = std::max(now, next_turn_);
  next_turn_ = turn + interval_;
  if (turn > now) {
    boost::asio::steady_timer timer{executor_, turn};
    co_await timer.async_wait(boost::asio::use_awaitable);
  }
}

void RateLimiter::pause_for(std::chrono::steady_clock::duration pause) {
  next_turn_ = std::max(next_turn_, std::chrono::steady_clock::now() + pause);
}

}  // namespace gio::api
