#include "async/async.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace gio::async {

namespace asio = boost::asio;

Semaphore::Semaphore(asio::any_io_executor executor, int count)
    : executor_(std::move(executor)), available_(count) {}

asio::awaitable<void> Semaphore::acquire() {
  while (available_ == 0) {
    auto timer =
        std::make_shared<asio::steady_timer>(executor_, asio::steady_timer::time_point::max());
    waiters_.push_back(timer);
    // Cancellation (by release) is the wake-up, so the error is expected.
    co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  }
  --available_;
}

void Semaphore::release() {
  ++available_;
  if (!waiters_.empty()) {
    waiters_.front()->cancel();
    waiters_.pop_front();
  }
}

asio::awaitable<Semaphore::Permit> Semaphore::hold() {
  co_await acquire();
  co_return Permit{*this};
}

Signal::Signal(asio::any_io_executor executor)
    : timer_(std::move(executor), asio::steady_timer::time_point::max()) {}

asio::awaitable<bool> Signal::wait_until(std::chrono::steady_clock::time_point deadline) {
  if (std::exchange(pending_, false)) {
    co_return true;
  }
  timer_.expires_at(deadline);
  co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  co_return std::exchange(pending_, false);
}

void Signal::notify() {
  pending_ = true;
  timer_.cancel();
}

TaskGroup::TaskGroup(asio::any_io_executor executor)
    : executor_(executor), done_(std::move(executor)) {}

void TaskGroup::finished(std::exception_ptr error) {
  if (error && !error_) {
    error_ = error;
  }
  if (--running_ == 0) {
    done_.notify();
  }
}

asio::awaitable<void> TaskGroup::wait() {
  while (running_ > 0) {
    co_await done_.wait_until(std::chrono::steady_clock::time_point::max());
  }
  if (error_) {
    std::rethrow_exception(std::exchange(error_, nullptr));
  }
}

}  // namespace gio::async
