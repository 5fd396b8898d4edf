#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "state/db_lock.hpp"
#include "state/sqlite.hpp"
#include "state/state_store.hpp"
#include "support/temp_dir.hpp"

namespace gio::state {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::minutes;

using testing::TempDir;

// A plain connection, as another process (the CLI) would have.
class RawConnection {
 public:
  explicit RawConnection(const fs::path& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path;
    }
  }
  ~RawConnection() { sqlite3_close_v2(db_); }
  int exec(const char* sql) { return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); }
  std::string text(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string result;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      result = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return result;
  }

 private:
  sqlite3* db_ = nullptr;
};

Instant at(std::string_view text) {
  const auto parsed = parse_utc(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(Instant{});
}

const Instant kT0 = at("2026-11-21T19:00:00Z");  // slot 2026-11-22T03 in Beijing

PlannedSlot hour(Instant start, Instant next_at) {
  return {Slot::containing(start, Granularity::hour).name(), start, next_at};
}

std::vector<std::string> names(const std::vector<SlotRecord>& records) {
  std::vector<std::string> result;
  for (const SlotRecord& record : records) {
    result.push_back(record.job + "/" + record.slot);
  }
  return result;
}

mode_t mode_of(const fs::path& path) {
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0) << path;
  return info.st_mode & 0777;
}

class StateStoreTest : public ::testing::Test {
 protected:
  fs::path db_path() const { return dir_.path() / "state.db"; }

  TempDir dir_;
};

TEST(SlotStateText, RoundTrips) {
  for (const SlotState state : {SlotState::pending, SlotState::waiting, SlotState::downloading,
                                SlotState::done, SlotState::failed, SlotState::lost}) {
    EXPECT_EQ(parse_slot_state(to_string(state)), state);
  }
  EXPECT_EQ(to_string(SlotState::downloading), "downloading");
  EXPECT_FALSE(parse_slot_state("Done"));
  EXPECT_FALSE(parse_slot_state(""));
}

TEST(StateErrorTest, BusyIsBusyOrLockedWithTheirExtendedCodes) {
  for (const int code : {SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT, SQLITE_BUSY_TIMEOUT, SQLITE_LOCKED,
                         SQLITE_LOCKED_SHAREDCACHE}) {
    EXPECT_TRUE(StateError("held", code).busy()) << code;
  }
  for (const int code : {SQLITE_OK, SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_IOERR_LOCK,
                         SQLITE_CONSTRAINT_FOREIGNKEY, SQLITE_CANTOPEN}) {
    EXPECT_FALSE(StateError("other", code).busy()) << code;
  }
}

TEST_F(StateStoreTest, PlanInsertsOnlyNewSlotsAsPending) {
  StateStore store{db_path()};
  const std::vector<PlannedSlot> first = {hour(kT0, kT0 + minutes(40)),
                                          hour(kT0 + hours(1), kT0 + minutes(100))};
  EXPECT_EQ(store.plan("shop-hourly", first, kT0 + hours(2)), 2);

  const auto record = store.find("shop-hourly", "2026-11-22T03");
  ASSERT_TRUE(record);
  EXPECT_EQ(record->job, "shop-hourly");
  EXPECT_EQ(record->start, kT0);
  EXPECT_EQ(record->state, SlotState::pending);
  EXPECT_EQ(record->attempts, 0);
  EXPECT_EQ(record->next_at, kT0 + minutes(40));
  EXPECT_EQ(record->api_status, "");
  EXPECT_EQ(record->last_error, "");
  EXPECT_EQ(record->created_at, kT0 + hours(2));
  EXPECT_EQ(record->updated_at, kT0 + hours(2));
  EXPECT_FALSE(record->done_at);

  // Re-planning the same slots (and one more) adds only the new one and leaves the
  // existing rows as they are.
  store.update("shop-hourly", "2026-11-22T03",
               {.state = SlotState::waiting, .next_at = kT0 + hours(5), .count_attempt = true},
               kT0 + hours(3));
  const std::vector<PlannedSlot> second = {hour(kT0, kT0), hour(kT0 + hours(1), kT0),
                                           hour(kT0 + hours(2), kT0 + hours(3))};
  EXPECT_EQ(store.plan("shop-hourly", second, kT0 + hours(4)), 1);
  EXPECT_EQ(store.plan("shop-hourly", second, kT0 + hours(4)), 0);
  const auto kept = store.find("shop-hourly", "2026-11-22T03");
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->state, SlotState::waiting);
  EXPECT_EQ(kept->next_at, kT0 + hours(5));
  EXPECT_EQ(kept->attempts, 1);
  EXPECT_EQ(kept->created_at, kT0 + hours(2));

  // The same slot name in another job is another slot.
  EXPECT_EQ(store.plan("other", second, kT0), 3);
  EXPECT_FALSE(store.find("nobody", "2026-11-22T03"));
}

TEST_F(StateStoreTest, DueIsOldestStartFirstAcrossJobsAndHonoursLimit) {
  StateStore store{db_path()};
  const Instant now = kT0 + hours(10);
  const std::vector<PlannedSlot> a = {hour(kT0 + hours(2), now - hours(1)),
                                      hour(kT0, now),                           // due exactly now
                                      hour(kT0 + hours(3), now + minutes(1))};  // not yet
  const std::vector<PlannedSlot> b = {hour(kT0 + hours(1), now - hours(2)),
                                      hour(kT0, now - hours(3))};
  store.plan("b", b, kT0);
  store.plan("a", a, kT0);
  // Slots the scheduler has no more work for are never due.
  const std::vector<PlannedSlot> c = {hour(kT0 - hours(3), kT0), hour(kT0 - hours(2), kT0),
                                      hour(kT0 - hours(1), kT0)};
  store.plan("c", c, kT0);
  store.update("c", c[0].slot, {.state = SlotState::done, .next_at = kT0}, kT0);
  store.update("c", c[1].slot, {.state = SlotState::failed, .next_at = kT0}, kT0);
  store.update("c", c[2].slot, {.state = SlotState::lost, .next_at = kT0}, kT0);
  // waiting and downloading are due like pending.
  store.update("b", b[0].slot, {.state = SlotState::waiting, .next_at = now - hours(2)}, kT0);
  store.update("a", a[0].slot, {.state = SlotState::downloading, .next_at = now - hours(1)}, kT0);

  const std::vector<std::string> jobs = {"a", "b", "c"};
  EXPECT_EQ(names(store.due(now, 10, jobs)),
            (std::vector<std::string>{"a/2026-11-22T03", "b/2026-11-22T03", "b/2026-11-22T04",
                                      "a/2026-11-22T05"}));
  EXPECT_EQ(names(store.due(now, 2, jobs)),
            (std::vector<std::string>{"a/2026-11-22T03", "b/2026-11-22T03"}));
  EXPECT_TRUE(store.due(now, 0, jobs).empty());
  EXPECT_EQ(store.due(now + minutes(1), 10, jobs).size(), 5u);
  EXPECT_TRUE(store.due(kT0, 10, jobs).empty());
  // Only the jobs asked for: rows of a job no longer configured never crowd out work.
  const std::vector<std::string> only_b = {"b", "no \"such\" job"};
  EXPECT_EQ(names(store.due(now, 10, only_b)),
            (std::vector<std::string>{"b/2026-11-22T03", "b/2026-11-22T04"}));
}

TEST_F(StateStoreTest, NextDueIsEarliestOverActiveStates) {
  StateStore store{db_path()};
  EXPECT_FALSE(store.next_due());
  const std::vector<PlannedSlot> slots = {hour(kT0, kT0 + hours(5)),
                                          hour(kT0 + hours(1), kT0 + hours(3)),
                                          hour(kT0 + hours(2), kT0 + hours(4))};
  store.plan("job", slots, kT0);
  EXPECT_EQ(store.next_due(), kT0 + hours(3));

  // A done slot's next_at no longer counts; a waiting one does.
  store.update("job", slots[1].slot, {.state = SlotState::done, .next_at = kT0}, kT0);
  store.update("job", slots[0].slot, {.state = SlotState::waiting, .next_at = kT0 + hours(1)}, kT0);
  EXPECT_EQ(store.next_due(), kT0 + hours(1));
  store.update("job", slots[0].slot, {.state = SlotState::failed, .next_at = kT0}, kT0);
  store.update("job", slots[2].slot, {.state = SlotState::lost, .next_at = kT0}, kT0);
  EXPECT_FALSE(store.next_due());
}

TEST_F(StateStoreTest, UpdateAppliesTransitions) {
  StateStore store{db_path()};
  const PlannedSlot slot = hour(kT0, kT0 + minutes(40));
  store.plan("job", std::span{&slot, 1}, kT0);

  store.update("job", slot.slot,
               {.state = SlotState::waiting,
                .next_at = kT0 + minutes(45),
                .api_status = "RUNNING",
                .count_attempt = true},
               kT0 + minutes(40));
  auto record = store.find("job", slot.slot);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->state, SlotState::waiting);
  EXPECT_EQ(record->attempts, 1);
  EXPECT_EQ(record->api_status, "RUNNING");
  EXPECT_EQ(record->next_at, kT0 + minutes(45));
  EXPECT_EQ(record->updated_at, kT0 + minutes(40));
  EXPECT_EQ(record->created_at, kT0);

  // Unset optionals keep what is stored; a failed ask records its error.
  store.update("job", slot.slot,
               {.state = SlotState::pending,
                .next_at = kT0 + minutes(50),
                .last_error = "HTTP 502 from the API",
                .count_attempt = true},
               kT0 + minutes(45));
  record = store.find("job", slot.slot);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->state, SlotState::pending);
  EXPECT_EQ(record->attempts, 2);
  EXPECT_EQ(record->api_status, "RUNNING");
  EXPECT_EQ(record->last_error, "HTTP 502 from the API");

  // No attempt counted for a transition that asked nothing.
  store.update(
      "job", slot.slot,
      {.state = SlotState::downloading, .next_at = kT0 + minutes(55), .api_status = "FINISHED"},
      kT0 + minutes(50));
  record = store.find("job", slot.slot);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->attempts, 2);
  EXPECT_EQ(record->api_status, "FINISHED");
  EXPECT_EQ(record->last_error, "HTTP 502 from the API");
  EXPECT_FALSE(record->done_at);

  // "" clears the error; done stamps done_at.
  store.update("job", slot.slot,
               {.state = SlotState::done, .next_at = kT0 + hours(1), .last_error = ""},
               kT0 + minutes(58));
  record = store.find("job", slot.slot);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->state, SlotState::done);
  EXPECT_EQ(record->last_error, "");
  EXPECT_EQ(record->done_at, kT0 + minutes(58));
  EXPECT_EQ(record->updated_at, kT0 + minutes(58));

  // Queued again (backfill --force): no longer done, so no done_at.
  store.update("job", slot.slot, {.state = SlotState::pending, .next_at = kT0 + hours(2)},
               kT0 + hours(2));
  record = store.find("job", slot.slot);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->state, SlotState::pending);
  EXPECT_FALSE(record->done_at);
  EXPECT_EQ(record->attempts, 2);
}

TEST_F(StateStoreTest, UpdateOfUnknownSlotThrows) {
  StateStore store{db_path()};
  const PlannedSlot slot = hour(kT0, kT0);
  store.plan("job", std::span{&slot, 1}, kT0);
  try {
    store.update("job", "2026-11-22T04", {.state = SlotState::done, .next_at = kT0}, kT0);
    FAIL() << "expected StateError";
  } catch (const StateError& error) {
    EXPECT_EQ(error.code(), SQLITE_NOTFOUND);
    EXPECT_NE(std::string{error.what()}.find("2026-11-22T04"), std::string::npos);
  }
  EXPECT_THROW(store.update("other", slot.slot, {.state = SlotState::done, .next_at = kT0}, kT0),
               StateError);
  EXPECT_FALSE(store.find("job", "2026-11-22T04"));
  EXPECT_EQ(store.find("job", slot.slot)->state, SlotState::pending);
}

