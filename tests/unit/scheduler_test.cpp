#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "scheduler/async.hpp"
#include "scheduler/planner.hpp"

namespace gio::scheduler {
namespace {

using namespace std::chrono_literals;

Instant utc(std::string_view text) {
  return parse_utc(text).value();
}

config::Job hourly() {
  config::Job job;
  job.name = "shop-hourly";
  job.granularity = Granularity::hour;
  job.ready_after = 40min;
  job.backfill = 6h;
  job.give_up_after = 24h;
  return job;
}

std::vector<std::string> names(const std::vector<state::PlannedSlot>& slots) {
  std::vector<std::string> out;
  for (const auto& slot : slots) {
    out.push_back(slot.slot);
  }
  return out;
}

TEST(Planner, ReadyAfterTheSlotEndsPlusTheDelay) {
  const auto job = hourly();
  const auto slot = *Slot::parse("2026-11-22T03", Granularity::hour);
  EXPECT_EQ(format_utc(ready_at(job, slot)), "2026-11-21T20:40:00Z");  // 04:40 Beijing
  // Planned on time: give_up_after runs from readiness.
  EXPECT_EQ(format_utc(give_up_at(job, slot, slot.end())), "2026-11-22T20:40:00Z");
  // Planned days later (the daemon was down): it runs from planning.
  EXPECT_EQ(format_utc(give_up_at(job, slot, utc("2026-11-24T00:00:00Z"))), "2026-11-25T00:00:00Z");
}

TEST(Planner, LateHoursWaitTwentyMinutesMore) {
  const auto job = hourly();
  for (const char* name : {"2026-11-22T23", "2026-11-22T00", "2026-11-22T01"}) {
    const auto slot = *Slot::parse(name, Granularity::hour);
    EXPECT_EQ(ready_at(job, slot), slot.end() + 60min) << name;
  }
  const auto two = *Slot::parse("2026-11-22T02", Granularity::hour);
  EXPECT_EQ(ready_at(job, two), two.end() + 40min);
}

TEST(Planner, PlansReadySlotsInsideTheWindow) {
  const auto job = hourly();
  // 10:00 UTC = 18:00 Beijing; window starts 12:00 Beijing; 16:00-17:00 is ready at 17:40.
  const auto slots = plan_slots(job, Instant{}, utc("2026-11-22T10:00:00Z"));
  EXPECT_EQ(names(slots),
            (std::vector<std::string>{"2026-11-22T12", "2026-11-22T13", "2026-11-22T14",
                                      "2026-11-22T15", "2026-11-22T16"}));
  EXPECT_EQ(slots.front().next_at, ready_at(job, *Slot::parse("2026-11-22T12", Granularity::hour)));
}

TEST(Planner, PlansFromAGivenSlotOnward) {
  const auto job = hourly();
  const auto from = Slot::parse("2026-11-22T15", Granularity::hour)->start();
  const auto slots = plan_slots(job, from, utc("2026-11-22T10:00:00Z"));
  EXPECT_EQ(names(slots), (std::vector<std::string>{"2026-11-22T15", "2026-11-22T16"}));
  EXPECT_EQ(format_utc(next_ready(job, *Slot::parse("2026-11-22T16", Granularity::hour))),
            "2026-11-22T10:40:00Z");
}

TEST(Planner, DailyJobs) {
  auto job = hourly();
  job.granularity = Granularity::day;
  job.ready_after = 6h;
  job.backfill = std::chrono::days{3};
  // 2026-11-22T00:00Z = 08:00 Beijing on the 22nd: the 21st is ready at 06:00 on the 22nd.
  // The window starts at 08:00 on the 19th, after the 19th began: that day is outside.
  const auto slots = plan_slots(job, Instant{}, utc("2026-11-22T00:00:00Z"));
  EXPECT_EQ(names(slots), (std::vector<std::string>{"2026-11-20", "2026-11-21"}));
}

TEST(Planner, WindowStartingOnABoundaryIncludesThatSlot) {
  const auto job = hourly();
  const Slot first = first_in_window(job, utc("2026-11-22T10:00:00Z"));
  EXPECT_EQ(first.name(), "2026-11-22T12");
  const Slot later = first_in_window(job, utc("2026-11-22T10:00:01Z"));
  EXPECT_EQ(later.name(), "2026-11-22T13");
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
}  // namespace gio::scheduler
