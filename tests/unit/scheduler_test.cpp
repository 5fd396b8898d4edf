#include "scheduler/scheduler.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <deque>
#include <random>
#include <thread>

#include "archive/checksums.hpp"
#include "ops/exporter_metrics.hpp"
#include "scheduler/fairness.hpp"
#include "scheduler/notices.hpp"
#include "scheduler/planner.hpp"
#include "scheduler/readiness.hpp"
#include "scheduler/schema_watch.hpp"
#include "scheduler/store_waits.hpp"
#include "support/temp_dir.hpp"

namespace gio::scheduler {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using config::Duration;

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

TEST(Planner, PollsTwiceAsOftenJustAfterTheReadyTime) {
  auto job = hourly();
  job.poll_every = 5min;
  const auto slot = *Slot::parse("2026-11-22T03", Granularity::hour);
  const Instant ready = ready_at(job, slot);
  EXPECT_EQ(poll_delay(job, slot, ready), 150s);
  EXPECT_EQ(poll_delay(job, slot, ready + kEagerPolling - 1s), 150s);
  EXPECT_EQ(poll_delay(job, slot, ready + kEagerPolling), 5min);
  EXPECT_EQ(poll_delay(job, slot, ready + 48h), 5min);  // a catch-up long after
  job.poll_every = 1s;                                  // never below a second
  EXPECT_EQ(poll_delay(job, slot, ready), 1s);
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

TEST(Planner, NextToBecomeReadyIsTheOldestSlotNotReadyYet) {
  auto job = hourly();
  const auto next = [&job](std::string_view now) {
    const Slot slot = next_to_become_ready(job, utc(now));
    return slot.name() + " at " + format_utc(ready_at(job, slot));
  };
  // 10:10Z is 18:10 Beijing: hour 17 (09:00-10:00Z) is ready at 10:40Z.
  EXPECT_EQ(next("2026-11-22T10:10:00Z"), "2026-11-22T17 at 2026-11-22T10:40:00Z");
  EXPECT_EQ(next("2026-11-22T10:39:59Z"), "2026-11-22T17 at 2026-11-22T10:40:00Z");
  // At its ready time it is ready (planned and asked): the next hour comes after.
  EXPECT_EQ(next("2026-11-22T10:40:00Z"), "2026-11-22T18 at 2026-11-22T11:40:00Z");
  // Late hours take 20 minutes more, so hour 00 waits for 23 to be asked first.
  EXPECT_EQ(next("2026-11-22T16:50:00Z"), "2026-11-22T23 at 2026-11-22T17:00:00Z");
  EXPECT_EQ(next("2026-11-22T17:00:00Z"), "2026-11-23T00 at 2026-11-22T18:00:00Z");
  // A long ready_after still finds the oldest slot not ready.
  job.ready_after = 5h;
  EXPECT_EQ(next("2026-11-22T10:10:00Z"), "2026-11-22T13 at 2026-11-22T11:00:00Z");
  job.granularity = Granularity::day;
  job.ready_after = 6h;
  // The 22nd (Beijing) ends at 16:00Z and is ready at 22:00Z.
  EXPECT_EQ(next("2026-11-22T10:10:00Z"), "2026-11-22 at 2026-11-22T22:00:00Z");
  EXPECT_EQ(next("2026-11-22T22:00:00Z"), "2026-11-23 at 2026-11-23T22:00:00Z");
}

TEST(Planner, WindowStartingOnABoundaryIncludesThatSlot) {
  const auto job = hourly();
  const Slot first = first_in_window(job, utc("2026-11-22T10:00:00Z"));
  EXPECT_EQ(first.name(), "2026-11-22T12");
  const Slot later = first_in_window(job, utc("2026-11-22T10:00:01Z"));
  EXPECT_EQ(later.name(), "2026-11-22T13");
}

// A whole Scheduler on a manual clock, its API pointed at a port nobody listens on:
// every ask fails at once (transient), so a pass exercises planning, the retention
// watch and the queue without any network.
class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest()
      : clock_(utc("2026-11-22T10:10:00Z")),
        store_(dir_.path() / "state.db"),
        archive_(dir_.path() / "archive"),
        http_(io_.get_executor(), {}),
        downloader_(http_, pool_) {
    ops::declare_exporter_metrics(metrics_);
  }
  ~SchedulerTest() override { pool_.join(); }

  static std::shared_ptr<const config::Config> config_with(std::vector<std::string> job_names) {
    auto config = std::make_shared<config::Config>();
    config->http.api_base = "http://127.0.0.1:1";
    config->limits.api_requests_per_second = 100;
    config::Project project;
    project.name = "shop";
    project.ai = "ai";
    project.project_uid = "uid";
    project.auth.token = config::Secret{"t"};
    config->projects.push_back(project);
    for (const std::string& name : job_names) {
      config::Job job = hourly();
      job.name = name;
      job.project = "shop";
      job.poll_every = 5min;
      config->jobs.push_back(job);
    }
    return config;
  }

  // A scheduler over the fixture's clock, store, archive and clients; job "a" unless told.
  Scheduler make_scheduler(std::shared_ptr<const config::Config> config = config_with({"a"})) {
    return Scheduler{io_.get_executor(),
                     std::move(config),
                     clock_,
                     store_,
                     archive_,
                     http_,
                     downloader_,
                     metrics_,
                     SinkSupport{.hash_pool = &pool_}};
  }

  void run_once(Scheduler& scheduler) {
    auto done = boost::asio::co_spawn(io_, scheduler.run_once(), boost::asio::use_future);
    io_.restart();
    io_.run();
    done.get();
  }

  std::vector<std::string> slot_names(const std::string& job) {
    std::vector<std::string> names;
    for (const auto& record : store_.slots(job, Instant{}, utc("2030-01-01T00:00:00Z"))) {
      names.push_back(record.slot);
    }
    return names;
  }

  testing::TempDir dir_;
  ManualClock clock_;
  boost::asio::io_context io_;
  boost::asio::thread_pool pool_{1};
  state::StateStore store_;
  archive::Archive archive_;
  http::Client http_;
  download::Downloader downloader_;
  ops::Registry metrics_;
};

TEST_F(SchedulerTest, AClockJumpForwardPlansTheSkippedSlotsAndOneBackRedoesNothing) {
  Scheduler scheduler = make_scheduler();
  run_once(scheduler);
  // 18:10 Beijing, 6 h window: 13:00 to 16:00 are ready (17:00 is ready at 18:40).
  ASSERT_EQ(slot_names("a").size(), 4u);
  EXPECT_EQ(slot_names("a").back(), "2026-11-22T16");
  // Every slot was asked once; the refused connection put each off, none failed.
  EXPECT_EQ(metrics_.value(ops::kApiRequests,
                           {{"project", "shop"}, {"endpoint", "raw_export"}, {"code", "error"}}),
            4);
  EXPECT_EQ(metrics_.value(ops::kRetries, {{"gio_job", "a"}}), 4);
  EXPECT_EQ(metrics_.value(ops::kSlotFailures, {{"gio_job", "a"}}), 0);
  for (const auto& record : store_.slots("a", Instant{}, utc("2030-01-01T00:00:00Z"))) {
    EXPECT_EQ(record.state, state::SlotState::pending) << record.slot;
    EXPECT_NE(record.last_error, "") << record.slot;
  }

  clock_.advance(3h);  // 21:10 Beijing: 17:00 to 19:00 were skipped by the jump
  run_once(scheduler);
  ASSERT_EQ(slot_names("a").size(), 7u);
  EXPECT_EQ(slot_names("a").back(), "2026-11-22T19");

  store_.update("a", "2026-11-22T15",
                {.state = state::SlotState::done, .next_at = clock_.now(), .last_error = ""},
                clock_.now());
  const auto done = store_.find("a", "2026-11-22T15");
  clock_.advance(-5h);  // back to 16:10 Beijing
  run_once(scheduler);
  EXPECT_EQ(slot_names("a").size(), 7u);
  EXPECT_EQ(store_.find("a", "2026-11-22T15"), done);  // untouched, not asked again
}

TEST_F(SchedulerTest, RetentionWatchMarksRiskOnceAndLossAfterFifteenDays) {
  Scheduler first = make_scheduler();
  run_once(first);
  const auto oldest = slot_names("a").front();  // 2026-11-22T13
  const Instant start = store_.find("a", oldest)->start;

  // 50 h before loss: inside 72 h, outside 24 h. A fresh Scheduler watches at once.
  clock_.set(start + kRetention - 50h);
  Scheduler second = make_scheduler();
  run_once(second);
  EXPECT_EQ(store_.find("a", oldest)->notices & 6, 2);  // the 72 h warning, not the 24 h one

  clock_.set(start + kRetention - 2h);
  Scheduler third = make_scheduler();
  run_once(third);
  EXPECT_EQ(store_.find("a", oldest)->notices & 6, 6);

  clock_.set(start + kRetention);
  Scheduler fourth = make_scheduler();
  run_once(fourth);
  EXPECT_EQ(store_.find("a", oldest)->state, state::SlotState::lost);
  EXPECT_EQ(metrics_.value(ops::kSlotsLost, {{"gio_job", "a"}}), 1);
  EXPECT_EQ(fourth.ended().lost, 1);
  EXPECT_EQ(third.ended().lost, 0);
  // The next hour still has an hour left.
  EXPECT_NE(store_.find("a", slot_names("a")[1])->state, state::SlotState::lost);
}

// "name{gio_job="job"} 0" is in the registry's text for every counter of a job.
void expect_job_counters_at_zero(const ops::Registry& metrics, const std::string& job) {
  const std::string text = metrics.text();
  for (const std::string_view counter : {ops::kSlotFailures, ops::kSlotsLost, ops::kRetries,
                                         ops::kArchivedFiles, ops::kArchivedBytes}) {
    EXPECT_NE(text.find(std::string{counter} + "{gio_job=\"" + job + "\"} 0\n"), std::string::npos)
        << counter << " of " << job << "\n"
        << text;
  }
}

TEST_F(SchedulerTest, CountersStartAtZeroAndEndedCountsTheFailuresOfThisScheduler) {
  auto config = std::make_shared<config::Config>(*config_with({"a"}));
  config->jobs.front().give_up_after = 1h;
  Scheduler first = make_scheduler(config);
  // Before any pass: an alert on increase() sees the first failure only if the series
  // was there, at 0, before it.
  expect_job_counters_at_zero(metrics_, "a");
  run_once(first);  // every slot asked once; the refused connection puts each off
  EXPECT_EQ(first.ended().failed, 0);
  EXPECT_EQ(first.ended().lost, 0);

  // Two hours on, the four slots asked before are past give_up_after: failed. The two
  // slots newly ready are asked for the first time, and only put off.
  clock_.advance(2h);
  Scheduler second = make_scheduler(config);
  run_once(second);
  EXPECT_EQ(second.ended().failed, 4);
  EXPECT_EQ(second.ended().lost, 0);
  EXPECT_EQ(metrics_.value(ops::kSlotFailures, {{"gio_job", "a"}}), 4);
  EXPECT_EQ(first.ended().failed, 0);  // each Scheduler counts its own
}

TEST_F(SchedulerTest, ReloadPlansNewJobsAndStopsWorkOnRemovedOnes) {
  Scheduler scheduler = make_scheduler();
  run_once(scheduler);
  ASSERT_EQ(slot_names("a").size(), 4u);
  EXPECT_TRUE(slot_names("b").empty());

  scheduler.reload(config_with({"b"}));
  EXPECT_EQ(scheduler.config().jobs.front().name, "b");
  expect_job_counters_at_zero(metrics_, "b");  // at once, before any work on b
  clock_.advance(1h);  // every slot of a is due again (its retries were put off)
  const auto a_before = store_.slots("a", Instant{}, utc("2030-01-01T00:00:00Z"));
  run_once(scheduler);
  EXPECT_EQ(slot_names("b").size(), 4u);  // 19:10 Beijing: 14:00 to 17:00
  // a is no longer configured: no new slot planned, none asked again.
  EXPECT_EQ(store_.slots("a", Instant{}, utc("2030-01-01T00:00:00Z")), a_before);
}

TEST_F(SchedulerTest, ReadinessOfJobsGoneFromTheConfigIsDeletedByTheDaemonOnly) {
  for (const char* job : {"a", "b", "gone"}) {
    store_.record_readiness(job, "hour", "2026-11-22T01", 90s, clock_.now(), kReadinessKept);
  }
  Scheduler scheduler = make_scheduler(config_with({"a", "b"}));
  run_once(scheduler);  // `run --once` with a smaller config forgets nothing
  EXPECT_EQ(store_.readiness("gone", "hour"), std::vector<std::chrono::seconds>{90s});

  scheduler.stop();  // the daemon's start, then at once its end
  auto done = boost::asio::co_spawn(io_, scheduler.run(), boost::asio::use_future);
  io_.restart();
  while (done.wait_for(0s) != std::future_status::ready) {
    io_.run_one();  // not io_.run(): the database's watch reads on after run() returns
  }
  done.get();
  EXPECT_TRUE(store_.readiness("gone", "hour").empty());
  EXPECT_EQ(store_.readiness("b", "hour"), std::vector<std::chrono::seconds>{90s});
  scheduler.reload(config_with({"a"}));  // the daemon's reload
  EXPECT_TRUE(store_.readiness("b", "hour").empty());
  EXPECT_EQ(store_.readiness("a", "hour"), std::vector<std::chrono::seconds>{90s});
  EXPECT_EQ(store_.forget_readiness_except({"a"}), 0);  // nothing left to delete
}

// Another task on the loop: counts its ticks (every 10 ms) and the longest time the loop
// kept it waiting, until `*done`.
boost::asio::awaitable<void> tick(const bool* done, int* ticks,
                                  std::chrono::steady_clock::duration* longest_gap) {
  boost::asio::steady_timer timer{co_await boost::asio::this_coro::executor};
  auto last = std::chrono::steady_clock::now();
  while (!*done) {
    timer.expires_after(10ms);
    co_await timer.async_wait(boost::asio::use_awaitable);
    const auto now = std::chrono::steady_clock::now();
    *longest_gap = std::max(*longest_gap, now - last);
    last = now;
    ++*ticks;
  }
}

constexpr int kSqliteBusy = 5;  // SQLITE_BUSY, as StateError carries it

TEST(StoreWaits, ABusyCallIsTriedAgainOnATimerWhileTheLoopRunsOtherTasks) {
  boost::asio::io_context io;
  StoreWaits waits{io.get_executor(), "state.db"};
  bool done = false;
  int ticks = 0;
  std::chrono::steady_clock::duration longest_gap{};
  int tries = 0;
  int ticks_when_through = -1;
  bool locked_while_waiting = false;
  boost::asio::co_spawn(io, tick(&done, &ticks, &longest_gap), boost::asio::detached);
  boost::asio::co_spawn(io, waits.retry([&] {
    if (++tries < 4) {
      throw state::StateError("database is locked", kSqliteBusy);
    }
    locked_while_waiting = waits.locked_for().has_value();
    ticks_when_through = ticks;
  }),
                        [&](std::exception_ptr) { done = true; });
  io.run();
  EXPECT_EQ(tries, 4);
  // Three waits (50, 100, 200 ms) on timers: the other task ticked all along.
  EXPECT_GE(ticks_when_through, 15);
  EXPECT_LT(longest_gap, 100ms);
  EXPECT_TRUE(locked_while_waiting);
  EXPECT_EQ(waits.locked_for(), std::nullopt);  // the write went through
  EXPECT_FALSE(waits.warned());
}

TEST(StoreWaits, AnyOtherFailureIsThrownAtOnceAndALongLockIsWarnedAboutOnce) {
  boost::asio::io_context io;
  StoreWaits waits{io.get_executor(), "state.db", std::chrono::steady_clock::duration{0}};
  int tries = 0;
  auto failed = boost::asio::co_spawn(io, waits.retry([&] {
    ++tries;
    throw state::StateError("disk I/O error", 10);
  }),
                                      boost::asio::use_future);
  io.run();
  EXPECT_THROW(failed.get(), state::StateError);
  EXPECT_EQ(tries, 1);

  waits.busy();  // past warn_after (0 here): warned once
  EXPECT_TRUE(waits.warned());
  EXPECT_TRUE(waits.locked_for().has_value());
  waits.busy();
  EXPECT_TRUE(waits.warned());
  waits.answered();
  EXPECT_FALSE(waits.warned());
  EXPECT_EQ(waits.locked_for(), std::nullopt);
}

TEST_F(SchedulerTest, ALockHeldByAnotherProcessIsWaitedForWithoutBlockingTheLoop) {
  Scheduler scheduler = make_scheduler();
  // Another process (a `retry` in its transaction, a backup) holds the write lock for
  // 700 ms, then gives it back from its own thread.
  state::StateStore other{dir_.path() / "state.db"};
  std::optional<state::StateStore::Batch> held;
  held.emplace(other);
  other.set_value("test/lock", "held");
  std::thread release{[&held] {
    std::this_thread::sleep_for(700ms);
    held.reset();
  }};

  bool done = false;
  int ticks = 0;
  std::chrono::steady_clock::duration longest_gap{};
  std::exception_ptr failure;
  const auto started = std::chrono::steady_clock::now();
  boost::asio::co_spawn(io_, tick(&done, &ticks, &longest_gap), boost::asio::detached);
  boost::asio::co_spawn(io_, scheduler.run_once(), [&](std::exception_ptr error) {
    failure = error;
    done = true;
  });
  io_.run();
  release.join();
  ASSERT_FALSE(failure);
  // The pass waited for the lock, and the loop ran other tasks all the while.
  EXPECT_GE(std::chrono::steady_clock::now() - started, 650ms);
  EXPECT_LT(longest_gap, 300ms);
  EXPECT_GE(ticks, 30);
  // Nothing was dropped: every slot was planned, asked once and put off.
  ASSERT_EQ(slot_names("a").size(), 4u);
  EXPECT_EQ(metrics_.value(ops::kRetries, {{"gio_job", "a"}}), 4);
  for (const auto& record : store_.slots("a", Instant{}, utc("2030-01-01T00:00:00Z"))) {
    EXPECT_EQ(record.state, state::SlotState::pending) << record.slot;
    EXPECT_NE(record.last_error, "") << record.slot;
  }
}

// --- Fairness under a NOT_EXISTS backlog (issue 14, item 3) ---------------------------

config::Job polled_every_5min() {
  config::Job job = hourly();
  job.poll_every = 5min;  // not_exists_grace: the default 2 h
  return job;
}

// 03:00 Beijing on 22 Nov: 19:00Z to 20:00Z, ready at 20:40Z, its grace over at 22:40Z.
const Slot kHour03 = Slot::parse("2026-11-22T03", Granularity::hour).value();

TEST(Fairness, NotExistsWithinItsGraceIsPolledAsUsual) {
  const config::Job job = polled_every_5min();
  const Instant now = utc("2026-11-21T21:00:00Z");
  EXPECT_EQ(next_not_exists_ask(job, kHour03, ready_at(job, kHour03), false, now), now + 5min);
  EXPECT_EQ(next_not_exists_ask(job, kHour03, ready_at(job, kHour03), true, now), now + 5min);
}

TEST(Fairness, NotExistsPastItsGraceWaitsAsLongAsItHasBeenMissing) {
  const config::Job job = polled_every_5min();
  const Instant planned = ready_at(job, kHour03);
  const auto next_after = [&](std::string_view at) {
    const Instant now = utc(at);
    return next_not_exists_ask(job, kHour03, planned, false, now) - now;
  };
  EXPECT_EQ(next_after("2026-11-21T22:42:00Z"), 5min);  // at least poll_every
  EXPECT_EQ(next_after("2026-11-21T22:50:00Z"), 10min);
  EXPECT_EQ(next_after("2026-11-21T23:40:00Z"), 1h);  // so each wait doubles the last
  EXPECT_EQ(next_after("2026-11-22T00:40:00Z"), 2h);
  EXPECT_EQ(next_after("2026-11-22T10:40:00Z"), kNotExistsMaxWait);  // capped
}

TEST(Fairness, ALaterHourExportedBacksOffHarder) {
  const config::Job job = polled_every_5min();
  const Instant planned = ready_at(job, kHour03);
  const auto next_after = [&](std::string_view at) {
    const Instant now = utc(at);
    return next_not_exists_ask(job, kHour03, planned, true, now) - now;
  };
  EXPECT_EQ(next_after("2026-11-21T22:50:00Z"), 40min);
  EXPECT_EQ(next_after("2026-11-21T23:40:00Z"), 4h);
  EXPECT_EQ(next_after("2026-11-22T10:40:00Z"), kNotExistsMaxWaitAfterLater);
}

TEST(Fairness, NeverPastTheLastUsefulAskNorTheGiveUp) {
  config::Job job = polled_every_5min();
  job.give_up_after = std::chrono::days{20};
  const Instant planned = ready_at(job, kHour03);
  const Instant last_useful = kHour03.lost_at() - kLastAskBeforeLoss;  // 2026-12-06T18:00Z
  EXPECT_EQ(next_not_exists_ask(job, kHour03, planned, true, utc("2026-12-06T14:00:00Z")),
            last_useful);
  // Past the last useful ask: the regular poll, until the retention takes it.
  const Instant late = utc("2026-12-06T17:58:00Z");
  EXPECT_EQ(next_not_exists_ask(job, kHour03, planned, true, late), late + 5min);

  job.give_up_after = 24h;  // given up on at 2026-11-22T20:40Z
  EXPECT_EQ(next_not_exists_ask(job, kHour03, planned, false, utc("2026-11-22T19:40:00Z")),
            utc("2026-11-22T20:40:00Z"));
}

TEST(Fairness, TheBacklogIsWhatWasAskedAndAnsweredNotExists) {
  state::SlotRecord record;
  EXPECT_FALSE(is_backlog(record));  // a first ask
  record.api_status = "NOT_EXISTS";
  EXPECT_FALSE(is_backlog(record));  // not asked by this row yet (a requeued slot)
  record.attempts = 3;
  EXPECT_TRUE(is_backlog(record));
  record.api_status = "RUNNING";
  EXPECT_FALSE(is_backlog(record));
  EXPECT_EQ(backlog_share(16), 8u);
  EXPECT_EQ(backlog_share(1), 1u);
}

TEST_F(SchedulerTest, DueServesFreshWorkBeforeTheNotExistsBacklog) {
  const Instant now = clock_.now();
  std::vector<state::PlannedSlot> planned;
  for (const char* name :
       {"2026-11-21T01", "2026-11-21T02", "2026-11-21T03", "2026-11-22T10", "2026-11-22T11"}) {
    const Slot slot = Slot::parse(name, Granularity::hour).value();
    planned.push_back({.slot = slot.name(), .start = slot.start(), .next_at = now - 1h});
  }
  store_.plan("a", planned, now - 2h);
  const auto answer = [&](const char* slot, const char* status) {
    store_.update("a", slot,
                  {.state = state::SlotState::waiting,
                   .next_at = now - 1min,
                   .api_status = status,
                   .count_attempt = true},
                  now);
  };
  answer("2026-11-21T01", "NOT_EXISTS");
  answer("2026-11-21T03", "NOT_EXISTS");
  answer("2026-11-22T10", "RUNNING");
  const std::vector<std::string> jobs{"a"};
  std::vector<std::string> order;
  for (const auto& record : store_.due_fresh_first(now, 10, jobs, not_exists_status())) {
    order.push_back(record.slot);
  }
  // The first ask of an old hour, the fresh hours, then the backlog, each oldest first.
  EXPECT_EQ(order, (std::vector<std::string>{"2026-11-21T02", "2026-11-22T10", "2026-11-22T11",
                                             "2026-11-21T01", "2026-11-21T03"}));
  EXPECT_EQ(store_.due_fresh_first(now, 2, jobs, not_exists_status()).size(), 2u);

  const Instant hour02 = Slot::parse("2026-11-21T02", Granularity::hour).value().start();
  EXPECT_FALSE(store_.has_later_finished("a", hour02));
  store_.update("a", "2026-11-22T11", {.state = state::SlotState::done, .next_at = now}, now);
  EXPECT_TRUE(store_.has_later_finished("a", hour02));
  EXPECT_FALSE(store_.has_later_finished(
      "a", Slot::parse("2026-11-22T11", Granularity::hour).value().start()));
  EXPECT_FALSE(store_.has_later_finished("b", hour02));
}

// --- wall-clock jumps (issue 14, item 2) ---------------------------------------------

double raw_export_errors(const ops::Registry& metrics) {
  return metrics.value(ops::kApiRequests,
                       {{"project", "shop"}, {"endpoint", "raw_export"}, {"code", "error"}});
}

std::vector<state::SlotRecord> all_slots(state::StateStore& store, const std::string& job) {
  return store.slots(job, Instant{}, utc("2030-01-01T00:00:00Z"));
}

TEST(ClockWatch, AJumpIsJudgedByTheSteadyClockUntilTheWallClockKeepsPace) {
  ManualClock clock{utc("2026-11-22T10:00:00Z")};
  ClockWatch watch{clock};
  clock.advance(30s);
  auto reading = watch.read();
  EXPECT_TRUE(reading.believed);
  EXPECT_EQ(reading.sure, reading.wall);
  EXPECT_FALSE(watch.take_jump());

  clock.advance(1min);
  clock.jump(std::chrono::days{3});
  reading = watch.read();
  EXPECT_FALSE(reading.believed);
  EXPECT_EQ(format_utc(reading.sure), "2026-11-22T10:01:30Z");  // the steady clock's word
  EXPECT_EQ(watch.take_jump(), std::chrono::days{3});
  EXPECT_FALSE(watch.take_jump());
  clock.advance(kClockConfirmation - 1s);
  reading = watch.read();
  EXPECT_FALSE(reading.believed);
  EXPECT_EQ(reading.sure, utc("2026-11-22T10:01:30Z") + kClockConfirmation - 1s);
  clock.advance(1s);  // kept pace for long enough: believed again
  reading = watch.read();
  EXPECT_TRUE(reading.believed);
  EXPECT_EQ(reading.sure, reading.wall);

  clock.jump(-2h);  // back: never later than the wall clock
  reading = watch.read();
  EXPECT_FALSE(reading.believed);
  EXPECT_EQ(reading.sure, reading.wall);
  EXPECT_EQ(watch.take_jump(), -2h);
  clock.jump(kJumpTolerance);  // within the tolerance: not a jump
  watch.read();
  EXPECT_FALSE(watch.take_jump());
}

TEST_F(SchedulerTest, AWallClockExcursionOfThreeDaysLosesNothingAndIsReBasedAfter) {
  Scheduler scheduler = make_scheduler();
  // A slot 13 days old: 2 days inside the vendor's retention.
  const Slot old = Slot::containing(clock_.now() - std::chrono::days{13}, Granularity::hour);
  const std::vector<state::PlannedSlot> old_slot{
      {.slot = old.name(), .start = old.start(), .next_at = clock_.now()}};
  store_.plan("a", old_slot, clock_.now());
  run_once(scheduler);  // every slot asked once (refused: put off by a few seconds)
  ASSERT_EQ(all_slots(store_, "a").size(), 5u);
  EXPECT_EQ(raw_export_errors(metrics_), 5);

  // The wall clock leaps 3 days (past give_up_after of every slot and past the old
  // slot's retention) while no time passes: nothing may be given up or lost on it.
  clock_.jump(std::chrono::days{3});
  run_once(scheduler);
  EXPECT_EQ(scheduler.ended().lost, 0);
  EXPECT_EQ(scheduler.ended().failed, 0);
  for (const auto& record : all_slots(store_, "a")) {
    EXPECT_EQ(record.state, state::SlotState::pending) << record.slot;
  }

  // Back to the right time: next_at values set during the excursion lie 3 days ahead;
  // they are pulled back, so every slot is asked again at once, and none is lost.
  clock_.jump(-std::chrono::days{3});
  clock_.advance(1min);
  const double before = raw_export_errors(metrics_);
  run_once(scheduler);
  EXPECT_EQ(raw_export_errors(metrics_) - before, 5);
  for (const auto& record : all_slots(store_, "a")) {
    EXPECT_EQ(record.state, state::SlotState::pending) << record.slot;
    EXPECT_LE(record.next_at, clock_.now() + 5min) << record.slot;
  }
  EXPECT_EQ(metrics_.value(ops::kSlotsLost, {{"gio_job", "a"}}), 0);
  EXPECT_EQ(metrics_.value(ops::kSlotFailures, {{"gio_job", "a"}}), 0);
}

TEST_F(SchedulerTest, AForwardJumpTheSteadyClockConfirmsIsActedOn) {
  Scheduler scheduler = make_scheduler();
  const Slot old = Slot::containing(clock_.now() - std::chrono::days{13}, Granularity::hour);
  const std::vector<state::PlannedSlot> old_slot{
      {.slot = old.name(), .start = old.start(), .next_at = clock_.now()}};
  store_.plan("a", old_slot, clock_.now());
  run_once(scheduler);
  clock_.jump(std::chrono::days{3});
  run_once(scheduler);
  EXPECT_EQ(scheduler.ended().lost + scheduler.ended().failed, 0);
  // The wall clock then keeps pace with the steady clock long enough: it is believed,
  // and the slots past their give_up_after fail, the old one is lost.
  clock_.advance(15min);
  run_once(scheduler);
  EXPECT_EQ(scheduler.ended().lost, 1);
  EXPECT_EQ(scheduler.ended().failed, 4);
  EXPECT_EQ(store_.find("a", old.name())->state, state::SlotState::lost);
}

TEST_F(SchedulerTest, AJumpBackOfTwoHoursStillAsksTheDueSlots) {
  Scheduler scheduler = make_scheduler();
  run_once(scheduler);
  EXPECT_EQ(raw_export_errors(metrics_), 4);
  // Each slot is due a few seconds on; the wall clock goes 2 h back meanwhile. Its
  // next_at now lies 2 h ahead, far beyond any schedule: re-based, and asked.
  clock_.advance(1min);
  clock_.jump(-2h);
  run_once(scheduler);
  EXPECT_EQ(raw_export_errors(metrics_), 8);
  for (const auto& record : all_slots(store_, "a")) {
    EXPECT_LE(record.next_at, clock_.now() + 5min) << record.slot;
  }
}

TEST_F(SchedulerTest, NextAtFarBeyondTheScheduleIsPulledBackAtStart) {
  // A previous run left next_at values 3 days ahead (its clock was wrong when it set
  // them): a new start asks those slots now instead of 3 days later.
  run_once(*std::make_unique<Scheduler>(io_.get_executor(), config_with({"a"}), clock_, store_,
                                        archive_, http_, downloader_, metrics_));
  for (const auto& record : all_slots(store_, "a")) {
    store_.update(
        "a", record.slot,
        {.state = state::SlotState::waiting, .next_at = clock_.now() + std::chrono::days{3}},
        clock_.now());
  }
  clock_.advance(1min);
  Scheduler scheduler = make_scheduler();
  run_once(scheduler);
  EXPECT_EQ(raw_export_errors(metrics_), 8);
}

TEST(RestartOnlyChanges, NamesEachSettingAReloadCannotApply) {
  config::Config running;
  config::Config next = running;
  EXPECT_TRUE(restart_only_changes(running, next).empty());
  next.jobs.push_back(config::Job{});
  next.log.level = "debug";
  next.limits.api_requests_per_second = 5;
  EXPECT_TRUE(restart_only_changes(running, next).empty());
  next.archive_dir = "/elsewhere";
  next.http.timeout = std::chrono::seconds{5};
  next.limits.max_part_size = 2 * running.limits.max_part_size;  // the downloader's, built once
  EXPECT_EQ(restart_only_changes(running, next),
            (std::vector<std::string>{"archive_dir changed", "http.timeout changed",
                                      "limits.max_part_size changed"}));
}

// --- issue 15: sinks, with real rclone on a :local: remote ----------------------------

config::Sink sink(std::string name, std::string remote) {
  config::Sink sink;
  sink.name = std::move(name);
  sink.rclone_remote = std::move(remote);
  return sink;
}

class SinkSchedulerTest : public SchedulerTest {
 protected:
  void SetUp() override {
    if (std::system("rclone version >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "rclone is not installed";
    }
  }

  // Job "a" landing on sink "lake" at `remote`.
  static std::shared_ptr<const config::Config> with_sink(std::string remote,
                                                         Duration keep_local = 48h) {
    auto config = std::make_shared<config::Config>(*config_with({"a"}));
    config->sinks.push_back(sink("lake", std::move(remote)));
    config->sinks.back().keep_local = keep_local;
    config->jobs[0].sink = "lake";
    return config;
  }

  // Slot 2026-11-22T13 of job "a" downloaded and complete locally, and uploading.
  Slot downloaded_slot() {
    const Slot slot = *Slot::parse("2026-11-22T13", Granularity::hour);
    const state::PlannedSlot planned{slot.name(), slot.start(), clock_.now()};
    store_.plan("a", std::span{&planned, 1}, clock_.now());
    archive_.publish(archive_.stage_bytes("part bytes"), "a", "visit", slot, "p.csv.gz");
    archive_.complete_partition(
        archive::make_manifest("a", "visit", slot, clock_.now(),
                               {{"p.csv.gz", 10, archive::sha256_hex("part bytes")}}),
        slot);
    store_.record_file({.job = "a",
                        .slot = slot.name(),
                        .data_type = "visit",
                        .name = "p.csv.gz",
                        .bytes = 10,
                        .sha256 = "x"});
    store_.update("a", slot.name(), {.state = state::SlotState::uploading, .next_at = clock_.now()},
                  clock_.now());
    return slot;
  }

  fs::path remote_ = dir_.path() / "remote";
};

TEST_F(SinkSchedulerTest, AnUploadingSlotLandsThenIsDoneAndKeepLocalZeroPrunesIt) {
  const Slot slot = downloaded_slot();
  Scheduler scheduler = make_scheduler(with_sink(":local:" + remote_.string(), 0s));
  run_once(scheduler);
  const auto record = store_.find("a", slot.name());
  ASSERT_EQ(record->state, state::SlotState::done) << record->last_error;
  EXPECT_EQ(record->notices & (kNoticeLanded | kNoticeLocalPruned),
            kNoticeLanded | kNoticeLocalPruned);
  const fs::path landed = remote_ / "a" / "visit" / "dt=2026-11-22" / "hour=13";
  EXPECT_EQ(fs::file_size(landed / "p.csv.gz"), 10u);
  EXPECT_TRUE(fs::exists(landed / "_SUCCESS"));
  EXPECT_TRUE(fs::exists(landed / "_manifest.json"));
  // keep_local 0s: the local copy went at once, its day folder with it.
  EXPECT_FALSE(fs::exists(archive_.partition_dir("a", "visit", slot).parent_path()));
  EXPECT_EQ(metrics_.value(ops::kSinkUploads, {{"sink", "lake"}, {"result", "landed"}}), 1);
  EXPECT_EQ(metrics_.value(ops::kSinkUploads, {{"sink", "lake"}, {"result", "failed"}}), 0);
  EXPECT_GE(metrics_.value(ops::kSinkUploadedBytes, {{"sink", "lake"}}), 10);
}

TEST_F(SinkSchedulerTest, KeepLocalKeepsTheCopyUntilItPasses) {
  const Slot slot = downloaded_slot();
  Scheduler first = make_scheduler(with_sink(":local:" + remote_.string(), 1h));
  run_once(first);
  ASSERT_EQ(store_.find("a", slot.name())->state, state::SlotState::done);
  EXPECT_TRUE(archive_.is_complete("a", "visit", slot));
  clock_.advance(61min);
  Scheduler second = make_scheduler(with_sink(":local:" + remote_.string(), 1h));
  run_once(second);
  EXPECT_FALSE(fs::exists(archive_.partition_dir("a", "visit", slot)));
  EXPECT_NE(store_.find("a", slot.name())->notices & kNoticeLocalPruned, 0);
}

TEST_F(SinkSchedulerTest, AnUnreachableRemoteBacksOffAndTheSlotIsNeverLost) {
  const Slot slot = downloaded_slot();
  // A port nobody listens on: rclone fails at once.
  const auto down = with_sink(":webdav,url='http://127.0.0.1:1':");
  Scheduler first = make_scheduler(down);
  run_once(first);
  auto record = store_.find("a", slot.name());
  EXPECT_EQ(record->state, state::SlotState::uploading);
  EXPECT_EQ(record->next_at, clock_.now() + 30s);
  EXPECT_NE(record->last_error.find("sink lake"), std::string::npos) << record->last_error;
  EXPECT_EQ(record->last_error.find("url="), std::string::npos) << record->last_error;
  EXPECT_EQ(metrics_.value(ops::kSinkUploads, {{"sink", "lake"}, {"result", "failed"}}), 1);

  // The same scheduler doubles its back-off: 30 s, then 60 s.
  clock_.advance(30s);
  run_once(first);
  EXPECT_EQ(store_.find("a", slot.name())->next_at, clock_.now() + 60s);

  // Past the vendor's retention the data is still local: neither lost nor at risk.
  clock_.set(slot.start() + kRetention + 1h);
  Scheduler later = make_scheduler(down);
  run_once(later);
  record = store_.find("a", slot.name());
  EXPECT_EQ(record->state, state::SlotState::uploading);
  EXPECT_EQ(record->notices & (kNoticeAtRisk24h | kNoticeAtRisk72h), 0);
  EXPECT_TRUE(archive_.is_complete("a", "visit", slot));

  // The remote back: it lands.
  Scheduler fixed = make_scheduler(with_sink(":local:" + remote_.string()));
  run_once(fixed);
  EXPECT_EQ(store_.find("a", slot.name())->state, state::SlotState::done);
}

TEST_F(SinkSchedulerTest, ALocalCopyThatIsNotWholeIsFetchedAgain) {
  const Slot slot = downloaded_slot();
  archive_.reopen_partition("a", "visit", slot);  // no _SUCCESS
  Scheduler scheduler = make_scheduler(with_sink(":local:" + remote_.string()));
  run_once(scheduler);
  const auto record = store_.find("a", slot.name());
  // Back to the download path (whose ask then fails against the closed API port).
  EXPECT_EQ(record->state, state::SlotState::pending);
  EXPECT_FALSE(fs::exists(remote_ / "a"));
}

TEST_F(SinkSchedulerTest, APartOfTheLocalCopyMissingOrShortIsFetchedAgain) {
  const Slot slot = downloaded_slot();
  fs::resize_file(archive_.partition_dir("a", "visit", slot) / "p.csv.gz", 4);
  Scheduler scheduler = make_scheduler(with_sink(":local:" + remote_.string()));
  run_once(scheduler);
  const auto record = store_.find("a", slot.name());
  // Back to the download path, as a partition without _SUCCESS is (above).
  EXPECT_EQ(record->state, state::SlotState::pending) << record->last_error;
  EXPECT_FALSE(fs::exists(remote_ / "a"));
}

TEST_F(SinkSchedulerTest, AnEarlierAnswersIncompleteTypeIsNotLandedAndDoesNotRefetch) {
  const Slot slot = downloaded_slot();
  // A type of an earlier answer, unmarked by a forced backfill and absent from this one
  // (no files rows): left where it is, not a reason to fetch the slot again.
  archive_.publish(archive_.stage_bytes("old"), "a", "page", slot, "old.csv.gz");
  Scheduler scheduler = make_scheduler(with_sink(":local:" + remote_.string()));
  run_once(scheduler);
  const auto record = store_.find("a", slot.name());
  ASSERT_EQ(record->state, state::SlotState::done) << record->last_error;
  EXPECT_TRUE(fs::exists(remote_ / "a" / "visit" / "dt=2026-11-22" / "hour=13" / "_SUCCESS"));
  EXPECT_FALSE(fs::exists(remote_ / "a" / "page"));
}

TEST(JobChanges, AChangedSinkIsAChangedJob) {
  config::Config running;
  config::Job job;
  job.name = "j";
  job.sink = "lake";
  running.jobs.push_back(job);
  running.sinks.push_back(sink("lake", "oss:a"));
  config::Config next = running;
  EXPECT_TRUE(job_changes(running, next).changed.empty());
  next.sinks[0].keep_local = 0s;
  EXPECT_EQ(job_changes(running, next).changed, std::vector<std::string>{"j.sink"});
  next = running;
  next.sinks[0].rclone_remote = "oss:b";
  EXPECT_EQ(job_changes(running, next).changed, std::vector<std::string>{"j.sink"});
  next = running;
  next.jobs[0].sink = "";
  EXPECT_EQ(job_changes(running, next).changed, std::vector<std::string>{"j.sink"});
  // Its place in the file is not a setting.
  next = running;
  next.sinks[0].place.line = 40;
  EXPECT_TRUE(job_changes(running, next).changed.empty());
}

// --- The schema watch (issue 16) ---

TEST(HeaderDiffTest, NamesAddedRemovedAndReorderedColumns) {
  const std::vector<std::string> before = {"a", "b", "c", "d"};
  EXPECT_TRUE(diff_headers(before, before).empty());
  EXPECT_EQ(diff_headers(before, {"a", "b", "c", "d", "e"}),
            (HeaderDiff{.added = {"e"}, .removed = {}, .reordered = false}));
  // Removing one shifts the others, which is not a reorder.
  EXPECT_EQ(diff_headers(before, {"a", "c", "d"}),
            (HeaderDiff{.added = {}, .removed = {"b"}, .reordered = false}));
  EXPECT_EQ(diff_headers(before, {"x", "a", "c", "d", "y"}),
            (HeaderDiff{.added = {"x", "y"}, .removed = {"b"}, .reordered = false}));
  EXPECT_EQ(diff_headers(before, {"b", "a", "c", "d"}),
            (HeaderDiff{.added = {}, .removed = {}, .reordered = true}));
  EXPECT_EQ(diff_headers(before, {"d", "c", "z"}),
            (HeaderDiff{.added = {"z"}, .removed = {"a", "b"}, .reordered = true}));
  // A renamed column is one removed and one added.
  EXPECT_EQ(diff_headers({"time", "name"}, {"event_time", "name"}),
            (HeaderDiff{.added = {"event_time"}, .removed = {"time"}, .reordered = false}));
  EXPECT_EQ(join_names({"a", "b", "c"}), "a,b,c");
  EXPECT_EQ(join_names({}), "");
}

TEST(PartitionHeaderTest, FirstPartsHeaderAndWhetherAnotherDiffers) {
  EXPECT_FALSE(partition_header({}).has_value());
  EXPECT_FALSE(partition_header({{}, {}}).has_value());  // empty parts, or not counted
  const auto same = partition_header({{}, {"a", "b"}, {"a", "b"}});
  ASSERT_TRUE(same.has_value());
  EXPECT_EQ(same->columns, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(same->mixed);
  const auto mixed = partition_header({{"a", "b"}, {"a", "c"}});
  ASSERT_TRUE(mixed.has_value());
  EXPECT_EQ(mixed->columns, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(mixed->mixed);
}

class SchemaDecisionTest : public ::testing::Test {
 protected:
  using Kind = SchemaDecision::Kind;
  const std::vector<std::string> v1_ = {"a", "b"};
  const std::vector<std::string> v2_ = {"a", "b", "c"};
  const std::vector<std::string> v3_ = {"b", "a", "c"};
  const Instant now_ = utc("2026-11-22T10:00:00Z");
  const Instant then_ = utc("2026-11-22T01:00:00Z");

  state::SchemaRecord row(std::string slot, std::vector<std::string> columns) const {
    return {.since_slot = std::move(slot), .columns = std::move(columns), .seen_at = then_};
  }
};

TEST_F(SchemaDecisionTest, TheFirstHeaderIsRecordedSilently) {
  const SchemaDecision decision = decide_schema({}, "2026-11-22T03", v1_, now_);
  EXPECT_EQ(decision.kind, Kind::first);
  EXPECT_FALSE(decision.warns());
  EXPECT_EQ(decision.row, (state::SchemaRecord{"2026-11-22T03", v1_, now_}));
}

TEST_F(SchemaDecisionTest, TheSameHeaderChangesNothingBeforeOrAfterAChange) {
  const std::vector<state::SchemaRecord> rows = {row("2026-11-22T03", v1_),
                                                 row("2026-11-22T06", v2_)};
  EXPECT_EQ(decide_schema(rows, "2026-11-22T04", v1_, now_).kind, Kind::unchanged);
  EXPECT_EQ(decide_schema(rows, "2026-11-22T03", v1_, now_).kind, Kind::unchanged);
  EXPECT_EQ(decide_schema(rows, "2026-11-22T07", v2_, now_).kind, Kind::unchanged);
}

TEST_F(SchemaDecisionTest, ANewHeaderAfterTheCurrentOneIsAChange) {
  const std::vector<state::SchemaRecord> rows = {row("2026-11-22T03", v1_)};
  const SchemaDecision decision = decide_schema(rows, "2026-11-22T05", v2_, now_);
  EXPECT_EQ(decision.kind, Kind::changed);
  EXPECT_TRUE(decision.warns());
  EXPECT_EQ(decision.row, (state::SchemaRecord{"2026-11-22T05", v2_, now_}));
  EXPECT_FALSE(decision.remove.has_value());
  EXPECT_EQ(decision.changed_at, "2026-11-22T05");
  EXPECT_EQ(decision.diff, (HeaderDiff{.added = {"c"}, .removed = {}, .reordered = false}));
  // And back again: the old header is a change too (from the one in force).
  const std::vector<state::SchemaRecord> after = {row("2026-11-22T03", v1_),
                                                  row("2026-11-22T05", v2_)};
  const SchemaDecision back = decide_schema(after, "2026-11-22T06", v1_, now_);
  EXPECT_EQ(back.kind, Kind::changed);
  EXPECT_EQ(back.diff, (HeaderDiff{.added = {}, .removed = {"c"}, .reordered = false}));
}

TEST_F(SchemaDecisionTest, AnOlderSlotWithTheNextHeaderMovesItsRowBackSilently) {
  // T06 changed to v2 (announced then); backfilled T05 has v2 as well: the change was
  // earlier, which is no news.
  const std::vector<state::SchemaRecord> rows = {row("2026-11-22T03", v1_),
                                                 row("2026-11-22T06", v2_)};
  const SchemaDecision decision = decide_schema(rows, "2026-11-22T05", v2_, now_);
  EXPECT_EQ(decision.kind, Kind::moved);
  EXPECT_FALSE(decision.warns());
  EXPECT_EQ(decision.remove, "2026-11-22T06");
  EXPECT_EQ(decision.row, (state::SchemaRecord{"2026-11-22T05", v2_, then_}));
  // Older than every row, with the first row's header: the first row moves back.
  const SchemaDecision first =
      decide_schema({row("2026-11-22T06", v2_)}, "2026-11-22T01", v2_, now_);
  EXPECT_EQ(first.kind, Kind::moved);
  EXPECT_EQ(first.remove, "2026-11-22T06");
}

TEST_F(SchemaDecisionTest, AnOlderSlotWithAnotherHeaderIsAChangeNamedWhereItShows) {
  // Between two rows, a third header: a change from the one in force at its slot.
  const std::vector<state::SchemaRecord> rows = {row("2026-11-22T03", v1_),
                                                 row("2026-11-22T06", v2_)};
  const SchemaDecision between = decide_schema(rows, "2026-11-22T04", v3_, now_);
  EXPECT_EQ(between.kind, Kind::changed);
  EXPECT_EQ(between.changed_at, "2026-11-22T04");
  EXPECT_EQ(between.diff, (HeaderDiff{.added = {"c"}, .removed = {}, .reordered = true}));
  // Older than every row: the change is from this header to the first row's, at that
  // row's slot (the daemon saw the newer header first, as the first one).
  const SchemaDecision older =
      decide_schema({row("2026-11-22T06", v2_)}, "2026-11-22T02", v1_, now_);
  EXPECT_EQ(older.kind, Kind::changed);
  EXPECT_EQ(older.row.since_slot, "2026-11-22T02");
  EXPECT_EQ(older.changed_at, "2026-11-22T06");
  EXPECT_EQ(older.diff, (HeaderDiff{.added = {"c"}, .removed = {}, .reordered = false}));
}

TEST_F(SchemaDecisionTest, ASlotFetchedAgainWithAnotherHeaderReplacesItsRow) {
  const std::vector<state::SchemaRecord> rows = {row("2026-11-22T03", v1_),
                                                 row("2026-11-22T06", v2_)};
  const SchemaDecision decision = decide_schema(rows, "2026-11-22T06", v3_, now_);
  EXPECT_EQ(decision.kind, Kind::changed);
  EXPECT_EQ(decision.row.since_slot, "2026-11-22T06");
  EXPECT_FALSE(decision.remove.has_value());
  EXPECT_EQ(decision.diff, (HeaderDiff{.added = {}, .removed = {}, .reordered = true}));
}

TEST(SchemaWatchOrderTest, OutOfOrderCompletionsEndInTheSameHistoryAndWarnOnce) {
  // Slots 01..06; the header changes at 04. Whatever order they complete in, the
  // history ends as {01: v1, 04: v2}, and exactly one completion warns.
  const std::vector<std::string> v1 = {"a", "b"};
  const std::vector<std::string> v2 = {"a", "c"};
  std::vector<std::string> order = {"2026-11-22T01", "2026-11-22T02", "2026-11-22T03",
                                    "2026-11-22T04", "2026-11-22T05", "2026-11-22T06"};
  const Instant now = utc("2026-11-22T10:00:00Z");
  std::sort(order.begin(), order.end());
  int permutations = 0;
  do {
    std::vector<state::SchemaRecord> rows;
    int warnings = 0;
    for (const std::string& slot : order) {
      const auto& columns = slot < "2026-11-22T04" ? v1 : v2;
      const SchemaDecision decision = decide_schema(rows, slot, columns, now);
      warnings += decision.warns() ? 1 : 0;
      if (decision.kind == SchemaDecision::Kind::unchanged) {
        continue;
      }
      std::erase_if(rows, [&](const state::SchemaRecord& row) {
        return row.since_slot == decision.row.since_slot || row.since_slot == decision.remove;
      });
      rows.push_back(decision.row);
      std::sort(rows.begin(), rows.end(),
                [](const auto& x, const auto& y) { return x.since_slot < y.since_slot; });
    }
    ++permutations;
    ASSERT_EQ(warnings, 1) << "order starting " << order[0] << " " << order[1];
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].since_slot, "2026-11-22T01");
    EXPECT_EQ(rows[1].since_slot, "2026-11-22T04");
    EXPECT_EQ(rows[1].columns, v2);
  } while (std::next_permutation(order.begin(), order.end()));
  EXPECT_EQ(permutations, 720);
}

// --- The readiness model (readiness.hpp), driven by a simulated clock: each slot is
// asked as the daemon would (first ask, then next_ask after every "not ready"), and
// what it records feeds the next slots.

struct Asked {
  int asks = 0;
  Instant archived;
};

class ReadinessRun {
 public:
  explicit ReadinessRun(config::Job job) : job_(std::move(job)) {}