TEST_F(StateStoreTest, ResumeDownloadsMakesInterruptedDownloadsDueNow) {
  StateStore store{db_path()};
  const std::vector<PlannedSlot> slots = {hour(kT0, kT0), hour(kT0 + hours(1), kT0),
                                          hour(kT0 + hours(2), kT0), hour(kT0 + hours(3), kT0)};
  store.plan("job", slots, kT0);
  const Instant now = kT0 + hours(6);
  store.update("job", slots[0].slot, {.state = SlotState::downloading, .next_at = now + hours(1)},
               kT0);
  store.update("job", slots[1].slot, {.state = SlotState::downloading, .next_at = now - hours(1)},
               kT0);
  store.update("job", slots[2].slot, {.state = SlotState::waiting, .next_at = now + hours(1)}, kT0);

  EXPECT_TRUE(store.due(now, 10, std::vector<std::string>{"job"}).size() ==
              2u);  // slots[1] and slots[3]
  EXPECT_EQ(store.resume_downloads(now), 2);
  EXPECT_EQ(store.find("job", slots[0].slot)->next_at, now);
  EXPECT_EQ(store.find("job", slots[0].slot)->state, SlotState::downloading);
  // Already due: keeps its place.
  EXPECT_EQ(store.find("job", slots[1].slot)->next_at, now - hours(1));
  // Not a download: untouched.
  EXPECT_EQ(store.find("job", slots[2].slot)->next_at, now + hours(1));
  EXPECT_EQ(
      names(store.due(now, 10, std::vector<std::string>{"job"})),
      (std::vector<std::string>{"job/2026-11-22T03", "job/2026-11-22T04", "job/2026-11-22T06"}));

  StateStore empty{dir_.path() / "empty.db"};
  EXPECT_EQ(empty.resume_downloads(now), 0);
}

TEST_F(StateStoreTest, PullInNextAtMakesSlotsDueFarAheadDueNowAndLeavesTheRest) {
  StateStore store{db_path()};
  const std::vector<PlannedSlot> slots = {hour(kT0, kT0), hour(kT0 + hours(1), kT0),
                                          hour(kT0 + hours(2), kT0), hour(kT0 + hours(3), kT0)};
  store.plan("job", slots, kT0);
  store.plan("other", slots, kT0);
  const Instant now = kT0 + hours(6);
  const Instant far = now + std::chrono::days{3};
  store.update("job", slots[0].slot, {.state = SlotState::waiting, .next_at = far}, kT0);
  store.update("job", slots[1].slot, {.state = SlotState::downloading, .next_at = far}, kT0);
  store.update("job", slots[2].slot, {.state = SlotState::failed, .next_at = far}, kT0);
  store.update("job", slots[3].slot, {.state = SlotState::pending, .next_at = now + hours(1)}, kT0);
  store.update("other", slots[0].slot, {.state = SlotState::waiting, .next_at = far}, kT0);

  store.plan("backlog", slots, kT0);
  const auto not_exists = [&](const std::string& slot, Instant next_at) {
    store.update("backlog", slot,
                 {.state = SlotState::waiting,
                  .next_at = next_at,
                  .api_status = "NOT_EXISTS",
                  .count_attempt = true},
                 kT0);
  };
  not_exists(slots[0].slot, now + hours(5));  // backed off on purpose: left
  not_exists(slots[1].slot, far);             // beyond any back-off: pulled in
  store.update("backlog", slots[2].slot, {.state = SlotState::waiting, .next_at = now + hours(5)},
               kT0);  // not a backlog slot: pulled in

  const StateStore::Backlog backlog{.status = "NOT_EXISTS", .beyond = now + hours(6)};
  EXPECT_EQ(store.pull_in_next_at("job", now + hours(1), backlog, now), 2);
  EXPECT_EQ(store.pull_in_next_at("backlog", now + hours(1), backlog, now), 2);
  EXPECT_EQ(store.find("backlog", slots[0].slot)->next_at, now + hours(5));
  EXPECT_EQ(store.find("backlog", slots[1].slot)->next_at, now);
  EXPECT_EQ(store.find("backlog", slots[2].slot)->next_at, now);
  EXPECT_EQ(store.find("job", slots[0].slot)->next_at, now);
  EXPECT_EQ(store.find("job", slots[1].slot)->next_at, now);
  EXPECT_EQ(store.find("job", slots[1].slot)->state, SlotState::downloading);
  EXPECT_EQ(store.find("job", slots[2].slot)->next_at, far);             // failed: not scheduled
  EXPECT_EQ(store.find("job", slots[3].slot)->next_at, now + hours(1));  // at the limit
  EXPECT_EQ(store.find("other", slots[0].slot)->next_at, far);           // another job's limit
}

TEST_F(StateStoreTest, FilesAreRecordedReplacedAndListed) {
  StateStore store{db_path()};
  const std::vector<PlannedSlot> slots = {hour(kT0, kT0), hour(kT0 + hours(1), kT0)};
  store.plan("job", slots, kT0);
  const ArchivedFile page{.job = "job",
                          .slot = slots[0].slot,
                          .data_type = "page",
                          .name = "part-0.csv.gz",
                          .bytes = 64ull << 20,
                          .sha256 = std::string(64, 'a'),
                          .archived_at = kT0 + hours(2),
                          .object = "https://files.example/a/part-0.csv.gz"};
  ArchivedFile visit = page;
  visit.data_type = "visit";
  visit.name = "part-1.csv.gz";
  visit.archived_at.reset();
  ArchivedFile visit0 = visit;
  visit0.name = "part-0.csv.gz";
  ArchivedFile other_slot = page;
  other_slot.slot = slots[1].slot;

  store.record_file(visit);
  store.record_file(page);
  store.record_file(visit0);
  store.record_file(other_slot);
  EXPECT_EQ(store.files("job", slots[0].slot), (std::vector<ArchivedFile>{page, visit0, visit}));

  // Same job+slot+data_type+name: replaced, not duplicated.
  ArchivedFile redone = page;
  redone.bytes = 12345;
  redone.sha256 = std::string(64, 'b');
  redone.archived_at = kT0 + hours(3);
  redone.object = "https://files.example/rerun/part-0.csv.gz";
  store.record_file(redone);
  EXPECT_EQ(store.files("job", slots[0].slot), (std::vector<ArchivedFile>{redone, visit0, visit}));
  EXPECT_EQ(store.files("job", slots[1].slot), std::vector<ArchivedFile>{other_slot});
  EXPECT_TRUE(store.files("job", "2026-11-22T09").empty());

  // A file must belong to a slot the store knows.
  ArchivedFile orphan = page;
  orphan.slot = "2026-11-22T09";
  try {
    store.record_file(orphan);
    FAIL() << "expected StateError";
  } catch (const StateError& error) {
    EXPECT_EQ(error.code(), SQLITE_CONSTRAINT_FOREIGNKEY);
  }
}

// Rows (issue 16): a file's rows and its rows per hour come back as recorded; NULL
// (not counted) stays distinct from 0; files_with_rows finds the files at a threshold.
TEST_F(StateStoreTest, FilesKeepTheirRowsAndRowsByHour) {
  StateStore store{db_path()};
  const std::vector<PlannedSlot> slots = {hour(kT0, kT0), hour(kT0 + hours(1), kT0)};
  store.plan("job", slots, kT0);
  std::vector<std::uint64_t> hours_of_day(24, 0);
  hours_of_day[0] = 3;
  hours_of_day[23] = 9'000'000'000ull;
  const ArchivedFile daily{.job = "job",
                           .slot = slots[0].slot,
                           .data_type = "visit",
                           .name = "a.csv.gz",
                           .bytes = 10,
                           .sha256 = "aa",
                           .rows = 9'000'000'003ull,
                           .rows_by_hour = hours_of_day};
  ArchivedFile uncounted = daily;
  uncounted.name = "b.csv.gz";
  uncounted.rows.reset();
  uncounted.rows_by_hour.clear();
  ArchivedFile empty = uncounted;
  empty.name = "c.csv.gz";
  empty.rows = 0;
  ArchivedFile chart = empty;
  chart.slot = slots[1].slot;
  chart.data_type = "chart-1";
  chart.name = "chart.csv";
  chart.rows = 200000;
  store.record_file(daily);
  store.record_file(uncounted);
  store.record_file(empty);
  store.record_file(chart);
  EXPECT_EQ(store.files("job", slots[0].slot),
            (std::vector<ArchivedFile>{daily, uncounted, empty}));
  EXPECT_EQ(store.files_with_rows("job", "chart.csv", 200000), std::vector<ArchivedFile>{chart});
  EXPECT_TRUE(store.files_with_rows("job", "chart.csv", 200001).empty());
  EXPECT_TRUE(store.files_with_rows("other", "chart.csv", 0).empty());
  EXPECT_TRUE(store.files_with_rows("job", "b.csv.gz", 0).empty());  // NULL is not 0

  // A file recorded again without counts loses them (a size-only re-fetch).
  store.record_file(
      ArchivedFile{uncounted.job, uncounted.slot, uncounted.data_type, "a.csv.gz", 10, "aa"});
  EXPECT_EQ(store.files("job", slots[0].slot).at(0).rows, std::nullopt);
  EXPECT_TRUE(store.files("job", slots[0].slot).at(0).rows_by_hour.empty());
}

TEST_F(StateStoreTest, SummarizeCountsAndLandmarks) {
  StateStore store{db_path()};
  JobSummary empty = store.summarize("job");
  EXPECT_EQ(empty.counts.size(), 7u);
  for (const auto& [state, count] : empty.counts) {
    EXPECT_EQ(count, 0) << to_string(state);
  }
  EXPECT_FALSE(empty.newest_done);
  EXPECT_FALSE(empty.oldest_not_done);
  EXPECT_FALSE(empty.next_action);

  std::vector<PlannedSlot> slots;
  for (int i = 0; i < 8; ++i) {
    slots.push_back(hour(kT0 + hours(i), kT0 + hours(20 + i)));
  }
  store.plan("job", slots, kT0);
  store.plan("other", std::span{slots}.first(1), kT0);
  // 03 lost, 04 done, 05 failed, 06 done, 07 waiting, 08 downloading, 09-10 pending
  store.update("job", slots[0].slot, {.state = SlotState::lost, .next_at = kT0}, kT0);
  store.update("job", slots[1].slot, {.state = SlotState::done, .next_at = kT0}, kT0);
  store.update("job", slots[2].slot, {.state = SlotState::failed, .next_at = kT0}, kT0);
  store.update("job", slots[3].slot, {.state = SlotState::done, .next_at = kT0}, kT0);
  store.update("job", slots[4].slot, {.state = SlotState::waiting, .next_at = kT0 + hours(9)}, kT0);
  store.update("job", slots[5].slot, {.state = SlotState::downloading, .next_at = kT0 + hours(30)},
               kT0);

  const JobSummary summary = store.summarize("job");
  EXPECT_EQ(summary.counts.at(SlotState::pending), 2);
  EXPECT_EQ(summary.counts.at(SlotState::waiting), 1);
  EXPECT_EQ(summary.counts.at(SlotState::downloading), 1);
  EXPECT_EQ(summary.counts.at(SlotState::done), 2);
  EXPECT_EQ(summary.counts.at(SlotState::failed), 1);
  EXPECT_EQ(summary.counts.at(SlotState::lost), 1);
  EXPECT_EQ(summary.newest_done, "2026-11-22T06");
  EXPECT_EQ(summary.oldest_not_done, "2026-11-22T03");  // lost is not archived either
  EXPECT_EQ(summary.next_action, kT0 + hours(9));

  store.update("job", slots[0].slot, {.state = SlotState::done, .next_at = kT0}, kT0);
  const JobSummary later = store.summarize("job");
  EXPECT_EQ(later.oldest_not_done, "2026-11-22T05");
  EXPECT_EQ(later.newest_done, "2026-11-22T06");
  EXPECT_EQ(later.counts.at(SlotState::lost), 0);

  const JobSummary other = store.summarize("other");
  EXPECT_EQ(other.counts.at(SlotState::pending), 1);
  EXPECT_EQ(other.next_action, kT0 + hours(20));
}

