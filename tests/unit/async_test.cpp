#include "async/async.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <stdexcept>

namespace gio::async {
namespace {

using namespace std::chrono_literals;

TEST(Semaphore, BoundsConcurrency) {
  boost::asio::io_context io;
  Semaphore semaphore{io.get_executor(), 2};
  int running = 0;
  int peak = 0;
  int finished = 0;
  TaskGroup group{io.get_executor()};
  auto done = boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        for (int i = 0; i < 6; ++i) {
          group.spawn([&]() -> boost::asio::awaitable<void> {
            auto permit = co_await semaphore.hold();
            peak = std::max(peak, ++running);
            boost::asio::steady_timer timer{io, 5ms};
            co_await timer.async_wait(boost::asio::use_awaitable);
            --running;
            ++finished;
          });
        }
        co_await group.wait();
      },
      boost::asio::use_future);
  io.run();
  done.get();
  EXPECT_EQ(finished, 6);
  EXPECT_EQ(peak, 2);
}

TEST(TaskGroup, RethrowsTheFirstErrorAfterAllFinish) {
  boost::asio::io_context io;
  TaskGroup group{io.get_executor()};
  int finished = 0;
  auto done = boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        group.spawn([]() -> boost::asio::awaitable<void> {
          throw std::runtime_error("boom");
          co_return;
        });
        group.spawn([&]() -> boost::asio::awaitable<void> {
          boost::asio::steady_timer timer{io, 5ms};
          co_await timer.async_wait(boost::asio::use_awaitable);
          ++finished;
        });
        co_await group.wait();
      },
      boost::asio::use_future);
  io.run();
  EXPECT_THROW(done.get(), std::runtime_error);
  EXPECT_EQ(finished, 1);
}

}  // namespace
}  // namespace gio::async