  // Asks `slot`, whose export becomes ready at `ready`, until it is seen FINISHED.
  Asked ask(const Slot& slot, Instant ready) {
    const auto delays = readiness_sample(store_, job_.name, slot);
    Instant at = first_ask(job_, slot, delays);
    state::SlotRecord before;
    Asked asked;
    for (;;) {
      ++asked.asks;
      EXPECT_GE(at, slot.end() + job_.ready_after) << slot.name();
      if (at >= ready) {
        if (const auto delay = observed_delay(job_, slot, before, at)) {
          store_.record_readiness(job_.name, readiness_class(slot), slot.name(), *delay, at,
                                  kReadinessKept);
        }
        asked.archived = at;
        return asked;
      }
      before.attempts = asked.asks;
      before.state = state::SlotState::waiting;
      before.updated_at = at;
      const Instant next = next_ask(job_, slot, delays, at);
      EXPECT_GT(next, at);
      at = next;
    }
  }
  std::vector<std::chrono::seconds> sample(const Slot& slot) {
    return readiness_sample(store_, job_.name, slot);
  }
  std::size_t observations(std::string_view readiness_class) {
    return store_.readiness(job_.name, readiness_class).size();
  }

 private:
  config::Job job_;
  testing::TempDir dir_;
  state::StateStore store_{dir_.path() / "state.db"};
};

// When the naive poller (end + ready_after, then every poll_every) sees an export ready
// at `ready`.
Instant naive_archived(const config::Job& job, const Slot& slot, Instant ready) {
  Instant at = slot.end() + job.ready_after;
  while (at < ready) {
    at += job.poll_every;
  }
  return at;
}

// Ready `minutes` after the slot's end: 90% within 35-45 min, the rest up to 2 h.
std::chrono::seconds realistic_delay(std::minstd_rand& random) {
  std::uniform_real_distribution<double> share{0, 1};
  const double minutes = share(random) < 0.9 ? 35 + 10 * share(random) : 45 + 75 * share(random);
  return std::chrono::seconds{static_cast<long>(minutes * 60)};
}

config::Job polled_hourly() {
  auto job = hourly();
  job.poll_every = 5min;
  return job;
}

// A day hour (Beijing): the runs below start there and go on across the late hours.
const Slot kFirstDayHour = *Slot::parse("2026-11-22T08", Granularity::hour);

TEST(Readiness, FewObservationsKeepTodaysSchedule) {
  const auto job = polled_hourly();
  const std::vector<std::chrono::seconds> seven(kReadinessMinimum - 1, 30min);
  for (const char* name : {"2026-11-22T08", "2026-11-22T23"}) {  // a late hour too
    const Slot slot = *Slot::parse(name, Granularity::hour);
    const Instant ready = ready_at(job, slot);
    EXPECT_EQ(first_ask(job, slot, seven), ready);
    EXPECT_EQ(first_ask(job, slot, {}), ready);
    for (const std::chrono::seconds after : {0s, 150s, 1200s, 10800s}) {
      EXPECT_EQ(next_ask(job, slot, seven, ready + after),
                ready + after + poll_delay(job, slot, ready + after));
    }
  }
}

TEST(Readiness, AsksConcentrateWhereSlotsBecomeReady) {
  const auto job = polled_hourly();
  ReadinessRun run{job};
  std::minstd_rand random{7};
  Slot slot = kFirstDayHour;
  int early_asks = 0, late_asks = 0;
  for (int k = 0; k < 96; ++k, slot = slot.next()) {
    const Asked asked = run.ask(slot, slot.end() + realistic_delay(random));
    (k < 8 ? early_asks : late_asks) += k < 8 || k >= 48 ? asked.asks : 0;
  }
  // Today's schedule asks about 3.3 times for this distribution; learned, well under 2.5
  // (the 90% within 35-45 min are asked about at 40, 42.5 and 45 min).
  EXPECT_GT(early_asks / 8.0, 2.8);
  EXPECT_LT(late_asks / 48.0, 2.5);
  EXPECT_EQ(run.observations("hour"), static_cast<std::size_t>(kReadinessKept));
  EXPECT_EQ(run.observations("late_hour"), 12u);  // 3 a day
}

// Mean asks and median delay from ready to seen (minutes) of `count` slots from `slot`
// on, ready as the docs say (late hours 20 minutes later) plus `shift`.
struct Figures {
  double asks = 0, delay_minutes = 0;
};
Figures ask_slots(ReadinessRun& run, Slot& slot, int count, std::minstd_rand& random,
                  std::chrono::minutes shift) {
  Figures figures;
  std::vector<double> delays;
  for (int k = 0; k < count; ++k, slot = slot.next()) {
    const Instant ready = ready_at(polled_hourly(), slot) - 40min + realistic_delay(random) + shift;
    const Asked asked = run.ask(slot, ready);
    figures.asks += asked.asks / static_cast<double>(count);
    delays.push_back(std::chrono::duration<double>(asked.archived - ready).count() / 60);
  }
  std::ranges::sort(delays);
  figures.delay_minutes = delays[delays.size() / 2];
  return figures;
}

TEST(Readiness, FollowsAVendorThirtyMinutesSlowerWithinADay) {
  const auto job = polled_hourly();
  ReadinessRun run{job};
  std::minstd_rand random{11};
  Slot slot = kFirstDayHour;
  const Figures settled = ask_slots(run, slot, 48, random, 0min);
  // From here the vendor is 30 minutes slower. The bound (never a gap over two polls)
  // costs asks before the new bulk (25-35 min after ready_at) whatever is learned; what
  // adapts is where the close asks go: on the old bulk at first, on the new one within
  // a day, where the wait from ready to seen is back to what it was.
  const Figures shifted = ask_slots(run, slot, 6, random, 30min);
  ask_slots(run, slot, 12, random, 30min);
  const Figures followed = ask_slots(run, slot, 24, random, 30min);
  // (The naive poller's median wait is 2.5 minutes: half its spacing.)
  EXPECT_GT(shifted.delay_minutes, 4.0);
  EXPECT_LT(followed.delay_minutes, 3.0);
  EXPECT_LT(followed.asks, shifted.asks);
  EXPECT_LT(settled.delay_minutes, 3.0);
  // And back: a vendor faster again is followed too, with as few asks as before.
  ask_slots(run, slot, 24, random, 0min);
  const Figures faster = ask_slots(run, slot, 24, random, 0min);
  EXPECT_LT(faster.asks, settled.asks);
  EXPECT_LT(faster.delay_minutes, 3.5);
}

std::chrono::seconds median_of(std::vector<std::chrono::seconds> delays) {
  std::ranges::sort(delays);
  return delays.empty() ? 0s : delays[delays.size() / 2];
}

TEST(Readiness, LateHoursFollowAShiftOfTheOtherHoursBeforeTheirOwnShowsIt) {
  const auto job = polled_hourly();
  ReadinessRun run{job};
  std::minstd_rand random{5};
  Slot slot = kFirstDayHour;
  ask_slots(run, slot, 96, random, 0min);  // 4 days: 12 late hours of their own
  const auto late_before = run.sample(*Slot::parse("2026-11-26T23", Granularity::hour));
  ASSERT_GE(late_before.size(), kReadinessMinimum);
  // The vendor 30 minutes slower: the late hours are asked before any of them was seen
  // in the new regime, as soon as the other hours show it (kRegimeRun of them).
  int shifted = 0;
  for (; shifted < 24 && (shifted < static_cast<int>(kRegimeRun) || !is_late_hour(slot));
       ++shifted) {
    ask_slots(run, slot, 1, random, 30min);
  }
  ASSERT_TRUE(is_late_hour(slot)) << slot.name();
  const auto late_now = run.sample(slot);
  EXPECT_GE(median_of(late_now) - median_of(late_before), 20min) << shifted << " slots after";
  // Within the day of slots the shift began, they are asked where the new bulk is: after
  // their own delays, with 3 of them of the new regime, the same holds.
  ask_slots(run, slot, 24, random, 30min);
  Slot late = slot;
  while (!is_late_hour(late)) {
    late = late.next();
  }
  EXPECT_GE(median_of(run.sample(late)) - median_of(late_before), 20min);
}

TEST(Readiness, ARegimeChangeNeedsARunBeyondTheOldRangeADayOneBeyondAll) {
  // Latest first: 12 older delays of 0-5 minutes, then what the vendor does now.
  std::vector<std::chrono::seconds> older;
  for (int k = 0; k < 12; ++k) {
    older.push_back(std::chrono::seconds{25 * k});
  }
  auto with = [&](std::vector<std::chrono::seconds> latest) {
    latest.insert(latest.end(), older.begin(), older.end());
    return latest;
  };
  // Hours: two slow ones may be the tail; three in a row are a new regime, the older
  // delays then moved by the difference of the medians.
  EXPECT_EQ(regime_shift(with({31min, 29min}), "hour"), std::nullopt);
  const auto slower = regime_shift(with({31min, 29min, 30min}), "hour");
  ASSERT_TRUE(slower.has_value());
  EXPECT_EQ(slower->run, 3u);
  EXPECT_EQ(slower->by, 30min - 150s);
  const auto moved = follow_shift(with({31min, 29min, 30min}), *slower);
  EXPECT_EQ(moved[0], 31min);
  EXPECT_EQ(moved[3], 30min - 150s);
  EXPECT_EQ(median_of(moved), 30min);
  // Once it has gone on, the whole run counts.
  EXPECT_EQ(regime_shift(with({30min, 31min, 29min, 30min, 32min}), "hour")->run, 5u);
  // A small drift is left to the weights, and a run inside the old range is no change.
  EXPECT_EQ(regime_shift(with({6min, 7min, 6min}), "hour"), std::nullopt);
  EXPECT_EQ(regime_shift(with({1min, 2min, 3min}), "hour"), std::nullopt);
  // Faster: moved down, never below the floor.
  std::vector<std::chrono::seconds> late(12, 40min);
  late.insert(late.begin(), {10min, 11min, 9min});
  const auto faster = regime_shift(late, "hour");
  ASSERT_TRUE(faster.has_value());
  EXPECT_EQ(faster->by, -30min);
  EXPECT_EQ(follow_shift(late, {.run = 3, .by = -50min})[5], 0s);
  // Days: one a day, so a single one beyond every older day is a change; one within
  // their range is not.
  EXPECT_EQ(regime_shift(with({35min}), "day")->run, 1u);
  EXPECT_EQ(regime_shift(with({4min}), "day"), std::nullopt);
  EXPECT_EQ(regime_shift(with({35min}), "hour"), std::nullopt);
}

TEST(Readiness, ADayJobFollowsAShiftWithinADayOfSlots) {
  auto job = polled_hourly();
  job.granularity = Granularity::day;
  job.ready_after = 2h;
  ReadinessRun run{job};
  Slot slot = *Slot::parse("2026-10-01", Granularity::day);
  std::minstd_rand random{13};
  std::uniform_int_distribution<int> minutes{0, 60};  // 2 to 3 h after the day's end
  for (int k = 0; k < 20; ++k, slot = slot.next()) {
    run.ask(slot, slot.end() + 2h + std::chrono::minutes{minutes(random)});
  }
  const auto before = median_of(run.sample(slot));
  // The vendor 90 minutes slower: the next day is asked where the new one is.
  run.ask(slot, slot.end() + 3h + 30min + std::chrono::minutes{minutes(random)});
  slot = slot.next();
  EXPECT_GE(median_of(run.sample(slot)) - before, 60min);
}

TEST(Readiness, NeverLaterThanPollEveryPastTheNaivePoller) {
  const auto job = polled_hourly();
  std::minstd_rand random{3};
  std::uniform_real_distribution<double> minutes{0, 180};
  // Histories that mislead: all early, all late, then the vendor does something else.
  for (const std::chrono::minutes told : {0min, 40min, 90min}) {
    ReadinessRun run{job};
    Slot slot = kFirstDayHour;
    for (int k = 0; k < 12; ++k, slot = slot.next()) {
      run.ask(slot, ready_at(job, slot) + told);
    }
    for (int k = 0; k < 72; ++k, slot = slot.next()) {
      const Instant ready =
          slot.end() + std::chrono::seconds{static_cast<long>(60 * minutes(random))};
      const Asked asked = run.ask(slot, ready);
      EXPECT_LE(asked.archived, naive_archived(job, slot, ready) + job.poll_every)
          << slot.name() << " told " << told.count();
    }
  }
}

TEST(Readiness, FirstAskBetweenReadyAfterAndOnePollLater) {
  const auto job = polled_hourly();
  const std::vector<std::chrono::seconds> early(16, 0s), bulk(16, 12min), late(16, 3h);
  const Slot slot = kFirstDayHour;
  const Instant floor = slot.end() + job.ready_after;
  EXPECT_EQ(first_ask(job, slot, early), floor);
  EXPECT_EQ(first_ask(job, slot, late), floor + 5min);  // never past floor + poll_every
  EXPECT_EQ(first_ask(job, slot, bulk), floor + 5min);
  // A late hour that proves no later than the others is asked at the floor too, not
  // 20 minutes later as the fixed schedule does.
  const Slot late_hour = *Slot::parse("2026-11-22T23", Granularity::hour);
  EXPECT_EQ(first_ask(job, late_hour, early), late_hour.end() + job.ready_after);
  // A next ask waits for the bulk of the sample, but no longer than two polls.
  EXPECT_EQ(next_ask(job, slot, bulk, floor + 5min), floor + 12min + 30s);
  EXPECT_EQ(next_ask(job, slot, late, floor + 5min), floor + 15min);
  EXPECT_EQ(next_ask(job, slot, late, floor + 7min), floor + 15min);
}

TEST(Readiness, LateHoursBorrowTheOtherHoursUntilTheyHaveTheirOwn) {
  testing::TempDir dir;
  state::StateStore store{dir.path() / "state.db"};
  const Slot late_hour = *Slot::parse("2026-11-22T23", Granularity::hour);
  Slot slot = kFirstDayHour;
  for (int k = 0; k < 10; ++k, slot = slot.next()) {
    store.record_readiness("job", "hour", slot.name(), std::chrono::seconds{k}, slot.end(), 8);
  }
  // Kept: the 8 latest, latest first.
  const std::vector<std::chrono::seconds> hours{9s, 8s, 7s, 6s, 5s, 4s, 3s, 2s};
  EXPECT_EQ(store.readiness("job", "hour"), hours);
  EXPECT_EQ(readiness_sample(store, "job", late_hour), hours);
  for (int k = 0; k < 8; ++k) {
    store.record_readiness("job", "late_hour", "2026-11-" + std::to_string(10 + k) + "T23", 20min,
                           slot.end(), 8);
  }
  EXPECT_EQ(readiness_sample(store, "job", late_hour), std::vector<std::chrono::seconds>(8, 20min));
  EXPECT_EQ(readiness_sample(store, "other", late_hour), std::vector<std::chrono::seconds>{});
}

TEST(Readiness, ObservesOnlyWhatTheAsksBracket) {
  const auto job = polled_hourly();
  const Slot slot = kFirstDayHour;
  const Instant floor = slot.end() + job.ready_after;
  state::SlotRecord before;
  // First ask on time: half a poll before it (not before the floor); a catch-up hours
  // later: nothing.
  EXPECT_EQ(observed_delay(job, slot, before, floor), 0s);
  EXPECT_EQ(observed_delay(job, slot, before, floor + 5min), 150s);
  EXPECT_EQ(observed_delay(job, slot, before, floor + 3h), std::nullopt);
  // After a "not ready" at +5 min, FINISHED at +10: in the middle.
  before.attempts = 1;
  before.state = state::SlotState::waiting;
  before.updated_at = floor + 5min;
  EXPECT_EQ(observed_delay(job, slot, before, floor + 10min), 450s);
  // The daemon was away between the asks, or the last answer was an error: nothing.
  EXPECT_EQ(observed_delay(job, slot, before, floor + 2h), std::nullopt);
  before.state = state::SlotState::pending;
  EXPECT_EQ(observed_delay(job, slot, before, floor + 10min), std::nullopt);
}

}  // namespace
}  // namespace gio::scheduler