TEST_F(StateStoreTest, SlotsRangeAndJobs) {
  StateStore store{db_path()};
  EXPECT_TRUE(store.jobs().empty());
  std::vector<PlannedSlot> slots;
  for (int i = 4; i >= 0; --i) {
    slots.push_back(hour(kT0 + hours(i), kT0));
  }
  store.plan("shop-hourly", slots, kT0);
  store.plan("app-hourly", std::span{slots}.first(1), kT0);
  store.plan("zoo", std::span{slots}.first(1), kT0);

  EXPECT_EQ(names(store.slots("shop-hourly", kT0 + hours(1), kT0 + hours(4))),
            (std::vector<std::string>{"shop-hourly/2026-11-22T04", "shop-hourly/2026-11-22T05",
                                      "shop-hourly/2026-11-22T06"}));
  EXPECT_TRUE(store.slots("shop-hourly", kT0 + hours(5), kT0 + hours(9)).empty());
  EXPECT_EQ(store.jobs(), (std::vector<std::string>{"app-hourly", "shop-hourly", "zoo"}));
}

TEST_F(StateStoreTest, KeyValues) {
  StateStore store{db_path()};
  EXPECT_FALSE(store.get_value("auth_code"));
  store.set_value("auth_code", "first");
  store.set_value("auth_code", "second");
  store.set_value("empty", "");
  EXPECT_EQ(store.get_value("auth_code"), "second");
  EXPECT_EQ(store.get_value("empty"), "");
}

TEST_F(StateStoreTest, PersistsAcrossReopen) {
  const PlannedSlot slot = hour(kT0, kT0 + minutes(40));
  {
    StateStore store{db_path()};
    store.plan("job", std::span{&slot, 1}, kT0);
    store.update("job", slot.slot,
                 {.state = SlotState::done, .next_at = kT0, .api_status = "FINISHED"},
                 kT0 + hours(1));
    store.record_file({.job = "job",
                       .slot = slot.slot,
                       .data_type = "page",
                       .name = "p.gz",
                       .bytes = 7,
                       .sha256 = "abc"});
    store.set_value("k", "v");
  }
  StateStore reopened{db_path()};
  EXPECT_EQ(reopened.schema_version(), StateStore::latest_schema_version());
  const auto record = reopened.find("job", slot.slot);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->state, SlotState::done);
  EXPECT_EQ(record->api_status, "FINISHED");
  EXPECT_EQ(record->done_at, kT0 + hours(1));
  EXPECT_EQ(reopened.files("job", slot.slot).size(), 1u);
  EXPECT_EQ(reopened.get_value("k"), "v");
  EXPECT_EQ(reopened.plan("job", std::span{&slot, 1}, kT0), 0);
}

TEST_F(StateStoreTest, SchemaVersionIsStoredInTheFile) {
  {
    StateStore store{db_path()};
    EXPECT_EQ(store.schema_version(), 8);
    EXPECT_EQ(StateStore::latest_schema_version(), 8);
  }
  RawConnection raw{db_path()};
  EXPECT_EQ(raw.text("PRAGMA user_version"), "8");
  // The CHECK keeps unknown states out, whoever writes.
  EXPECT_NE(raw.exec("INSERT INTO slots (job, slot, start, state, next_at, created_at, "
                     "updated_at) VALUES ('j', 's', 0, 'bogus', 0, 0, 0)"),
            SQLITE_OK);
}

TEST_F(StateStoreTest, RefusesASchemaNewerThanItKnows) {
  { StateStore store{db_path()}; }
  {
    RawConnection raw{db_path()};
    ASSERT_EQ(raw.exec("PRAGMA user_version = 99"), SQLITE_OK);
  }
  try {
    StateStore store{db_path()};
    FAIL() << "expected StateError";
  } catch (const StateError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(db_path().string()), std::string::npos) << message;
    EXPECT_NE(message.find("99"), std::string::npos) << message;
  }
}

TEST_F(StateStoreTest, UsesWalJournal) {
  StateStore store{db_path()};
  RawConnection raw{db_path()};
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
}

TEST_F(StateStoreTest, NewFilesArePrivate) {
  StateStore store{db_path()};
  store.set_value("auth_code", "secret");
  EXPECT_EQ(mode_of(db_path()), 0600);
  // SQLite gives the WAL the database file's mode.
  const fs::path wal = db_path().string() + "-wal";
  ASSERT_TRUE(fs::exists(wal));
  EXPECT_EQ(mode_of(wal), 0600);
}

TEST_F(StateStoreTest, SecondStoreSeesTheFirstOnesWrites) {
  StateStore daemon{db_path()};
  StateStore cli{db_path()};
  const PlannedSlot slot = hour(kT0, kT0);
  // A read before the write must not pin an old snapshot.
  EXPECT_FALSE(cli.find("job", slot.slot));
  EXPECT_EQ(cli.jobs().size(), 0u);
  daemon.plan("job", std::span{&slot, 1}, kT0);
  ASSERT_TRUE(cli.find("job", slot.slot));
  EXPECT_EQ(cli.jobs(), std::vector<std::string>{"job"});
  // And the other way round (retry from the CLI, picked up by the daemon).
  cli.update("job", slot.slot, {.state = SlotState::failed, .next_at = kT0}, kT0);
  EXPECT_EQ(daemon.find("job", slot.slot)->state, SlotState::failed);
  EXPECT_FALSE(daemon.next_due());
}

TEST_F(StateStoreTest, WriterWaitsForAnotherConnectionsTransaction) {
  StateStore store{db_path()};
  RawConnection blocker{db_path()};
  ASSERT_EQ(blocker.exec("BEGIN IMMEDIATE"), SQLITE_OK);
  ASSERT_EQ(blocker.exec("INSERT INTO kv (key, value) VALUES ('from', 'blocker')"), SQLITE_OK);
  {
    // The lock really is held: a connection without a busy timeout fails at once.
    RawConnection impatient{db_path()};
    EXPECT_EQ(impatient.exec("BEGIN IMMEDIATE"), SQLITE_BUSY);
  }

  std::thread release{[&blocker] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(blocker.exec("COMMIT"), SQLITE_OK);
  }};
  EXPECT_NO_THROW(store.set_value("from", "store"));
  const PlannedSlot slot = hour(kT0, kT0);
  EXPECT_NO_THROW(store.plan("job", std::span{&slot, 1}, kT0));
  release.join();
  // Ours came after the blocker's commit.
  EXPECT_EQ(store.get_value("from"), "store");
}

TEST_F(StateStoreTest, NonDatabaseFileIsAnErrorNamingThePath) {
  {
    std::ofstream garbage{db_path(), std::ios::binary};
    for (int i = 0; i < 512; ++i) {
      garbage << "this is not an SQLite database, just text. ";
    }
  }
  try {
    StateStore store{db_path()};
    FAIL() << "expected StateError";
  } catch (const StateError& error) {
    EXPECT_EQ(error.code(), SQLITE_NOTADB);
    EXPECT_NE(std::string{error.what()}.find(db_path().string()), std::string::npos)
        << error.what();
  }
}

TEST_F(StateStoreTest, MissingFolderIsAnErrorNamingThePath) {
  const fs::path path = dir_.path() / "missing" / "state.db";
  try {
    StateStore store{path};
    FAIL() << "expected StateError";
  } catch (const StateError& error) {
    EXPECT_EQ(error.code(), SQLITE_CANTOPEN);
    EXPECT_NE(std::string{error.what()}.find(path.string()), std::string::npos) << error.what();
  }
  EXPECT_FALSE(fs::exists(path.parent_path()));
}

