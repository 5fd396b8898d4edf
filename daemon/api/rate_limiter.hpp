#pragma once

// Spaces the API calls of one project so they never exceed the vendor's rate, and
// pauses them all when the API says so (429/503 with Retry-After).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>

namespace gio::api {

class RateLimiter {
 public:
  RateLimiter(boost::asio::any_io_executor executor, double requests_per_second);

  // Completes when the caller may send its request; turns are handed out in call order.
  boost::asio::awaitable<void> acquire();
  // No call starts before `pause` has passed.
  void pause_for(std::chrono::steady_clock::duration pause);

 private:
  boost::asio::any_io_executor executor_;
  std::chrono::steady_clock::duration interval_;
  std::chrono::steady_clock::time_point next_turn_{};
};

}  // namespace gio::api
