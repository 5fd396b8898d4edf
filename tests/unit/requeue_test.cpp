// The re-queue and repair policy, against a real state store and archive folder.

#include "requeue/requeue.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "support/temp_dir.hpp"

namespace gio::requeue {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using state::SlotState;

class Requeue : public ::testing::Test {
 protected:
  Requeue() : store_(dir_.path() / "state.db") {
    job_.name = "shop";
    job_.granularity = Granularity::hour;
    job_.ready_after = std::chrono::minutes{40};
  }

  Slot slot(std::string_view name) const { return *Slot::parse(name, Granularity::hour); }

  // Puts the slot in the store in `state`.
  void put(const Slot& slot, SlotState state, std::string last_error = "") {
    const state::PlannedSlot planned{.slot = slot.name(), .start = slot.start(), .next_at = now_};
    store_.plan(job_.name, std::span{&planned, 1}, now_);
    store_.update(
        job_.name, slot.name(),
        {.state = state, .next_at = now_, .last_error = last_error, .count_attempt = true}, now_);
  }

  fs::path marker(const Slot& slot, std::string_view type) const {
    return archive_dir() / job_.name / type / ("dt=" + slot.date()) / ("hour=" + slot.hour()) /
           "_SUCCESS";
  }
  void archive_done(const Slot& slot, std::string_view type) {
    fs::create_directories(marker(slot, type).parent_path());
    std::ofstream{marker(slot, type)};
    store_.record_file({.job = job_.name,
                        .slot = slot.name(),
                        .data_type = std::string{type},
                        .name = "part-0.csv.gz",
                        .bytes = 3,
                        .sha256 = "x"});
  }

  fs::path archive_dir() const { return dir_.path() / "archive"; }
  SlotState state_of(const Slot& slot) { return store_.find(job_.name, slot.name())->state; }
  Requeuer requeuer() { return Requeuer{store_, archive_dir(), now_}; }