TEST_F(StateStoreTest, PlansFifteenDaysOfManyJobsInOneCall) {
  StateStore store{db_path()};
  std::vector<PlannedSlot> slots;
  slots.reserve(72'000);
  for (int i = 0; i < 72'000; ++i) {
    const Instant start = kT0 - hours(i);
    slots.push_back(hour(start, start + minutes(40)));
  }
  EXPECT_EQ(store.plan("big", slots, kT0), 72'000);
  EXPECT_EQ(store.summarize("big").counts.at(SlotState::pending), 72'000);
  EXPECT_EQ(store.due(kT0, 3, std::vector<std::string>{"big"}).front().start, kT0 - hours(71'999));
  EXPECT_EQ(store.plan("big", slots, kT0), 0);
}

// The RAII layer on its own.
TEST_F(StateStoreTest, SqliteTransactionRollsBackUnlessCommitted) {
  sqlite::Database db{db_path()};
  db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)");
  sqlite::Statement insert{db, "INSERT INTO t (k, v) VALUES (?1, ?2)"};
  sqlite::Statement count{db, "SELECT count(*), coalesce(sum(v), 0) FROM t"};
  auto rows = [&] {
    sqlite::Query query{count};
    EXPECT_TRUE(query.step());
    return query.get_int64(0);
  };
  {
    sqlite::Transaction transaction{db};
    sqlite::Query{insert, "a", 1}.run();
  }
  EXPECT_EQ(rows(), 0);
  try {
    sqlite::Transaction transaction{db};
    sqlite::Query{insert, "a", 1}.run();
    sqlite::Query{insert, "a", 2}.run();
    transaction.commit();
    FAIL() << "expected a primary key violation";
  } catch (const StateError& error) {
    EXPECT_EQ(error.code(), SQLITE_CONSTRAINT_PRIMARYKEY);
  }
  EXPECT_EQ(rows(), 0);
  {
    sqlite::Transaction transaction{db};
    sqlite::Query{insert, "a", 1}.run();
    sqlite::Query{insert, "b", std::optional<std::int64_t>{}}.run();
    transaction.commit();
  }
  EXPECT_EQ(rows(), 2);
  EXPECT_THROW((sqlite::Statement{db, "SELECT 1; SELECT 2"}), StateError);
  EXPECT_THROW((sqlite::Statement{db, "SELEC 1"}), StateError);
}

TEST_F(StateStoreTest, NestedSqliteTransactionIsASavepoint) {
  sqlite::Database db{db_path()};
  db.exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
  sqlite::Statement insert{db, "INSERT INTO t (k) VALUES (?1)"};
  sqlite::Statement count{db, "SELECT count(*) FROM t"};
  auto rows = [&] {
    sqlite::Query query{count};
    EXPECT_TRUE(query.step());
    return query.get_int64(0);
  };
  {
    sqlite::Transaction outer{db};
    sqlite::Query{insert, "a"}.run();
    {
      sqlite::Transaction inner{db};
      sqlite::Query{insert, "b"}.run();
    }  // not committed: only "b" is undone
    {
      sqlite::Transaction inner{db};
      sqlite::Query{insert, "c"}.run();
      inner.commit();
    }
    EXPECT_EQ(rows(), 2);
    RawConnection other{db_path()};
    EXPECT_EQ(other.text("SELECT count(*) FROM t"), "0");  // nothing durable yet
    outer.commit();
    EXPECT_EQ(other.text("SELECT group_concat(k) FROM (SELECT k FROM t ORDER BY k)"), "a,c");
  }
  {
    sqlite::Transaction outer{db};
    sqlite::Transaction inner{db};
    sqlite::Query{insert, "d"}.run();
    inner.commit();
  }  // the outer one rolls back what the inner one released into it
  EXPECT_EQ(rows(), 2);
}

TEST_F(StateStoreTest, BatchCommitsEveryCallAtOnceOrNothing) {
  StateStore store{db_path()};
  StateStore other{db_path()};
  const PlannedSlot a = hour(kT0, kT0);
  const PlannedSlot b = hour(kT0 + hours{1}, kT0 + hours{1});
  {
    StateStore::Batch batch{store};
    EXPECT_EQ(store.plan("job", std::span{&a, 1}, kT0), 1);
    EXPECT_EQ(store.plan("job", std::span{&b, 1}, kT0), 1);
    store.update("job", a.slot, {.state = SlotState::waiting, .next_at = kT0}, kT0);
    // A failing call inside undoes only itself.
    EXPECT_THROW(
        store.update("job", "2000-01-01T00", {.state = SlotState::done, .next_at = kT0}, kT0),
        StateError);
    EXPECT_EQ(store.find("job", a.slot)->state, SlotState::waiting);
    EXPECT_FALSE(other.find("job", a.slot));  // not visible before the commit
    batch.commit();
  }
  EXPECT_EQ(other.find("job", a.slot)->state, SlotState::waiting);
  EXPECT_TRUE(other.find("job", b.slot));
  {
    StateStore::Batch batch{store};
    store.update("job", b.slot, {.state = SlotState::failed, .next_at = kT0}, kT0);
  }  // dropped without commit
  EXPECT_EQ(other.find("job", b.slot)->state, SlotState::pending);
  EXPECT_EQ(store.find("job", b.slot)->state, SlotState::pending);
}

// --- issue 4: notices, retention queries, data_version, requeue ---------------------

// The version-1 schema exactly as the first release created it.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE slots (
  job TEXT NOT NULL, slot TEXT NOT NULL, start INTEGER NOT NULL,
  state TEXT NOT NULL
    CHECK (state IN ('pending', 'waiting', 'downloading', 'done', 'failed', 'lost')),
  attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0), next_at INTEGER NOT NULL,
  api_status TEXT NOT NULL DEFAULT '', last_error TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, done_at INTEGER,
  PRIMARY KEY (job, slot)
) STRICT;
CREATE INDEX slots_by_state_next_at ON slots (state, next_at);
CREATE INDEX slots_by_job_start ON slots (job, start);
CREATE INDEX slots_by_job_state_start ON slots (job, state, start, next_at);
CREATE TABLE files (
  job TEXT NOT NULL, slot TEXT NOT NULL, data_type TEXT NOT NULL, name TEXT NOT NULL,
  bytes INTEGER NOT NULL CHECK (bytes >= 0), sha256 TEXT NOT NULL, archived_at INTEGER,
  PRIMARY KEY (job, slot, data_type, name),
  FOREIGN KEY (job, slot) REFERENCES slots (job, slot) ON DELETE CASCADE
) STRICT;
CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;
PRAGMA user_version = 1;
)sql";

TEST_F(StateStoreTest, MigratesAVersionOneDatabaseKeepingItsRows) {
  {
    std::ofstream{db_path()};  // an empty file is an empty database
    RawConnection raw{db_path()};
    ASSERT_EQ(raw.exec("PRAGMA journal_mode = WAL"), SQLITE_OK);
    ASSERT_EQ(raw.exec(kSchemaV1), SQLITE_OK);
    ASSERT_EQ(raw.exec("INSERT INTO slots VALUES ('shop', '2026-11-22T03', 1700000000, 'done', 3, "
                       "1700003600, 'FINISHED', '', 1700000100, 1700000200, 1700000200)"),
              SQLITE_OK);
    ASSERT_EQ(raw.exec("INSERT INTO files VALUES ('shop', '2026-11-22T03', 'visit', 'a.csv.gz', "
                       "42, 'abc', 1700000150)"),
              SQLITE_OK);
    ASSERT_EQ(raw.exec("INSERT INTO kv VALUES ('auth_code/shop', 'code')"), SQLITE_OK);
  }
  StateStore store{db_path()};
  EXPECT_EQ(store.schema_version(), StateStore::latest_schema_version());
  const auto record = store.find("shop", "2026-11-22T03");
  ASSERT_TRUE(record);
  EXPECT_EQ(record->state, SlotState::done);
  EXPECT_EQ(record->attempts, 3);
  EXPECT_EQ(record->api_status, "FINISHED");
  EXPECT_EQ(record->done_at, from_unix(1700000200));
  EXPECT_EQ(record->notices, 0);
  ASSERT_EQ(store.files("shop", "2026-11-22T03").size(), 1u);
  EXPECT_EQ(store.files("shop", "2026-11-22T03")[0].bytes, 42u);
  // A file recorded before objects were: it matches no link's object.
  EXPECT_EQ(store.files("shop", "2026-11-22T03")[0].object, "");
  EXPECT_EQ(store.get_value("auth_code/shop"), "code");

  // The new column works on the migrated rows.
  store.update("shop", "2026-11-22T03", {.state = SlotState::pending, .next_at = kT0, .notices = 5},
               kT0);
  EXPECT_EQ(store.find("shop", "2026-11-22T03")->notices, 5);
}

TEST_F(StateStoreTest, NoticesAreStoredOnlyWhenSet) {
  StateStore store{db_path()};
  store.plan("shop", std::vector{hour(kT0, kT0)}, kT0);
  EXPECT_EQ(store.find("shop", "2026-11-22T03")->notices, 0);
  store.update("shop", "2026-11-22T03", {.state = SlotState::waiting, .next_at = kT0, .notices = 1},
               kT0);
  store.update("shop", "2026-11-22T03", {.state = SlotState::waiting, .next_at = kT0}, kT0);
  EXPECT_EQ(store.find("shop", "2026-11-22T03")->notices, 1);
  store.update("shop", "2026-11-22T03", {.state = SlotState::waiting, .next_at = kT0, .notices = 3},
               kT0);
  EXPECT_EQ(store.find("shop", "2026-11-22T03")->notices, 3);
}

TEST_F(StateStoreTest, NotDoneBeforeAndCountAtRisk) {
  StateStore store{db_path()};
  std::vector<PlannedSlot> planned;
  for (int i = 0; i < 6; ++i) {
    planned.push_back(hour(kT0 + hours(i), kT0));
  }
  store.plan("a", planned, kT0);
  store.plan("b", std::vector{hour(kT0 + hours(1), kT0)}, kT0);
  store.plan("gone", std::vector{hour(kT0, kT0)}, kT0);
  const auto set = [&](int i, SlotState state) {
    store.update("a", planned[static_cast<std::size_t>(i)].slot, {.state = state, .next_at = kT0},
                 kT0);
  };
  set(0, SlotState::done);
  set(1, SlotState::lost);
  set(2, SlotState::failed);
  set(3, SlotState::downloading);
  set(4, SlotState::waiting);  // 5 stays pending

  const std::vector<std::string> jobs = {"a", "b"};
  EXPECT_EQ(names(store.not_done_before(kT0 + hours(5), jobs)),
            (std::vector<std::string>{"b/2026-11-22T04", "a/2026-11-22T05", "a/2026-11-22T06",
                                      "a/2026-11-22T07"}));
  EXPECT_EQ(names(store.not_done_before(kT0 + hours(6), std::vector<std::string>{"a"})).size(), 4u);
  EXPECT_TRUE(store.not_done_before(kT0 + hours(2), std::vector<std::string>{"a"}).empty());

  EXPECT_EQ(store.count_at_risk("a", kT0 + hours(6)), 4);  // failed, downloading, waiting, pending
  EXPECT_EQ(store.count_at_risk("a", kT0 + hours(3)), 1);  // start < bound is strict
  EXPECT_EQ(store.count_at_risk("a", kT0 + hours(2)), 0);  // done and lost never count
  EXPECT_EQ(store.count_at_risk("nobody", kT0 + hours(100)), 0);

  // The next slot to be lost: the oldest failed/downloading/waiting/pending one.
  EXPECT_EQ(store.oldest_not_done_start("a"), kT0 + hours(2));
  EXPECT_EQ(store.oldest_not_done_start("nobody"), std::nullopt);
}

TEST_F(StateStoreTest, WritableCheckWritesAndGivesUpOnALockHeldElsewhere) {
  StateStore daemon{db_path()};
  daemon.check_writable(kT0, std::chrono::milliseconds{100});
  EXPECT_EQ(daemon.get_value("health/written_at"), std::to_string(to_unix(kT0)));

  // Another process holds the write lock: the check fails (after its short wait), and
  // writes again once the lock is given back.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_THROW(daemon.check_writable(kT0, std::chrono::milliseconds{100}), StateError);
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  daemon.check_writable(kT0 + hours(1), std::chrono::milliseconds{100});
  EXPECT_EQ(daemon.get_value("health/written_at"), std::to_string(to_unix(kT0 + hours(1))));
}

TEST_F(StateStoreTest, AShortBusyTimeoutFailsAtOnceAndOutlivesTheWritableCheck) {
  // The daemon's loop sets a few milliseconds (scheduler/store_waits.hpp): a write on a
  // database locked elsewhere must fail within about that, never after SQLite's 10 s.
  StateStore daemon{db_path()};
  daemon.set_busy_timeout(std::chrono::milliseconds{20});
  RawConnection other{db_path()};
  ASSERT_EQ(other.exec("BEGIN IMMEDIATE"), SQLITE_OK);
  const auto took = [](auto&& call) {
    const auto start = std::chrono::steady_clock::now();
    try {
      call();
      ADD_FAILURE() << "a write went through a lock held elsewhere";
    } catch (const StateError& error) {
      EXPECT_TRUE(error.busy()) << error.what();
    }
    return std::chrono::steady_clock::now() - start;
  };
  EXPECT_LT(took([&] { daemon.set_value("k", "v"); }), std::chrono::seconds{1});
  EXPECT_LT(took([&] { daemon.check_writable(kT0, std::chrono::milliseconds{10}); }),
            std::chrono::seconds{1});
  // check_writable's own wait is undone to the connection's, not to the default 10 s.
  EXPECT_LT(took([&] { daemon.set_value("k", "v"); }), std::chrono::seconds{1});
  // Reads go on under another process's write lock (WAL).
  EXPECT_EQ(daemon.get_value("k"), std::nullopt);
  ASSERT_EQ(other.exec("ROLLBACK"), SQLITE_OK);
  daemon.set_value("k", "v");
  EXPECT_EQ(daemon.get_value("k"), "v");
}

TEST_F(StateStoreTest, DataVersionChangesWhenAnotherConnectionCommits) {
  StateStore daemon{db_path()};
  StateStore cli{db_path()};
  const std::int64_t before = daemon.data_version();
  EXPECT_EQ(daemon.data_version(), before);  // nothing happened
  // The connection's own commits do not change it (the daemon knows what it wrote).
  daemon.plan("shop", std::vector{hour(kT0, kT0)}, kT0);
  EXPECT_EQ(daemon.data_version(), before);

  cli.plan("shop", std::vector{hour(kT0 + hours(1), kT0)}, kT0);
  const std::int64_t after = daemon.data_version();
  EXPECT_NE(after, before);
  EXPECT_EQ(daemon.data_version(), after);

  // A rolled-back requeue (dry run) is no change.
  cli.requeue("shop", std::vector<RequeueTarget>{{"2026-11-22T03", kT0}},
              [](const RequeueTarget&, const std::optional<SlotRecord>&) {
                return std::optional<Requeue>{Requeue{}};
              },
              kT0, {.dry_run = true});
  EXPECT_EQ(daemon.data_version(), after);

  RawConnection raw{db_path()};
  ASSERT_EQ(raw.exec("UPDATE slots SET next_at = 1"), SQLITE_OK);
  EXPECT_NE(daemon.data_version(), after);
}

class RequeueTest : public StateStoreTest {
 protected:
  void SetUp() override {
    store_.emplace(db_path());
    std::vector<PlannedSlot> planned;
    for (int i = 0; i < 4; ++i) {
      planned.push_back(hour(kT0 + hours(i), kT0));
    }
    store_->plan("shop", planned, kT0);
    // 03 done with two files, 04 failed after 7 asks, 05 downloading, 06 pending.
    store_->update("shop", "2026-11-22T03",
                   {.state = SlotState::done, .next_at = kT0, .count_attempt = true, .notices = 2},
                   kT0);
    for (const char* name : {"a.csv.gz", "b.csv.gz"}) {
      store_->record_file({.job = "shop",
                           .slot = "2026-11-22T03",
                           .data_type = "visit",
                           .name = name,
                           .bytes = 10,
                           .sha256 = "x"});
    }
    store_->record_file({.job = "shop",
                         .slot = "2026-11-22T03",
                         .data_type = "page",
                         .name = "p.csv.gz",
                         .bytes = 10,
                         .sha256 = "y"});
    for (int i = 0; i < 7; ++i) {
      store_->update("shop", "2026-11-22T04",
                     {.state = SlotState::failed,
                      .next_at = kT0,
                      .last_error = "gave up",
                      .count_attempt = true,
                      .notices = 1},
                     kT0 + hours(1));
    }
    store_->update("shop", "2026-11-22T05", {.state = SlotState::downloading, .next_at = kT0}, kT0);
  }

  StateStore& store() { return *store_; }

  std::optional<StateStore> store_;
};

const Instant kLater = kT0 + hours(30);

TEST_F(RequeueTest, QueuesWhatTheDecisionSaysInOneTransaction) {
  std::vector<RequeueTarget> targets;
  for (int i = 0; i < 5; ++i) {  // 07 is not in the store
    const Instant start = kT0 + hours(i);
    targets.push_back({Slot::containing(start, Granularity::hour).name(), start});
  }
  std::vector<std::string> seen;
  const int queued = store().requeue(
      "shop", targets,
      [&](const RequeueTarget& target,
          const std::optional<SlotRecord>& current) -> std::optional<Requeue> {
        seen.push_back(target.slot + "=" +
                       (current ? std::string{to_string(current->state)} : std::string{"none"}));
        if (current && current->state == SlotState::downloading) {
          return std::nullopt;
        }
        if (current && current->state == SlotState::done) {
          return Requeue{.reset_attempts = true, .forget_all_files = true};
        }
        if (current && current->state == SlotState::failed) {
          return Requeue{.reset_attempts = true};
        }
        return Requeue{};
      },
      kLater);
  EXPECT_EQ(queued, 4);
  EXPECT_EQ(seen, (std::vector<std::string>{"2026-11-22T03=done", "2026-11-22T04=failed",
                                            "2026-11-22T05=downloading", "2026-11-22T06=pending",
                                            "2026-11-22T07=none"}));

  const auto done = store().find("shop", "2026-11-22T03");
  EXPECT_EQ(done->state, SlotState::pending);
  EXPECT_EQ(done->next_at, kLater);
  EXPECT_EQ(done->attempts, 0);
  EXPECT_EQ(done->created_at, kLater);  // give_up_after counts afresh
  EXPECT_EQ(done->notices, 0);
  EXPECT_FALSE(done->done_at);
  EXPECT_TRUE(store().files("shop", "2026-11-22T03").empty());

  const auto failed = store().find("shop", "2026-11-22T04");
  EXPECT_EQ(failed->state, SlotState::pending);
  EXPECT_EQ(failed->attempts, 0);
  EXPECT_EQ(failed->last_error, "gave up");  // kept until the next answer
  EXPECT_EQ(failed->notices, 0);

  EXPECT_EQ(store().find("shop", "2026-11-22T05")->state, SlotState::downloading);
  EXPECT_EQ(store().find("shop", "2026-11-22T05")->next_at, kT0);

  const auto pending = store().find("shop", "2026-11-22T06");
  EXPECT_EQ(pending->next_at, kLater);
  EXPECT_EQ(pending->created_at, kT0);  // attempts and planning time kept

  const auto added = store().find("shop", "2026-11-22T07");
  ASSERT_TRUE(added);
  EXPECT_EQ(added->state, SlotState::pending);
  EXPECT_EQ(added->start, kT0 + hours(4));
  EXPECT_EQ(added->next_at, kLater);
  EXPECT_EQ(added->attempts, 0);
}

TEST_F(RequeueTest, AttemptsKeptUnlessReset) {
  const std::vector<RequeueTarget> targets{{"2026-11-22T04", kT0 + hours(1)}};
  store().requeue(
      "shop", targets,
      [](const RequeueTarget&, const std::optional<SlotRecord>&) {
        return std::optional<Requeue>{Requeue{}};
      },
      kLater);
  EXPECT_EQ(store().find("shop", "2026-11-22T04")->attempts, 7);
  EXPECT_EQ(store().find("shop", "2026-11-22T04")->created_at, kT0);
}

TEST_F(RequeueTest, ForgetsOnlyTheNamedFiles) {
  const std::vector<RequeueTarget> targets{{"2026-11-22T03", kT0}};
  store().requeue(
      "shop", targets,
      [](const RequeueTarget&, const std::optional<SlotRecord>&) {
        return std::optional<Requeue>{
            Requeue{.reset_attempts = true, .forget_files = {{"visit", "b.csv.gz"}, {"page", ""}}}};
      },
      kLater);
  const auto files = store().files("shop", "2026-11-22T03");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].name, "a.csv.gz");
}

