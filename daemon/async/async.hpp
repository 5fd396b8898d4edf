#pragma once

// Two small coordination tools for coroutines on one thread (Asio 1.81 has neither):
// a counting semaphore and a group whose members can be awaited together.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <exception>
#include <memory>

namespace gio::async {

class Semaphore {
 public:
  Semaphore(boost::asio::any_io_executor executor, int count);

  boost::asio::awaitable<void> acquire();
  void release();

  // Holds one unit for its lifetime (released even when the holder throws).
  class Permit {
   public:
    explicit Permit(Semaphore& semaphore) : semaphore_(&semaphore) {}
    Permit(Permit&& other) noexcept : semaphore_(std::exchange(other.semaphore_, nullptr)) {}
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    Permit& operator=(Permit&&) = delete;
    ~Permit() {
      if (semaphore_ != nullptr) {
        semaphore_->release();
      }
    }

   private:
    Semaphore* semaphore_;
  };
  boost::asio::awaitable<Permit> hold();

 private:
  boost::asio::any_io_executor executor_;
  int available_;
  // Each waiter sleeps on its own timer; release() wakes the oldest by cancelling it.
  std::deque<std::shared_ptr<boost::asio::steady_timer>> waiters_;
};

// Wakes a waiting coroutine when something changes (more work, a finished task, a stop).
class Signal {
 public:
  explicit Signal(boost::asio::any_io_executor executor);
  // Waits until notify() or until `deadline`, whichever comes first; true when notified.
  boost::asio::awaitable<bool> wait_until(std::chrono::steady_clock::time_point deadline);
  void notify();

 private:
  boost::asio::steady_timer timer_;
  bool pending_ = false;
};

// Runs coroutines side by side and waits for all of them; the first exception any
// of them threw is rethrown by wait(), after all have finished.
class TaskGroup {
 public:
  explicit TaskGroup(boost::asio::any_io_executor executor);
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  // `task` is a callable returning awaitable<void>. It is kept alive until its
  // coroutine ends, so a lambda's captures stay valid across suspensions (a lambda
  // invoked in place would die before its coroutine resumes).
  template <class Task>
  void spawn(Task&& task) {
    ++running_;
    boost::asio::co_spawn(executor_, std::forward<Task>(task),
                          [this](std::exception_ptr error) { finished(error); });
  }
  boost::asio::awaitable<void> wait();
  std::size_t running() const { return running_; }

 private:
  void finished(std::exception_ptr error);

  boost::asio::any_io_executor executor_;
  Signal done_;
  std::size_t running_ = 0;
  std::exception_ptr error_;
};

}  // namespace gio::async
