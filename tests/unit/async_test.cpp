#include "async/async.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "async/dir_watch.hpp"

namespace gio::async {
namespace {

using namespace std::chrono_literals;

void append(const std::filesystem::path& path) {
  std::ofstream{path, std::ios::app} << "x";
}

TEST(DirWatch, CallsOnlyForTheNamedFilesOfItsDirectory) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("gio-dirwatch-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  boost::asio::io_context io;
  int calls = 0;
  DirWatch watch{io.get_executor(), dir, {"state.db", "state.db-wal"}, [&] { ++calls; }};
  ASSERT_TRUE(watch.active()) << watch.why();
  // An event is queued by the write itself: once it returns, a poll of the loop sees it.
  append(dir / "other.db");
  for (int i = 0; i < 10; ++i) {
    io.poll();
  }
  EXPECT_EQ(calls, 0);
  append(dir / "state.db-wal");
  for (int i = 0; i < 100 && calls == 0; ++i) {
    io.run_one_for(50ms);
  }
  EXPECT_EQ(calls, 1);
  std::filesystem::remove(dir / "state.db-wal");
  for (int i = 0; i < 100 && calls == 1; ++i) {
    io.run_one_for(50ms);
  }
  EXPECT_EQ(calls, 2);
  // The directory gone, its watch ends with it: the caller is told, and polls from then on.
  std::filesystem::remove_all(dir);
  for (int i = 0; i < 100 && watch.active(); ++i) {
    io.run_one_for(50ms);
  }
  EXPECT_FALSE(watch.active());
  EXPECT_GE(calls, 3);
}

TEST(DirWatch, SaysWhyWhenItCannotWatch) {
  boost::asio::io_context io;
  DirWatch watch{io.get_executor(), "/nonexistent/gio-dirwatch", {"state.db"}, [] {}};
  EXPECT_FALSE(watch.active());
  EXPECT_NE(watch.why().find("/nonexistent/gio-dirwatch"), std::string::npos) << watch.why();
}

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