TEST_F(RequeueTest, DryRunChangesNothing) {
  const auto before = store().find("shop", "2026-11-22T03");
  bool ran = false;
  const std::vector<RequeueTarget> targets{{"2026-11-22T03", kT0},
                                           {"2026-11-22T09", kT0 + hours(6)}};
  const int queued = store().requeue(
      "shop", targets,
      [](const RequeueTarget&, const std::optional<SlotRecord>&) {
        return std::optional<Requeue>{Requeue{.reset_attempts = true, .forget_all_files = true}};
      },
      kLater, {.dry_run = true, .before_commit = [&] { ran = true; }});
  EXPECT_EQ(queued, 2);
  EXPECT_FALSE(ran);
  EXPECT_EQ(store().find("shop", "2026-11-22T03"), before);
  EXPECT_EQ(store().files("shop", "2026-11-22T03").size(), 3u);
  EXPECT_FALSE(store().find("shop", "2026-11-22T09"));
}

TEST_F(RequeueTest, AFailureInBeforeCommitRollsBack) {
  const std::vector<RequeueTarget> targets{{"2026-11-22T03", kT0}};
  EXPECT_THROW(
      store().requeue("shop", targets,
                      [](const RequeueTarget&, const std::optional<SlotRecord>&) {
                        return std::optional<Requeue>{Requeue{.forget_all_files = true}};
                      },
                      kLater, {.before_commit = [] { throw StateError("disk", SQLITE_IOERR); }}),
      StateError);
  EXPECT_EQ(store().find("shop", "2026-11-22T03")->state, SlotState::done);
  EXPECT_EQ(store().files("shop", "2026-11-22T03").size(), 3u);
}

TEST_F(RequeueTest, OtherConnectionsSeeTheQueueAtOnce) {
  StateStore daemon{db_path()};
  const std::vector<std::string> jobs{"shop"};
  EXPECT_EQ(daemon.due(kLater, 10, jobs).size(), 2u);  // 05 (downloading) and 06
  const std::vector<RequeueTarget> targets{{"2026-11-22T04", kT0 + hours(1)}};
  store().requeue(
      "shop", targets,
      [](const RequeueTarget&, const std::optional<SlotRecord>&) {
        return std::optional<Requeue>{Requeue{.reset_attempts = true}};
      },
      kLater);
  EXPECT_EQ(
      names(daemon.due(kLater, 10, jobs)),
      (std::vector<std::string>{"shop/2026-11-22T04", "shop/2026-11-22T05", "shop/2026-11-22T06"}));
}

TEST_F(StateStoreTest, IntegrityCheckPassesOnAHealthyFileAndFailsOnADamagedOne) {
  {
    StateStore store{db_path()};
    std::vector<PlannedSlot> planned;
    for (int i = 0; i < 2000; ++i) {
      planned.push_back(hour(kT0 + hours(i), kT0));
    }
    store.plan("shop", planned, kT0);
    EXPECT_NO_THROW(store.check_integrity());
  }
  {
    // Fold the WAL into the file, then scribble over a page in the middle of it.
    RawConnection raw{db_path()};
    ASSERT_EQ(raw.exec("PRAGMA wal_checkpoint(TRUNCATE)"), SQLITE_OK);
  }
  const auto size = fs::file_size(db_path());
  ASSERT_GT(size, 8u * 4096);
  {
    std::fstream file{db_path(), std::ios::in | std::ios::out | std::ios::binary};
    file.seekp(static_cast<std::streamoff>(size / 2 / 4096 * 4096 + 16));
    const std::string junk(2000, '\x5a');
    file.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  try {
    StateStore store{db_path()};
    store.check_integrity();
    FAIL() << "a damaged file passed the integrity check";
  } catch (const StateError& error) {
    EXPECT_EQ(error.code() & 0xff, SQLITE_CORRUPT) << error.what();
  }
}

// --- read-only opening (status, gaps, verify) ---------------------------------------

std::string contents(const fs::path& path) {
  std::ifstream file{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{file}, std::istreambuf_iterator<char>{}};
}

// Every file of a folder with its bytes: what "changes nothing" compares.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const fs::directory_entry& entry : fs::directory_iterator{dir}) {
    files[entry.path().filename().string()] = contents(entry.path());
  }
  return files;
}

void expect_error_naming(const fs::path& path, const std::string& words) {
  try {
    StateStore::open_read_only(path);
    ADD_FAILURE() << "expected StateError for " << path;
  } catch (const StateError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
    EXPECT_NE(message.find(words), std::string::npos) << message;
  }
}

TEST_F(StateStoreTest, ReadOnlyRefusesAMissingFileAndDoesNotCreateIt) {
  expect_error_naming(db_path(), "no such file");
  EXPECT_TRUE(fs::is_empty(dir_.path()));
  const fs::path nested = dir_.path() / "missing" / "state.db";
  expect_error_naming(nested, "no such file");
  EXPECT_FALSE(fs::exists(nested.parent_path()));
}

TEST_F(StateStoreTest, ReadOnlyRefusesAnEmptyOrOlderFileUnchanged) {
  std::ofstream{db_path()}.close();
  expect_error_naming(db_path(), "no gio-exporter tables");
  EXPECT_EQ(snapshot(dir_.path()), (std::map<std::string, std::string>{{"state.db", ""}}));

  fs::remove(db_path());
  { StateStore store{db_path()}; }
  {
    RawConnection raw{db_path()};
    ASSERT_EQ(raw.exec("PRAGMA user_version = 1"), SQLITE_OK);
  }
  const auto before = snapshot(dir_.path());
  expect_error_naming(db_path(), "schema version 1 is older");
  EXPECT_EQ(snapshot(dir_.path()), before);
}

TEST_F(StateStoreTest, ReadOnlyWaitsForASchemaBeingCreated) {
  // The daemon has made the file but not committed its schema yet (it does so within
  // moments): the reader waits instead of calling the file foreign.
  std::ofstream{db_path()}.close();
  std::optional<StateStore> daemon;
  std::thread start{[&] {
    std::this_thread::sleep_for(std::chrono::milliseconds{300});
    daemon.emplace(db_path());
  }};
  EXPECT_NO_THROW(StateStore::open_read_only(db_path()));
  start.join();
}

TEST_F(StateStoreTest, ReadOnlyReadsAClosedFileWithoutMakingAWal) {
  const PlannedSlot slot = hour(kT0, kT0);
  {
    StateStore store{db_path()};
    store.plan("job", std::span{&slot, 1}, kT0);
  }
  // The last connection closed: only the file is left.
  const auto before = snapshot(dir_.path());
  ASSERT_EQ(before.size(), 1u);
  {
    StateStore reader = StateStore::open_read_only(db_path());
    EXPECT_EQ(reader.schema_version(), StateStore::latest_schema_version());
    ASSERT_TRUE(reader.find("job", slot.slot));
    EXPECT_EQ(reader.summarize("job").next_action_slot, slot.slot);
    EXPECT_EQ(snapshot(dir_.path()), before);
    try {
      reader.set_value("k", "v");
      ADD_FAILURE() << "a read-only store wrote";
    } catch (const StateError& error) {
      EXPECT_EQ(error.code() & 0xff, SQLITE_READONLY) << error.what();
    }
  }
  EXPECT_EQ(snapshot(dir_.path()), before);
}