  gio::testing::TempDir dir_;
  state::StateStore store_;
  config::Job job_;
  Instant now_ = *parse_utc("2026-11-22T10:00:00Z");  // 18:00 in Beijing
};

TEST_F(Requeue, SlotsBetweenIsInclusiveAndBounded) {
  const auto three = slots_between(slot("2026-11-22T01"), slot("2026-11-22T03"));
  ASSERT_TRUE(three);
  ASSERT_EQ(three->size(), 3u);
  EXPECT_EQ(three->back().name(), "2026-11-22T03");
  const Slot first = slot("2026-01-01T00");
  EXPECT_FALSE(slots_between(
      first, Slot::containing(first.start() + kMaxBackfillSlots * 1h, Granularity::hour)));
}

TEST_F(Requeue, BackfillDecidesEachSlotByItsRow) {
  const Slot unplanned = slot("2026-11-22T01"), failed = slot("2026-11-22T02"),
             waiting = slot("2026-11-22T03"), downloading = slot("2026-11-22T04"),
             done = slot("2026-11-22T05"), not_ready = slot("2026-11-22T17"),
             lost = slot("2026-11-01T05");
  put(failed, SlotState::failed);
  put(waiting, SlotState::waiting);
  put(downloading, SlotState::downloading);
  put(done, SlotState::done);
  const std::vector slots{lost, unplanned, failed, waiting, downloading, done, not_ready};
  const Report report = requeuer().backfill(job_, slots, {});
  ASSERT_EQ(report.decisions.size(), slots.size());
  EXPECT_EQ(report.decisions[0].outcome, Outcome::skipped);
  EXPECT_TRUE(report.decisions[0].what.starts_with("skipped: lost")) << report.decisions[0].what;
  EXPECT_EQ(report.decisions[1].what, "queued (not planned before)");
  EXPECT_EQ(report.decisions[2].what, "queued (was failed)");
  EXPECT_EQ(report.decisions[3].what, "already queued (waiting; due now)");
  EXPECT_EQ(report.decisions[4].what, "skipped: downloading (the daemon is on it)");
  EXPECT_EQ(report.decisions[5].what, "skipped: done (use --force to fetch it again)");
  EXPECT_TRUE(report.decisions[6].what.starts_with("skipped: not ready until"));
  EXPECT_EQ(report.count(Outcome::queued), 2);
  EXPECT_EQ(report.count(Outcome::already_queued), 1);
  EXPECT_EQ(report.count(Outcome::skipped), 4);

  EXPECT_EQ(state_of(unplanned), SlotState::pending);
  EXPECT_EQ(state_of(failed), SlotState::pending);
  EXPECT_EQ(store_.find(job_.name, failed.name())->attempts, 0);  // a fresh give_up_after
  EXPECT_EQ(state_of(downloading), SlotState::downloading);
  EXPECT_EQ(state_of(done), SlotState::done);
  EXPECT_FALSE(store_.find(job_.name, lost.name()));
}

TEST_F(Requeue, ForcedBackfillForgetsTheArchiveAndUnmarksIt) {
  const Slot done = slot("2026-11-22T05");
  put(done, SlotState::done);
  archive_done(done, "visit");
  // A partition on disk that no files row names loses its marker too.
  fs::create_directories(marker(done, "page").parent_path());
  std::ofstream{marker(done, "page")};

  const Report dry = requeuer().backfill(job_, std::vector{done}, {.force = true, .dry_run = true});
  EXPECT_EQ(dry.decisions.at(0).what, "queued (was done; --force)");
  EXPECT_EQ(state_of(done), SlotState::done);
  EXPECT_TRUE(fs::exists(marker(done, "visit")));

  const Report report = requeuer().backfill(job_, std::vector{done}, {.force = true});
  EXPECT_EQ(report.count(Outcome::queued), 1);
  EXPECT_EQ(state_of(done), SlotState::pending);
  EXPECT_TRUE(store_.files(job_.name, done.name()).empty());
  EXPECT_FALSE(fs::exists(marker(done, "visit")));
  EXPECT_FALSE(fs::exists(marker(done, "page")));
}

TEST_F(Requeue, RetryQueuesFailedSlotsOnly) {
  const Slot failed = slot("2026-11-22T02"), other = slot("2026-11-22T03"),
             pending = slot("2026-11-22T04");
  put(failed, SlotState::failed, "ERROR from the API");
  put(other, SlotState::done);
  put(pending, SlotState::pending);
  const Report all = requeuer().retry(job_, std::nullopt, false);
  ASSERT_EQ(all.decisions.size(), 1u);
  EXPECT_EQ(all.decisions[0], (Decision{"shop", failed.name(), Outcome::queued,
                                        "queued (was failed: ERROR from the API)"}));
  EXPECT_EQ(state_of(failed), SlotState::pending);

  EXPECT_EQ(requeuer().retry(job_, pending, false).decisions.at(0).what,
            "already queued (pending)");
  EXPECT_EQ(requeuer().retry(job_, other, false).decisions.at(0).what,
            "skipped: done (use backfill --force to fetch it again)");
  EXPECT_EQ(requeuer().retry(job_, slot("2026-11-22T08"), false).decisions.at(0).what,
            "skipped: not planned yet (use backfill to queue it)");
}

TEST_F(Requeue, RepairQueuesDamagedDoneSlotsInsideRetention) {
  const Slot damaged = slot("2026-11-22T05"), old = slot("2026-11-01T05"),
             requeued = slot("2026-11-22T06");
  put(damaged, SlotState::done);
  put(old, SlotState::done);
  put(requeued, SlotState::pending);
  archive_done(damaged, "visit");
  const std::vector<DamagedSlot> found{
      {&job_, damaged, {{"visit", "part-0.csv.gz"}}, {"visit"}},
      {&job_, old, {{"visit", ""}}, {"visit"}},
      {&job_, requeued, {{"visit", ""}}, {"visit"}},
  };
  const Report report = requeuer().repair(found);
  ASSERT_EQ(report.decisions.size(), 3u);
  EXPECT_EQ(report.decisions[0].what, "queued");
  EXPECT_TRUE(report.decisions[1].what.starts_with("not repairable: the vendor's 15-day"));
  EXPECT_EQ(report.decisions[2].what, "already queued (pending)");
  EXPECT_EQ(state_of(damaged), SlotState::pending);
  EXPECT_TRUE(store_.files(job_.name, damaged.name()).empty());
  EXPECT_FALSE(fs::exists(marker(damaged, "visit")));
  EXPECT_EQ(state_of(old), SlotState::done);
}

}  // namespace
}  // namespace gio::requeue
