// The hourly against daily comparison (reconcile/compare.hpp): sums per type and hour,
// skipped types, the tolerance, short hours and the stored hours' JSON.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <map>

#include "reconcile/compare.hpp"
#include "reconcile/reconciler.hpp"
#include "support/temp_dir.hpp"

namespace gio::reconcile {
namespace {

state::ArchivedFile counted(std::string type, std::uint64_t rows,
                            std::vector<std::uint64_t> by_hour = {}) {
  state::ArchivedFile file;
  file.data_type = std::move(type);
  file.name = file.data_type + "_part.csv.gz";
  file.rows = rows;
  file.rows_by_hour = std::move(by_hour);
  return file;
}

// Every hour `per_hour` rows of `type`; the day the same plus `late` per hour.
struct Date {
  std::array<std::vector<state::ArchivedFile>, kHours> hourly;
  std::vector<state::ArchivedFile> daily;
};
Date date_of(const std::string& type, std::uint64_t per_hour,
             const std::map<int, std::uint64_t>& late) {
  Date date;
  std::vector<std::uint64_t> by_hour(kHours, per_hour);
  std::uint64_t total = per_hour * kHours;
  for (const auto& [hour, rows] : late) {
    by_hour[hour] += rows;
    total += rows;
  }
  for (int hour = 0; hour < kHours; ++hour) {
    date.hourly[hour].push_back(counted(type, per_hour));
  }
  date.daily.push_back(counted(type, total, by_hour));
  return date;
}

TEST(Compare, SumsHoursAndSplitsTheDayByHour) {
  const Date date = date_of("visit", 100, {{3, 7}, {23, 1}});
  const Comparison comparison = compare(date.hourly, date.daily);
  ASSERT_EQ(comparison.types.size(), 1u);
  EXPECT_TRUE(comparison.skipped.empty());
  const TypeResult& visit = comparison.types[0];
  EXPECT_EQ(visit.data_type, "visit");
  EXPECT_EQ(visit.hourly_rows, 2400u);
  EXPECT_EQ(visit.daily_rows, 2408u);
  EXPECT_EQ(visit.late_rows(), 8);
  EXPECT_EQ(visit.hours[3], (HourRows{100, 107}));
  EXPECT_EQ(visit.hours[4], (HourRows{100, 100}));
  // 8 of 2408 is 0.33%: within the default 0.5%, beyond 0.3%.
  EXPECT_TRUE(matches(visit, 0.5));
  EXPECT_FALSE(matches(visit, 0.3));
  // Hour 3 is 6.5% short, hour 23 1%: both beyond 0.5% of the hour's daily rows.
  EXPECT_EQ(short_hours(visit, 0.5), (std::vector<int>{3, 23}));
  EXPECT_EQ(short_hours(visit, 2), (std::vector<int>{3}));
  EXPECT_EQ(format_short_hours(visit, 0.5), "03:7,23:1");
}

TEST(Compare, HoursWithMoreRowsDifferButAreNotShort) {
  Date date = date_of("page", 10, {});
  date.hourly[5][0].rows = 12;  // the hour has 2 rows the day does not
  const TypeResult page = compare(date.hourly, date.daily).types.at(0);
  EXPECT_EQ(page.late_rows(), -2);
  EXPECT_FALSE(matches(page, 0.5));
  EXPECT_EQ(differing_hours(page, 0.5), (std::vector<int>{5}));
  EXPECT_TRUE(short_hours(page, 0.5).empty());
  EXPECT_EQ(format_short_hours(page, 0.5), "");
}

TEST(Compare, TypesAreComparedApartAndAMissingSideCountsZero) {
  Date date = date_of("visit", 2, {});
  // A type only in the day (the hours never had it), and one only in an hour.
  date.daily.push_back(counted("vstr", 1, std::vector<std::uint64_t>(kHours, 0)));
  date.daily.back().rows_by_hour[9] = 1;
  date.hourly[4].push_back(counted("evar", 3));
  const Comparison comparison = compare(date.hourly, date.daily);
  ASSERT_EQ(comparison.types.size(), 3u);
  EXPECT_EQ(comparison.types[0].data_type, "evar");
  EXPECT_EQ(comparison.types[0].daily_rows, 0u);
  EXPECT_FALSE(matches(comparison.types[0], 100));  // a day of 0 matches only 0
  EXPECT_EQ(comparison.types[2].data_type, "vstr");
  EXPECT_EQ(short_hours(comparison.types[2], 0.5), (std::vector<int>{9}));
  EXPECT_TRUE(matches(comparison.types[1], 0));
}

TEST(Compare, UncountedOrUnsplitFilesSkipTheirTypeWithAReason) {
  Date date = date_of("visit", 2, {});
  date.hourly[7][0].rows.reset();  // a file from before rows were counted
  Date page = date_of("page", 2, {});
  page.daily[0].rows_by_hour.clear();  // a daily file without a `time` column
  for (int hour = 0; hour < kHours; ++hour) {
    date.hourly[hour].push_back(page.hourly[hour][0]);
  }
  date.daily.push_back(page.daily[0]);
  // An empty daily file needs no split.
  date.daily.push_back(counted("vstr", 0));
  const Comparison comparison = compare(date.hourly, date.daily);
  ASSERT_EQ(comparison.skipped.size(), 2u);
  EXPECT_EQ(comparison.skipped[0].data_type, "page");
  EXPECT_NE(comparison.skipped[0].reason.find("no rows per hour"), std::string::npos);
  EXPECT_EQ(comparison.skipped[1].data_type, "visit");
  EXPECT_NE(comparison.skipped[1].reason.find("no row count"), std::string::npos);
  ASSERT_EQ(comparison.types.size(), 1u);
  EXPECT_EQ(comparison.types[0].data_type, "vstr");
}

// A duplicate part (same type and sha256 under another name) is one content: the
// manifest leaves it out, so the totals must too.
TEST(Compare, DuplicatePartsOfASlotCountOnce) {
  Date date = date_of("visit", 5, {});
  for (auto& files : date.hourly) {
    files[0].sha256 = "aa";
  }
  date.hourly[2].push_back(date.hourly[2][0]);
  date.hourly[2].back().name = "visit_part_copy.csv.gz";
  date.daily[0].sha256 = "dd";
  date.daily.push_back(date.daily[0]);
  date.daily.back().name = "visit_day_copy.csv.gz";
  // The same content of another type is not a duplicate.
  date.daily.push_back(counted("page", 0));
  date.daily.back().sha256 = "dd";
  const Comparison comparison = compare(date.hourly, date.daily);
  ASSERT_EQ(comparison.types.size(), 2u);
  const TypeResult& visit = comparison.types[1];
  EXPECT_EQ(visit.hourly_rows, 120u);
  EXPECT_EQ(visit.daily_rows, 120u);
  EXPECT_EQ(visit.hours[2], (HourRows{5, 5}));
  EXPECT_TRUE(matches(visit, 0));
}

// A type only one job fetches is left out with a reason, never a mismatch.
TEST(Compare, TypesOnlyOneJobFetchesAreSkippedNotMismatched) {
  Date date = date_of("visit", 2, {});
  date.hourly[4].push_back(counted("evar", 3));
  date.daily.push_back(counted("vstr", 1, std::vector<std::uint64_t>(kHours, 0)));
  date.daily.back().rows_by_hour[9] = 1;
  const Comparison comparison =
      compare(date.hourly, date.daily, Fetched{{"visit", "evar"}}, Fetched{{"visit", "vstr"}});
  ASSERT_EQ(comparison.types.size(), 1u);
  EXPECT_EQ(comparison.types[0].data_type, "visit");
  ASSERT_EQ(comparison.skipped.size(), 2u);
  EXPECT_EQ(comparison.skipped[0].data_type, "evar");
  EXPECT_NE(comparison.skipped[0].reason.find("the daily job does not fetch"), std::string::npos);
  EXPECT_EQ(comparison.skipped[1].data_type, "vstr");
  EXPECT_NE(comparison.skipped[1].reason.find("the hourly job does not fetch"), std::string::npos);
  // 'all' on both sides compares every type.
  EXPECT_EQ(compare(date.hourly, date.daily, Fetched{}, Fetched{}).types.size(), 3u);
}

TEST(Compare, WithinIsRelativeToTheDay) {
  EXPECT_TRUE(within(0, 0, 0));
  EXPECT_TRUE(within(995, 1000, 0.5));
  EXPECT_FALSE(within(994, 1000, 0.5));
  EXPECT_TRUE(within(1005, 1000, 0.5));
  EXPECT_FALSE(within(1, 0, 50));
  EXPECT_TRUE(within(0, 1000, 100));
}

TEST(Compare, HoursJsonRoundTrips) {
  const TypeResult visit =
      compare(date_of("visit", 3, {{0, 2}}).hourly, date_of("visit", 3, {{0, 2}}).daily)
          .types.at(0);
  const std::string json = hours_json(visit);
  EXPECT_EQ(json.substr(0, 14), "[[3,5],[3,3],[");
  const auto hours = parse_hours_json(json);
  ASSERT_TRUE(hours);
  EXPECT_EQ(*hours, visit.hours);
  const auto stored = from_stored({.job = "h",
                                   .date = "2026-11-22",
                                   .data_type = "visit",
                                   .daily_job = "d",
                                   .hourly_rows = 72,
                                   .daily_rows = 74,
                                   .hours = json,
                                   .match = false,
                                   .reconciled_at = {}});
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->late_rows(), 2);
  EXPECT_FALSE(parse_hours_json("[[1,2]]"));
  EXPECT_FALSE(parse_hours_json("not json"));
  EXPECT_FALSE(parse_hours_json("[" + std::string(23 * 6, ' ') + "]"));
  std::string negative = json;
  negative.replace(2, 1, "-3");
  EXPECT_FALSE(parse_hours_json(negative));
}

// Two hourly jobs naming one daily job: the daily job is part of both pairs (its slot
// done must reconcile both; `reconcile --job daily` shows both).
TEST(Pairs, ADailyJobNamedByTwoHourlyJobsIsInBothPairs) {
  config::Config config;
  const auto job = [](std::string name, Granularity granularity, std::string daily) {
    config::Job result;
    result.name = std::move(name);
    result.project = "shop";
    result.granularity = granularity;
    config::RawJob raw;
    raw.reconcile.daily_job = std::move(daily);
    result.settings = raw;
    return result;
  };
  config.jobs = {job("h1", Granularity::hour, "d"), job("h2", Granularity::hour, "d"),
                 job("d", Granularity::day, "")};
  const auto of_daily = pairs_of(config, config.jobs[2]);
  ASSERT_EQ(of_daily.size(), 2u);
  EXPECT_EQ(of_daily[0].hourly->name, "h1");
  EXPECT_EQ(of_daily[1].hourly->name, "h2");
  const auto of_h2 = pairs_of(config, config.jobs[1]);
  ASSERT_EQ(of_h2.size(), 1u);
  EXPECT_EQ(of_h2[0].daily->name, "d");
}

// A date whose reconcile failed (the database busy) is tried again at the next slot
// done, not only at the next start; the failure never escapes.
TEST(Reconciler, AFailedDateIsRetriedAtTheNextSlotDone) {
  testing::TempDir dir;
  const auto db = dir.path() / "state.db";
  state::StateStore store{db};
  store.set_busy_timeout(std::chrono::milliseconds{20});
  config::Config config;
  config.archive_dir = dir.path() / "archive";
  config::Job hourly;
  hourly.name = "h";
  hourly.project = "shop";
  hourly.granularity = Granularity::hour;
  config::RawJob raw;
  raw.reconcile.daily_job = "d";
  hourly.settings = raw;
  config::Job daily = hourly;
  daily.name = "d";
  daily.granularity = Granularity::day;
  daily.settings = config::RawJob{};
  config.jobs = {hourly, daily};
  const Slot day = *Slot::parse("2026-11-20", Granularity::day);
  const Instant now = day.end() + std::chrono::hours{30};
  const auto done = [&](const std::string& job, const Slot& slot, state::ArchivedFile file) {
    const std::vector<state::PlannedSlot> planned{{slot.name(), slot.start(), now}};
    store.plan(job, planned, now);
    store.update(job, slot.name(), {.state = state::SlotState::done, .next_at = now}, now);
    file.job = job;
    file.slot = slot.name();
    store.record_file(file);
  };
  for (int hour = 0; hour < kHours; ++hour) {
    done("h", Slot::containing(day.start() + std::chrono::hours{hour}, Granularity::hour),
         counted("visit", 1));
  }
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  FailedDates failed;
  after_slot_done(config, store, config.jobs[1], day, now, failed);
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  // Not done yet: the daily slot is missing, so nothing failed.
  EXPECT_TRUE(failed.dates.empty());
  done("d", day, counted("visit", 24, std::vector<std::uint64_t>(kHours, 1)));
  ASSERT_EQ(sqlite3_open(db.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_NO_THROW(after_slot_done(config, store, config.jobs[1], day, now, failed));
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  ASSERT_EQ(failed.dates.size(), 1u);
  EXPECT_TRUE(store.reconciliations("h", "2026-11-20", "2026-11-20").empty());
  // Any later slot done (here the next day's first hour) retries it.
  const Slot later = Slot::containing(day.end(), Granularity::hour);
  after_slot_done(config, store, config.jobs[0], later, now, failed);
  EXPECT_TRUE(failed.dates.empty());
  const auto rows = store.reconciliations("h", "2026-11-20", "2026-11-20");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_TRUE(rows[0].match);
}

}  // namespace
}  // namespace gio::reconcile