TEST_F(StateStoreTest, ReadOnlyFollowsALiveWriterAndNeverCheckpoints) {
  StateStore daemon{db_path()};
  const PlannedSlot first = hour(kT0, kT0);
  daemon.plan("job", std::span{&first, 1}, kT0);
  const std::string file_before = contents(db_path());
  const std::string wal_before = contents(db_path().string() + "-wal");
  ASSERT_FALSE(wal_before.empty());
  {
    StateStore reader = StateStore::open_read_only(db_path());
    EXPECT_EQ(names(reader.not_done("job")), std::vector<std::string>{"job/" + first.slot});
    // A commit after the reader opened is seen by its next read.
    const PlannedSlot second = hour(kT0 + hours(1), kT0);
    daemon.plan("job", std::span{&second, 1}, kT0);
    EXPECT_EQ(reader.not_done("job").size(), 2u);
  }
  // The reader closed first: the daemon's WAL is still there, folded into nothing.
  EXPECT_EQ(contents(db_path()), file_before);
  EXPECT_GT(contents(db_path().string() + "-wal").size(), wal_before.size());
  EXPECT_EQ(daemon.not_done("job").size(), 2u);
}

TEST_F(StateStoreTest, ReadOnlyTakesAPathWithUriCharacters) {
  const fs::path dir = dir_.path() / "a?b#c%20d";
  fs::create_directory(dir);
  const PlannedSlot slot = hour(kT0, kT0);
  { StateStore{dir / "state.db"}.plan("job", std::span{&slot, 1}, kT0); }
  StateStore reader = StateStore::open_read_only(dir / "state.db");
  EXPECT_TRUE(reader.find("job", slot.slot));
  EXPECT_EQ(
      fs::directory_iterator { dir_.path() } -> path(), dir);  // nothing made beside it
}

TEST_F(StateStoreTest, NotDoneListsEveryStateButDoneOldestFirst) {
  StateStore store{db_path()};
  std::vector<PlannedSlot> planned;
  for (int i = 0; i < 6; ++i) {
    planned.push_back(hour(kT0 + hours(i), kT0 + hours(10 - i)));
  }
  store.plan("job", planned, kT0);
  store.plan("other", std::span{planned.data(), 1}, kT0);
  const SlotState states[] = {SlotState::lost,    SlotState::done,        SlotState::failed,
                              SlotState::waiting, SlotState::downloading, SlotState::pending};
  for (int i = 0; i < 6; ++i) {
    store.update("job", planned[i].slot, {.state = states[i], .next_at = planned[i].next_at}, kT0);
  }
  const auto records = store.not_done("job");
  std::vector<SlotState> got;
  for (const SlotRecord& record : records) {
    got.push_back(record.state);
  }
  EXPECT_EQ(got, (std::vector<SlotState>{SlotState::lost, SlotState::failed, SlotState::waiting,
                                         SlotState::downloading, SlotState::pending}));
  EXPECT_EQ(records.front().slot, planned[0].slot);
  // The next action is the active slot due first (the last one planned here).
  const JobSummary summary = store.summarize("job");
  EXPECT_EQ(summary.next_action, planned[5].next_at);
  EXPECT_EQ(summary.next_action_slot, planned[5].slot);
}

// --- the database's lock and its file (issue 14, items 6 and 10) ------------------------

TEST(DatabaseLock, ASecondHolderIsRefusedNamingThePathAndPid) {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  const DatabaseLock first{path};
  EXPECT_TRUE(std::filesystem::exists(path));
  // flock belongs to the open file: a second open in the same process conflicts too.
  try {
    const DatabaseLock second{path};
    FAIL() << "a second lock was granted";
  } catch (const DatabaseInUse& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("another gio-exporter is running"), std::string::npos) << message;
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
    EXPECT_NE(message.find("(pid " + std::to_string(::getpid()) + ")"), std::string::npos)
        << message;
  }
  EXPECT_EQ(flock_holder(path), ::getpid());
}

TEST(DatabaseLock, IsFreeAgainOnceReleasedAndLeavesSQLiteAlone) {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  {
    const DatabaseLock lock{path};
    StateStore store{path};
    store.set_value("k", "v");
  }
  const DatabaseLock again{path};
  StateStore store{path};
  EXPECT_EQ(store.get_value("k"), "v");
}

TEST(DatabaseLock, NoticesADeletedOrReplacedFile) {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  {
    const DatabaseLock lock{path};
    EXPECT_EQ(lock.gone(), "");
    std::filesystem::remove(path);
    EXPECT_EQ(lock.gone(), "was deleted");
  }
  {
    const DatabaseLock lock{path};
    std::ofstream{dir.path() / "other.db"} << "x";
    std::filesystem::rename(dir.path() / "other.db", path);
    EXPECT_EQ(lock.gone(), "was replaced by another file");
  }
}

TEST(OpenReadOnly, NeverCreatesAMissingDatabase) {
  TempDir dir;
  const auto path = dir.path() / "state.db";
  EXPECT_THROW(StateStore::open_read_only(path), StateError);
  EXPECT_THROW(StateStore::open_existing(path), StateError);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

// --- issue 15: the uploading state and the sink queries ------------------------------

const Instant kT1 = kT0 + hours(1);  // slot 2026-11-22T04

void plan_two(StateStore& store) {
  store.plan("shop", std::vector{hour(kT0, kT0), hour(kT1, kT1)}, kT0);
}

TEST_F(StateStoreTest, UploadingIsAStateOfItsOwn) {
  EXPECT_EQ(to_string(SlotState::uploading), "uploading");
  EXPECT_EQ(parse_slot_state("uploading"), SlotState::uploading);
  StateStore store{db_path()};
  plan_two(store);
  store.update("shop", "2026-11-22T03",
               {.state = SlotState::uploading, .next_at = kT0 + minutes(5)}, kT0 + minutes(1));
  auto record = store.find("shop", "2026-11-22T03");
  ASSERT_TRUE(record);
  EXPECT_EQ(record->state, SlotState::uploading);
  EXPECT_EQ(record->uploading_since, kT0 + minutes(1));
  EXPECT_FALSE(record->done_at);
  // A failed try keeps the time it became uploading (the backlog's age).
  store.update("shop", "2026-11-22T03",
               {.state = SlotState::uploading, .next_at = kT0 + minutes(9), .last_error = "down"},
               kT0 + minutes(8));
  EXPECT_EQ(store.find("shop", "2026-11-22T03")->uploading_since, kT0 + minutes(1));
  // Done clears it and sets done_at.
  store.update("shop", "2026-11-22T03", {.state = SlotState::done, .next_at = kT0 + minutes(10)},
               kT0 + minutes(10));
  record = store.find("shop", "2026-11-22T03");
  EXPECT_FALSE(record->uploading_since);
  EXPECT_EQ(record->done_at, kT0 + minutes(10));
  EXPECT_EQ(store.summarize("shop").counts[SlotState::done], 1);
}

// Its data is local: never at risk, never lost by the retention watch; still a gap, and
// the vendor has answered for it (a later finished slot).
TEST_F(StateStoreTest, UploadingIsNotAtRiskButIsNotDone) {
  StateStore store{db_path()};
  plan_two(store);
  store.update("shop", "2026-11-22T03", {.state = SlotState::uploading, .next_at = kT0}, kT0);
  const std::vector<std::string> jobs{"shop"};
  const Instant far = kT0 + hours(24 * 30);
  EXPECT_EQ(names(store.not_done_before(far, jobs)),
            std::vector<std::string>{"shop/2026-11-22T04"});
  EXPECT_EQ(store.count_at_risk("shop", far), 1);
  EXPECT_EQ(store.oldest_not_done_start("shop"), kT1);
  EXPECT_EQ(names(store.not_done("shop")),
            (std::vector<std::string>{"shop/2026-11-22T03", "shop/2026-11-22T04"}));
  EXPECT_EQ(store.summarize("shop").counts[SlotState::uploading], 1);
  EXPECT_EQ(store.summarize("shop").oldest_not_done, "2026-11-22T03");
  EXPECT_TRUE(store.has_later_finished("shop", kT0 - hours(1)));
  // Not download work: `due` never hands it to a download worker.
  EXPECT_EQ(names(store.due(far, 10, jobs)), std::vector<std::string>{"shop/2026-11-22T04"});
}

TEST_F(StateStoreTest, DueUploadsResumeAndPullIn) {
  StateStore store{db_path()};
  plan_two(store);
  store.plan("other", std::vector{hour(kT0, kT0)}, kT0);
  for (const auto& [job, slot] :
       {std::pair{"shop", "2026-11-22T04"}, std::pair{"shop", "2026-11-22T03"},
        std::pair{"other", "2026-11-22T03"}}) {
    store.update(job, slot, {.state = SlotState::uploading, .next_at = kT0 + minutes(10)}, kT0);
  }
  const std::vector<std::string> shop{"shop"};
  EXPECT_TRUE(store.due_uploads(kT0, 10, shop).empty());
  EXPECT_EQ(names(store.due_uploads(kT0 + minutes(10), 10, shop)),
            (std::vector<std::string>{"shop/2026-11-22T03", "shop/2026-11-22T04"}));
  EXPECT_EQ(store.due_uploads(kT0 + minutes(10), 1, shop).size(), 1u);
  EXPECT_EQ(store.next_due(), kT0 + minutes(10));
  // A restart makes every upload due at once.
  EXPECT_EQ(store.resume_uploads(kT0 + minutes(1)), 3);
  EXPECT_EQ(store.due_uploads(kT0 + minutes(1), 10, shop).size(), 2u);
  // A clock jump: only the job's uploads beyond the bound move.
  store.update("shop", "2026-11-22T03", {.state = SlotState::uploading, .next_at = kT0 + hours(30)},
               kT0);
  EXPECT_EQ(store.pull_in_uploads("shop", kT0 + hours(1), kT0 + minutes(2)), 1);
  EXPECT_EQ(store.find("shop", "2026-11-22T03")->next_at, kT0 + minutes(2));
  EXPECT_EQ(store.pull_in_uploads("other", kT0 + hours(1), kT0), 0);
}

TEST_F(StateStoreTest, RequeueUploadPutsOnlyADoneSlotBack) {
  StateStore store{db_path()};
  plan_two(store);
  store.update("shop", "2026-11-22T03",
               {.state = SlotState::done, .next_at = kT0, .last_error = "", .notices = 16}, kT0);
  EXPECT_TRUE(store.requeue_upload("shop", "2026-11-22T03", kT1));
  const auto record = store.find("shop", "2026-11-22T03");
  EXPECT_EQ(record->state, SlotState::uploading);
  EXPECT_EQ(record->next_at, kT1);
  EXPECT_EQ(record->uploading_since, kT1);
  EXPECT_EQ(record->notices, 0);
  EXPECT_FALSE(record->done_at);
  EXPECT_EQ(names(store.due_uploads(kT1, 10, std::vector<std::string>{"shop"})),
            std::vector<std::string>{"shop/2026-11-22T03"});
  // Not done (pending, or uploading already): nothing changes.
  EXPECT_FALSE(store.requeue_upload("shop", "2026-11-22T04", kT1));
  EXPECT_EQ(store.find("shop", "2026-11-22T04")->state, SlotState::pending);
  EXPECT_FALSE(store.requeue_upload("shop", "2026-11-22T03", kT1 + hours(1)));
  EXPECT_EQ(store.find("shop", "2026-11-22T03")->uploading_since, kT1);
  EXPECT_FALSE(store.requeue_upload("shop", "2026-11-23T00", kT1));
}

TEST_F(StateStoreTest, DoneBeforeAndNoticesForPruning) {
  StateStore store{db_path()};
  plan_two(store);
  store.update("shop", "2026-11-22T03", {.state = SlotState::done, .next_at = kT0}, kT0);
  store.update("shop", "2026-11-22T04", {.state = SlotState::done, .next_at = kT1}, kT1);
  EXPECT_TRUE(store.done_before("shop", kT0 - minutes(1), 0, 16, 10).empty());
  EXPECT_EQ(names(store.done_before("shop", kT1, 0, 16, 10)),
            (std::vector<std::string>{"shop/2026-11-22T03", "shop/2026-11-22T04"}));
  EXPECT_EQ(store.done_before("shop", kT1, 0, 16, 1).size(), 1u);
  // A notice bit leaves done_at (and everything else) alone, and hides the slot.
  store.add_notices("shop", "2026-11-22T03", 16);
  const auto record = store.find("shop", "2026-11-22T03");
  EXPECT_EQ(record->notices, 16);
  EXPECT_EQ(record->done_at, kT0);
  EXPECT_EQ(record->state, SlotState::done);
  EXPECT_EQ(names(store.done_before("shop", kT1, 0, 16, 10)),
            std::vector<std::string>{"shop/2026-11-22T04"});
  EXPECT_EQ(store.done_before("shop", kT1, 0, 2, 10).size(), 2u);
  // Only those with every bit of `with`.
  EXPECT_TRUE(store.done_before("shop", kT1, 32, 16, 10).empty());
  store.add_notices("shop", "2026-11-22T04", 32);
  EXPECT_EQ(names(store.done_before("shop", kT1, 32, 16, 10)),
            std::vector<std::string>{"shop/2026-11-22T04"});
  EXPECT_THROW(store.add_notices("shop", "2026-11-23T00", 16), StateError);
}

TEST_F(StateStoreTest, UploadBacklogCountsSlotsBytesAndAge) {
  StateStore store{db_path()};
  plan_two(store);
  const std::vector<std::string> shop{"shop"};
  EXPECT_EQ(store.upload_backlog(shop).slots, 0);
  EXPECT_FALSE(store.upload_backlog(shop).oldest_since);
  for (const char* slot : {"2026-11-22T03", "2026-11-22T04"}) {
    store.record_file({.job = "shop",
                       .slot = slot,
                       .data_type = "visit",
                       .name = "a.csv.gz",
                       .bytes = 100,
                       .sha256 = "x"});
    store.record_file({.job = "shop",
                       .slot = slot,
                       .data_type = "page",
                       .name = "b.csv.gz",
                       .bytes = 20,
                       .sha256 = "y"});
  }
  store.update("shop", "2026-11-22T04", {.state = SlotState::uploading, .next_at = kT1}, kT1);
  store.update("shop", "2026-11-22T03", {.state = SlotState::uploading, .next_at = kT1},
               kT1 + minutes(3));
  UploadBacklog backlog = store.upload_backlog(shop);
  EXPECT_EQ(backlog.slots, 2);
  EXPECT_EQ(backlog.bytes, 240u);
  EXPECT_EQ(backlog.oldest_since, kT1);
  store.update("shop", "2026-11-22T04", {.state = SlotState::done, .next_at = kT1}, kT1);
  backlog = store.upload_backlog(shop);
  EXPECT_EQ(backlog.slots, 1);
  EXPECT_EQ(backlog.bytes, 120u);
  EXPECT_EQ(backlog.oldest_since, kT1 + minutes(3));
  EXPECT_EQ(store.upload_backlog(std::vector<std::string>{"other"}).slots, 0);
}

// A version-3 database (the last before sinks) migrates with every row, its files rows
// included (the table rebuild must not cascade), and takes the new state.
TEST_F(StateStoreTest, MigratesAVersionThreeDatabaseKeepingFilesRows) {
  {
    std::ofstream{db_path()};
    RawConnection raw{db_path()};
    ASSERT_EQ(raw.exec("PRAGMA journal_mode = WAL"), SQLITE_OK);
    ASSERT_EQ(raw.exec(kSchemaV1), SQLITE_OK);
    ASSERT_EQ(raw.exec("ALTER TABLE slots ADD COLUMN notices INTEGER NOT NULL DEFAULT 0; "
                       "ALTER TABLE files ADD COLUMN object TEXT NOT NULL DEFAULT ''; "
                       "PRAGMA user_version = 3;"),
              SQLITE_OK);
    ASSERT_EQ(raw.exec("INSERT INTO slots VALUES ('shop', '2026-11-22T03', 1700000000, 'done', 3, "
                       "1700003600, 'FINISHED', '', 1700000100, 1700000200, 1700000200, 6)"),
              SQLITE_OK);
    ASSERT_EQ(raw.exec("INSERT INTO files VALUES ('shop', '2026-11-22T03', 'visit', 'a.csv.gz', "
                       "42, 'abc', 1700000150, 'https://h/a')"),
              SQLITE_OK);
    // Refused before the migration: the old CHECK.
    ASSERT_NE(raw.exec("UPDATE slots SET state = 'uploading'"), SQLITE_OK);
  }
  {
    StateStore store{db_path()};
    EXPECT_EQ(store.schema_version(), StateStore::latest_schema_version());
    const auto record = store.find("shop", "2026-11-22T03");
    ASSERT_TRUE(record);
    EXPECT_EQ(record->state, SlotState::done);
    EXPECT_EQ(record->notices, 6);
    EXPECT_EQ(record->done_at, from_unix(1700000200));
    EXPECT_FALSE(record->uploading_since);
    ASSERT_EQ(store.files("shop", "2026-11-22T03").size(), 1u);
    EXPECT_EQ(store.files("shop", "2026-11-22T03")[0].object, "https://h/a");
    EXPECT_TRUE(store.requeue_upload("shop", "2026-11-22T03", kT0));
    // Foreign keys are on again once migrated.
    EXPECT_THROW(store.record_file({.job = "shop",
                                    .slot = "2026-11-23T00",
                                    .data_type = "visit",
                                    .name = "x",
                                    .bytes = 1,
                                    .sha256 = "x"}),
                 StateError);
  }
  // A reader of the new version opens it.
  StateStore reader = StateStore::open_read_only(db_path());
  EXPECT_EQ(reader.find("shop", "2026-11-22T03")->state, SlotState::uploading);
}

// Hourly against daily (issue 16): a date's rows replace the same date's, ranges are by
// date, and the latest date per type is what the metrics show.
TEST_F(StateStoreTest, ReconciliationsAreKeptPerDateAndType) {
  StateStore store(db_path());
  const auto row = [](std::string date, std::string type, std::uint64_t daily, bool match) {
    return Reconciliation{.job = "h",
                          .date = std::move(date),
                          .data_type = std::move(type),
                          .daily_job = "d",
                          .hourly_rows = 10,
                          .daily_rows = daily,
                          .hours = "[]",
                          .match = match,
                          .reconciled_at = from_unix(1795276800)};
  };
  const std::vector<Reconciliation> first{row("2026-11-21", "visit", 12, false),
                                          row("2026-11-22", "page", 10, true),
                                          row("2026-11-22", "visit", 11, false)};
  store.record_reconciliations(first);
  const std::vector<Reconciliation> again{row("2026-11-22", "visit", 10, true)};
  store.record_reconciliations(again);
  const auto day = store.reconciliations("h", "2026-11-22", "2026-11-22");
  ASSERT_EQ(day.size(), 2u);
  EXPECT_EQ(day[0], first[1]);
  EXPECT_EQ(day[1], again[0]);
  EXPECT_EQ(store.reconciliations("h", "", "9999-12-31").size(), 3u);
  EXPECT_TRUE(store.reconciliations("other", "", "9999-12-31").empty());
  const auto latest = store.latest_reconciliations("h");
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest[0].date, "2026-11-22");
  EXPECT_EQ(latest[1], again[0]);
}

// A date compared again replaces the whole date: a type no longer compared leaves no row.
TEST_F(StateStoreTest, ReplacingADatesReconciliationsDropsItsOtherTypes) {
  StateStore store(db_path());
  const auto row = [](std::string date, std::string type) {
    return Reconciliation{.job = "h",
                          .date = std::move(date),
                          .data_type = std::move(type),
                          .daily_job = "d",
                          .hourly_rows = 1,
                          .daily_rows = 1,
                          .hours = "[]",
                          .match = true,
                          .reconciled_at = from_unix(1795276800)};
  };
  const std::vector<Reconciliation> first{row("2026-11-21", "page"), row("2026-11-22", "page"),
                                          row("2026-11-22", "visit")};
  store.record_reconciliations(first);
  const std::vector<Reconciliation> again{row("2026-11-22", "visit")};
  store.replace_reconciliations("h", "2026-11-22", again);
  const auto day = store.reconciliations("h", "2026-11-22", "2026-11-22");
  ASSERT_EQ(day.size(), 1u);
  EXPECT_EQ(day[0], again[0]);
  // Other dates stay; the latest per type follows.
  const auto latest = store.latest_reconciliations("h");
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest[0].date, "2026-11-21");
  EXPECT_EQ(latest[1].date, "2026-11-22");
  store.replace_reconciliations("h", "2026-11-22", {});
  EXPECT_TRUE(store.reconciliations("h", "2026-11-22", "2026-11-22").empty());
}

// --- Schemas (issue 16) ---

TEST_F(StateStoreTest, SchemaHistoryIsStoredInSlotOrderAndReadBack) {
  StateStore store{db_path()};
  EXPECT_TRUE(store.schemas("shop", "visit").empty());
  EXPECT_TRUE(store.current_schemas("shop").empty());
  // Names that JSON must escape come back as they were.
  const std::vector<std::string> odd = {"a\"b", "c\\d", "e\nf", "时间", ""};
  store.store_schema("shop", "visit",
                     {.since_slot = "2026-11-22T05", .columns = odd, .seen_at = kT0});
  store.store_schema(
      "shop", "visit",
      {.since_slot = "2026-11-22T03", .columns = {"x", "y"}, .seen_at = kT0 + hours(1)});
  store.store_schema("shop", "page",
                     {.since_slot = "2026-11-22T04", .columns = {"p"}, .seen_at = kT0});
  store.store_schema("other", "visit",
                     {.since_slot = "2026-11-22T09", .columns = {"o"}, .seen_at = kT0});

  const std::vector<SchemaRecord> visit = store.schemas("shop", "visit");
  ASSERT_EQ(visit.size(), 2u);
  EXPECT_EQ(visit[0],
            (SchemaRecord{
                .since_slot = "2026-11-22T03", .columns = {"x", "y"}, .seen_at = kT0 + hours(1)}));
  EXPECT_EQ(visit[1],
            (SchemaRecord{.since_slot = "2026-11-22T05", .columns = odd, .seen_at = kT0}));

  // Current: the last by slot, whatever order they were stored in.
  const std::map<std::string, SchemaRecord> current = store.current_schemas("shop");
  ASSERT_EQ(current.size(), 2u);
  EXPECT_EQ(current.at("visit").since_slot, "2026-11-22T05");
  EXPECT_EQ(current.at("visit").columns, odd);
  EXPECT_EQ(current.at("page").columns, std::vector<std::string>{"p"});
  EXPECT_EQ(store.current_schemas("other").at("visit").since_slot, "2026-11-22T09");
}

TEST_F(StateStoreTest, StoreSchemaReplacesASlotsRowAndMovesOneInOneStep) {
  StateStore store{db_path()};
  store.store_schema("shop", "visit",
                     {.since_slot = "2026-11-22T05", .columns = {"a"}, .seen_at = kT0});
  // The same slot again: its row is replaced, not doubled.
  store.store_schema("shop", "visit",
                     {.since_slot = "2026-11-22T05", .columns = {"b"}, .seen_at = kT0});
  ASSERT_EQ(store.schemas("shop", "visit").size(), 1u);
  EXPECT_EQ(store.schemas("shop", "visit")[0].columns, std::vector<std::string>{"b"});
  // Moved back to an older slot: the row at T05 goes, the one at T02 comes.
  store.store_schema("shop", "visit",
                     {.since_slot = "2026-11-22T02", .columns = {"b"}, .seen_at = kT0},
                     "2026-11-22T05");
  const std::vector<SchemaRecord> history = store.schemas("shop", "visit");
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].since_slot, "2026-11-22T02");

  // Kept across a reopen, and readable by a read-only store.
  StateStore reader = StateStore::open_read_only(db_path());
  EXPECT_EQ(reader.schemas("shop", "visit"), history);
  EXPECT_THROW(reader.store_schema("shop", "visit", history[0]), StateError);
}

// Progress (issue 17): a downloading slot's bytes, replaced in place, read by slot name.
TEST_F(StateStoreTest, ProgressIsSetReplacedAndReadForDownloadingSlots) {
  StateStore store{db_path()};
  const std::vector<PlannedSlot> slots = {hour(kT0, kT0), hour(kT0 + hours(1), kT0)};
  store.plan("shop", slots, kT0);
  const std::string first = slots[0].slot, second = slots[1].slot;
  store.update("shop", first, {.state = SlotState::downloading, .next_at = kT0}, kT0);
  store.update("shop", second, {.state = SlotState::downloading, .next_at = kT0}, kT0);
  EXPECT_TRUE(store.progress("shop").empty());
  store.set_progress("shop", first, {.bytes_done = 10, .bytes_total = 100, .updated_at = kT0});
  store.set_progress("shop", second, {.bytes_done = 5, .updated_at = kT0});
  store.set_progress("shop", first,
                     {.bytes_done = 60, .bytes_total = 100, .updated_at = kT0 + minutes(1)});
  const auto rows = store.progress("shop");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows.at(first),
            (SlotProgress{.bytes_done = 60, .bytes_total = 100, .updated_at = kT0 + minutes(1)}));
  EXPECT_EQ(rows.at(second), (SlotProgress{.bytes_done = 5, .updated_at = kT0}));
  EXPECT_TRUE(store.progress("other").empty());
  // A slot the store does not hold, or one not downloading, gets no row.
  store.set_progress("shop", "2026-11-30T00", {.bytes_done = 1});
  store.update("shop", second, {.state = SlotState::waiting, .next_at = kT0}, kT0);
  store.set_progress("shop", second, {.bytes_done = 9, .updated_at = kT0});
  store.update("shop", second, {.state = SlotState::downloading, .next_at = kT0}, kT0);
  EXPECT_EQ(store.progress("shop").count(second), 0u);
  store.set_progress("shop", second, {.bytes_done = 5, .updated_at = kT0});
  // A reader (status) sees them.
  StateStore reader = StateStore::open_read_only(db_path());
  EXPECT_EQ(reader.progress("shop").size(), 2u);
  EXPECT_THROW(reader.set_progress("shop", first, {.bytes_done = 1}), StateError);
}

// The row goes when the slot leaves downloading, whichever way; staying downloading (a
// retry of one part) keeps it.
TEST_F(StateStoreTest, ProgressGoesWhenTheSlotLeavesDownloading) {
  StateStore store{db_path()};
  std::vector<PlannedSlot> slots;
  for (int i = 0; i < 4; ++i) {
    slots.push_back(hour(kT0 + hours(i), kT0));
  }
  store.plan("shop", slots, kT0);
  for (const PlannedSlot& slot : slots) {
    store.update("shop", slot.slot, {.state = SlotState::downloading, .next_at = kT0}, kT0);
    store.set_progress("shop", slot.slot, {.bytes_done = 7, .updated_at = kT0});
  }
  store.update("shop", slots[0].slot, {.state = SlotState::done, .next_at = kT0}, kT0);
  store.update("shop", slots[1].slot, {.state = SlotState::failed, .next_at = kT0}, kT0);
  store.update("shop", slots[2].slot, {.state = SlotState::waiting, .next_at = kT0}, kT0);
  store.update("shop", slots[3].slot, {.state = SlotState::downloading, .next_at = kT0}, kT0);
  EXPECT_EQ(store.progress("shop").size(), 1u);
  RawConnection raw{db_path()};
  EXPECT_EQ(raw.text("SELECT count(*) FROM progress"), "1");
  // Back to downloading: no stale row comes back.
  store.update("shop", slots[2].slot, {.state = SlotState::downloading, .next_at = kT0}, kT0);
  EXPECT_EQ(store.progress("shop").count(slots[2].slot), 0u);
  // A row that outlived its state (written by hand) is not read.
  ASSERT_EQ(
      raw.exec(
          ("INSERT INTO progress VALUES ('shop', '" + slots[0].slot + "', 3, NULL, 0)").c_str()),
      SQLITE_OK);
  EXPECT_EQ(store.progress("shop").count(slots[0].slot), 0u);
  // A restart after a crash: the downloads start again, the counts go.
  EXPECT_EQ(store.resume_downloads(kT0), 2);
  EXPECT_EQ(raw.text("SELECT count(*) FROM progress"), "0");
}

// A version-5 database (the last before progress) migrates to 6 with its rows and gets
// the progress table and its trigger.
TEST_F(StateStoreTest, MigratesAVersionFiveDatabaseAddingProgress) {
  const PlannedSlot slot = hour(kT0, kT0);
  {
    StateStore store{db_path()};
    store.plan("shop", std::span{&slot, 1}, kT0);
    store.update("shop", slot.slot, {.state = SlotState::downloading, .next_at = kT0}, kT0);
  }
  {
    RawConnection raw{db_path()};
    ASSERT_EQ(raw.exec("DROP TRIGGER progress_ends; DROP TABLE progress; DROP TABLE readiness; "
                       "PRAGMA user_version = 5;"),
              SQLITE_OK);
  }
  EXPECT_THROW(StateStore::open_read_only(db_path()), StateError);
  {
    StateStore store{db_path()};
    EXPECT_EQ(store.schema_version(), 8);
    EXPECT_EQ(store.find("shop", slot.slot)->state, SlotState::downloading);
    store.set_progress("shop", slot.slot, {.bytes_done = 1, .updated_at = kT0});
    EXPECT_EQ(store.progress("shop").size(), 1u);
    store.update("shop", slot.slot, {.state = SlotState::done, .next_at = kT0}, kT0);
    EXPECT_TRUE(store.progress("shop").empty());
  }
  RawConnection raw{db_path()};
  EXPECT_EQ(raw.text("SELECT count(*) FROM progress"), "0");
}

// A version-7 database (its CHECK on slots.state an IN list, which SQLite evaluates
// through a temporary b-tree built for every row written) migrates to 8 with its rows,
// the same check as comparisons, and the rest of its schema as it was.
TEST_F(StateStoreTest, MigratesAVersionSevenDatabaseToAStateCheckWithoutAnInList) {
  const PlannedSlot slot = hour(kT0, kT0);
  std::string others;
  {
    StateStore store{db_path()};
    store.plan("shop", std::span{&slot, 1}, kT0);
    store.update("shop", slot.slot, {.state = SlotState::done, .next_at = kT0}, kT0);
    store.record_file({.job = "shop",
                       .slot = slot.slot,
                       .data_type = "visit",
                       .name = "a.csv.gz",
                       .bytes = 3,
                       .sha256 = std::string(64, 'a')});
  }
  {
    // Back to version 7's text, as the program before wrote it.
    RawConnection raw{db_path()};
    const int cookie = std::stoi(raw.text("PRAGMA schema_version"));
    const std::string sql =
        "BEGIN; PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = replace(sql, "
        "'state = ''pending'' OR state = ''waiting'' OR state = ''downloading'' OR state = "
        "''uploading'' OR state = ''done'' OR state = ''failed'' OR state = ''lost''', "
        "'state IN (''pending'', ''waiting'', ''downloading'', ''uploading'', ''done'', "
        "''failed'', ''lost'')') WHERE name = 'slots'; PRAGMA schema_version = " +
        std::to_string(cookie + 1) +
        "; PRAGMA writable_schema = OFF; PRAGMA user_version = 7; COMMIT;";
    ASSERT_EQ(raw.exec(sql.c_str()), SQLITE_OK);
    ASSERT_NE(raw.text("SELECT sql FROM sqlite_schema WHERE name = 'slots'").find("state IN ("),
              std::string::npos);
    others = raw.text("SELECT group_concat(sql, ';') FROM sqlite_schema WHERE name <> 'slots'");
  }
  {
    StateStore store{db_path()};
    EXPECT_EQ(store.schema_version(), 8);
    EXPECT_EQ(store.find("shop", slot.slot)->state, SlotState::done);
    EXPECT_EQ(store.files("shop", slot.slot).size(), 1u);
    const PlannedSlot next = hour(kT0 + std::chrono::hours{1}, kT0);
    EXPECT_EQ(store.plan("shop", std::span{&next, 1}, kT0), 1);
  }
  RawConnection raw{db_path()};
  const std::string table = raw.text("SELECT sql FROM sqlite_schema WHERE name = 'slots'");
  EXPECT_EQ(table.find("state IN ("), std::string::npos) << table;
  EXPECT_NE(table.find("state = 'uploading' OR"), std::string::npos) << table;
  EXPECT_EQ(raw.text("SELECT group_concat(sql, ';') FROM sqlite_schema WHERE name <> 'slots'"),
            others);
  EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
  // The check still keeps unknown states out, and lets every known one in.
  EXPECT_NE(raw.exec("INSERT INTO slots (job, slot, start, state, next_at, created_at, "
                     "updated_at) VALUES ('j', 's', 0, 'bogus', 0, 0, 0)"),
            SQLITE_OK);
  EXPECT_EQ(raw.exec("INSERT INTO slots (job, slot, start, state, next_at, created_at, "
                     "updated_at) VALUES ('j', 's', 0, 'uploading', 0, 0, 0)"),
            SQLITE_OK);
}

// Inside a Batch, plan() and update() take no savepoint: a batch that ends uncommitted
// undoes them, and one committed keeps them.
TEST_F(StateStoreTest, PlanAndUpdateInsideABatchGoWithTheBatch) {
  StateStore store{db_path()};
  const PlannedSlot first = hour(kT0, kT0);
  const PlannedSlot second = hour(kT0 + std::chrono::hours{1}, kT0);
  {
    StateStore::Batch batch{store};
    EXPECT_EQ(store.plan("shop", std::span{&first, 1}, kT0), 1);
    store.update("shop", first.slot, {.state = SlotState::waiting, .next_at = kT0}, kT0);
    EXPECT_THROW(
        store.update("shop", "2020-01-01T00", {.state = SlotState::done, .next_at = kT0}, kT0),
        StateError);
    EXPECT_EQ(store.find("shop", first.slot)->state, SlotState::waiting);
  }
  EXPECT_FALSE(store.find("shop", first.slot).has_value());
  {
    StateStore::Batch batch{store};
    EXPECT_EQ(store.plan("shop", std::span{&second, 1}, kT0), 1);
    store.update("shop", second.slot, {.state = SlotState::waiting, .next_at = kT0}, kT0);
    batch.commit();
  }
  EXPECT_EQ(store.find("shop", second.slot)->state, SlotState::waiting);
}

// count_states counts only the states asked for, 0 for those with no slot.
TEST_F(StateStoreTest, CountsTheSlotsOfSomeStates) {
  StateStore store{db_path()};
  const PlannedSlot slots[] = {hour(kT0, kT0), hour(kT0 + std::chrono::hours{1}, kT0),
                               hour(kT0 + std::chrono::hours{2}, kT0)};
  store.plan("shop", slots, kT0);
  store.plan("other", std::span{&slots[0], 1}, kT0);
  store.update("shop", slots[0].slot, {.state = SlotState::done, .next_at = kT0}, kT0);
  const SlotState asked[] = {SlotState::pending, SlotState::failed};
  EXPECT_EQ(store.count_states("shop", asked),
            (std::map<SlotState, int>{{SlotState::pending, 2}, {SlotState::failed, 0}}));
}

}  // namespace
}  // namespace gio::state
