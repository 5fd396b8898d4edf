// What each slot is (report/slot_view.hpp): shown states from a real state store at a
// fixed "now", file sums, chart cells, the attention order, the query's date bounds.

#include <gtest/gtest.h>

#include "report/format.hpp"
#include "report/slot_view.hpp"
#include "support/temp_dir.hpp"

namespace gio::report {
namespace {

using namespace std::chrono_literals;

// 2026-12-01 18:00 Beijing.
const Instant kNow = *parse_utc("2026-12-01T10:00:00Z");

config::Job hourly(std::string name = "shop-hourly") {
  config::Job job;
  job.name = std::move(name);
  job.project = "p";
  job.granularity = Granularity::hour;
  job.ready_after = 40min;
  job.settings = config::RawJob{};
  return job;
}

config::Config config_of(std::vector<config::Job> jobs) {
  config::Config config;
  config.jobs = std::move(jobs);
  return config;
}

Instant start_of(std::string_view slot, Granularity granularity = Granularity::hour) {
  return Slot::parse(slot, granularity)->start();
}

class ReportTest : public ::testing::Test {
 protected:
  ReportTest() : store_(dir_.path() / "state.db") {}

  void add(const config::Job& job, std::string_view slot, state::SlotState state,
           std::string error = "", int attempts = 1) {
    const state::PlannedSlot planned{std::string{slot}, start_of(slot, job.granularity), kNow - 1h};
    store_.plan(job.name, std::span{&planned, 1}, kNow - 2h);
    for (int i = 0; i < attempts; ++i) {
      store_.update(job.name, slot,
                    {.state = state,
                     .next_at = kNow + 5min,
                     .api_status = "RUNNING",
                     .last_error = error,
                     .count_attempt = true},
                    kNow - 1h);
    }
  }

  void file(const config::Job& job, std::string_view slot, std::string type, std::string name,
            std::uint64_t bytes, std::optional<std::uint64_t> rows) {
    state::ArchivedFile file{.job = job.name,
                             .slot = std::string{slot},
                             .data_type = std::move(type),
                             .name = std::move(name),
                             .bytes = bytes,
                             .sha256 = "00"};
    file.rows = rows;
    store_.record_file(file);
  }

  const DayView& day(const JobView& view, std::string_view date) {
    for (const DayView& day : view.days) {
      if (day.date == date) {
        return day;
      }
    }
    throw std::runtime_error("no day " + std::string{date});
  }

  testing::TempDir dir_;
  state::StateStore store_;
};

TEST_F(ReportTest, EveryShownStateOfAnHourlyDay) {
  const config::Job job = hourly();
  add(job, "2026-12-01T08", state::SlotState::done);
  file(job, "2026-12-01T08", "visit", "a.csv.gz", 100, 7);
  file(job, "2026-12-01T08", "page", "b.csv.gz", 50, 3);
  add(job, "2026-12-01T09", state::SlotState::done);
  file(job, "2026-12-01T09", "visit", "a.csv.gz", 10, 7);
  file(job, "2026-12-01T09", "page", "b.csv.gz", 5, std::nullopt);
  add(job, "2026-12-01T10", state::SlotState::pending);
  add(job, "2026-12-01T11", state::SlotState::waiting);
  add(job, "2026-12-01T12", state::SlotState::downloading);
  store_.set_progress(job.name, "2026-12-01T12", {.bytes_done = 300, .updated_at = kNow});
  add(job, "2026-12-01T13", state::SlotState::uploading);
  add(job, "2026-12-01T14", state::SlotState::failed, "ERROR from the API", 3);

  const DateRange range = date_range({.from = "2026-12-01", .to = "2026-12-01"}, kNow);
  const JobView view = view_job(job, store_, kNow, range);
  ASSERT_EQ(view.days.size(), 1u);
  const std::vector<SlotView>& cells = view.days[0].cells;
  ASSERT_EQ(cells.size(), 24u);
  EXPECT_EQ(cells[0].slot, "2026-12-01T00");
  EXPECT_EQ(cells[0].state, "unplanned");
  EXPECT_EQ(cells[8].state, "done");
  EXPECT_EQ(cells[8].files, 2u);
  EXPECT_EQ(cells[8].bytes, 150u);
  EXPECT_EQ(cells[8].rows, 10u);
  EXPECT_EQ(cells[8].next_at, std::nullopt);
  EXPECT_EQ(cells[9].state, "done");
  EXPECT_EQ(cells[9].bytes, 15u);
  EXPECT_EQ(cells[9].rows, std::nullopt);  // one file without a count
  EXPECT_EQ(cells[10].state, "waiting");   // pending
  EXPECT_EQ(cells[10].next_at, kNow + 5min);
  EXPECT_EQ(cells[11].state, "waiting");
  EXPECT_EQ(cells[12].state, "downloading");
  EXPECT_EQ(cells[12].bytes_done, 300u);
  EXPECT_EQ(cells[12].bytes_total, std::nullopt);  // the vendor sent no length
  EXPECT_EQ(cells[10].bytes_done, std::nullopt);   // not downloading
  EXPECT_EQ(slot_json(cells[12]).at("bytes_done").to_number<std::int64_t>(), 300);
  EXPECT_TRUE(slot_json(cells[12]).at("bytes_total").is_null());
  EXPECT_FALSE(slot_json(cells[10]).contains("bytes_done"));
  EXPECT_EQ(cells[13].state, "uploading");
  EXPECT_EQ(cells[14].state, "failed");
  EXPECT_EQ(cells[14].attempts, 3);
  EXPECT_EQ(cells[14].last_error, "ERROR from the API");
  EXPECT_EQ(cells[14].api_status, "RUNNING");
  // 16:00-17:00 Beijing ended 09:00Z, ready 09:40Z: unplanned; 17:00 is ready 10:40Z.
  EXPECT_EQ(cells[16].state, "unplanned");
  EXPECT_NE(cells[16].last_error.find("not planned yet"), std::string::npos);
  EXPECT_EQ(cells[17].state, "not_ready");
  EXPECT_EQ(cells[17].next_at, *parse_utc("2026-12-01T10:40:00Z"));
  EXPECT_EQ(cells[23].state, "not_ready");
  EXPECT_EQ(cells[14].lost_at, start_of("2026-12-01T14") + kRetention);
  EXPECT_EQ(cells[14].seconds_left, (cells[14].lost_at - kNow).count());
  EXPECT_FALSE(cells[14].at_risk);

  const auto count = [&view](std::string_view state) {
    return view.counts[static_cast<std::size_t>(
        std::find(kShownStates.begin(), kShownStates.end(), state) - kShownStates.begin())];
  };
  EXPECT_EQ(count("done"), 2);
  EXPECT_EQ(count("waiting"), 2);
  EXPECT_EQ(count("downloading"), 1);
  EXPECT_EQ(count("uploading"), 1);
  EXPECT_EQ(count("failed"), 1);
  EXPECT_EQ(count("lost"), 0);
  EXPECT_EQ(count("not_ready"), 7);
  EXPECT_EQ(count("unplanned"), 10);  // 00..07, 15, 16
  ASSERT_EQ(view.attention.size(), 1u);
  EXPECT_EQ(view.attention[0].slot, "2026-12-01T14");
}

TEST_F(ReportTest, LostAndAtRiskComeInTheAttentionListMostUrgentFirst) {
  const config::Job job = hourly();
  // Lost: the vendor dropped 2026-11-16T00 at 2026-11-30T16:00Z.
  add(job, "2026-11-16T00", state::SlotState::lost, "past retention");
  add(job, "2026-11-16T01", state::SlotState::lost, "past retention");
  // 2026-11-18T10 starts 02:00Z: lost at 12-03T02:00Z, 40 h from now: at risk.
  add(job, "2026-11-18T10", state::SlotState::waiting);
  add(job, "2026-11-18T05", state::SlotState::failed, "gave up");
  add(job, "2026-11-20T05", state::SlotState::failed, "gave up");
  add(job, "2026-11-18T06", state::SlotState::uploading);  // local: never at risk
  for (int hour = 0; hour < 24; ++hour) {
    char slot[16];
    std::snprintf(slot, sizeof slot, "2026-11-17T%02d", hour);
    add(job, slot, state::SlotState::done);
  }
  const DateRange range = date_range({.from = "2026-11-16", .to = "2026-11-18"}, kNow);
  const JobView view = view_job(job, store_, kNow, range);
  ASSERT_EQ(view.days.size(), 3u);
  const SlotView& lost = day(view, "2026-11-16").cells[0];
  EXPECT_EQ(lost.state, "lost");
  EXPECT_EQ(lost.seconds_left, 0);
  EXPECT_FALSE(lost.at_risk);
  // A slot of 11-16 without a row is past retention too: lost, with why.
  EXPECT_EQ(day(view, "2026-11-16").cells[2].state, "lost");
  EXPECT_NE(day(view, "2026-11-16").cells[2].last_error.find("before it was planned"),
            std::string::npos);
  EXPECT_TRUE(day(view, "2026-11-18").cells[10].at_risk);
  EXPECT_FALSE(day(view, "2026-11-18").cells[6].at_risk);

  // 11-16: hours 00..18 are lost (17 of them without a row), 19..23 (no row) are hours
  // from their loss; 11-18: every hour is within 72 h of its loss, all at risk but the
  // uploading 06.
  ASSERT_EQ(view.attention.size(), 5u + 23u + 19u);
  EXPECT_EQ(view.attention[0].slot, "2026-11-16T19");  // least time left: 1 h
  EXPECT_EQ(view.attention[0].state, "unplanned");
  EXPECT_EQ(view.attention[0].seconds_left, 3600);
  EXPECT_EQ(view.attention[5].slot, "2026-11-18T00");
  EXPECT_EQ(view.attention[10].slot, "2026-11-18T05");
  EXPECT_EQ(view.attention[10].state, "failed");
  EXPECT_EQ(view.attention[14].state, "waiting");
  EXPECT_EQ(view.attention[27].slot, "2026-11-18T23");
  EXPECT_EQ(view.attention[28].slot, "2026-11-16T00");  // lost ones last, oldest first
  EXPECT_EQ(view.attention[28].state, "lost");
  EXPECT_EQ(view.attention[28].last_error, "past retention");
  for (std::size_t i = 1; i < 28; ++i) {
    EXPECT_LE(view.attention[i - 1].seconds_left, view.attention[i].seconds_left);
  }
}

TEST_F(ReportTest, ChartJobHasOneCellPerChartPerSlot) {
  config::Job job = hourly("charts");
  job.granularity = Granularity::day;
  job.ready_after = 6h;
  config::ChartJob charts;
  charts.charts = {"c1", "c2"};
  job.settings = charts;
  add(job, "2026-11-29", state::SlotState::done);
  file(job, "2026-11-29", "c1", "chart.csv", 10, 2);
  file(job, "2026-11-29", "c2", "chart.csv", 20, 3);
  add(job, "2026-11-30", state::SlotState::failed, "chart c2 failed");
  file(job, "2026-11-30", "c1", "chart.csv", 11, 4);

  const DateRange range = date_range({.from = "2026-11-29", .to = "2026-12-01"}, kNow);
  const JobView view = view_job(job, store_, kNow, range);
  ASSERT_EQ(view.days.size(), 3u);
  const auto& done = day(view, "2026-11-29").cells;
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].chart, "c1");
  EXPECT_EQ(done[0].state, "done");
  EXPECT_EQ(done[0].bytes, 10u);
  EXPECT_EQ(done[1].chart, "c2");
  EXPECT_EQ(done[1].rows, 3u);
  const auto& failed = day(view, "2026-11-30").cells;
  EXPECT_EQ(failed[0].state, "done");  // its file is recorded
  EXPECT_EQ(failed[0].rows, 4u);
  EXPECT_EQ(failed[1].state, "failed");
  EXPECT_EQ(failed[1].files, 0u);
  EXPECT_EQ(failed[1].last_error, "chart c2 failed");
  // 2026-12-01 ends 16:00Z, ready 22:00Z.
  EXPECT_EQ(day(view, "2026-12-01").cells[0].state, "not_ready");

  const boost::json::object body = slots_json(
      config_of({job}), store_, kNow, {.job = "charts", .from = "2026-11-30", .to = "2026-11-30"});
  EXPECT_EQ(body.at("generated_at").as_string(), "2026-12-01T10:00:00Z");
  const auto& entry = body.at("jobs").as_array().at(0).as_object();
  EXPECT_EQ(entry.at("kind").as_string(), "chart");
  EXPECT_EQ(entry.at("granularity").as_string(), "day");
  EXPECT_TRUE(entry.at("sink").is_null());
  EXPECT_EQ(entry.at("counts").at("done").as_int64(), 1);
  EXPECT_EQ(entry.at("counts").at("failed").as_int64(), 1);
  const auto& cell = entry.at("days").as_array().at(0).at("cells").as_array().at(1).as_object();
  EXPECT_EQ(cell.at("chart").as_string(), "c2");
  EXPECT_EQ(cell.at("state").as_string(), "failed");
  EXPECT_EQ(cell.at("lost_at").as_string(), "2026-12-14T16:00:00Z");
  EXPECT_TRUE(cell.at("next_at").is_null());
  EXPECT_TRUE(cell.at("rows").is_null());  // no file: nothing counted, shown "–"
  EXPECT_FALSE(cell.contains("bytes_done"));
}

// An unplanned slot older than the backfill window is one the daemon never asks for
// (`gaps` does not list it): not at risk, not in the attention list, however close its
// loss; one inside the window still is.
TEST_F(ReportTest, UnplannedOutsideTheBackfillWindowIsNotAtRisk) {
  config::Job job = hourly();
  job.backfill = std::chrono::days{14};  // the window starts 2026-11-17T10:00Z
  const DateRange range = date_range({.from = "2026-11-17", .to = "2026-11-17"}, kNow);
  const JobView view = view_job(job, store_, kNow, range);
  const SlotView& outside = day(view, "2026-11-17").cells[17];  // 09:00Z, 23 h left
  EXPECT_EQ(outside.state, "unplanned");
  EXPECT_FALSE(outside.at_risk);
  EXPECT_NE(outside.last_error.find("outside the job's backfill window"), std::string::npos);
  const SlotView& inside = day(view, "2026-11-17").cells[18];  // 10:00Z, 24 h left
  EXPECT_EQ(inside.state, "unplanned");
  EXPECT_TRUE(inside.at_risk);
  ASSERT_FALSE(view.attention.empty());
  for (const SlotView& cell : view.attention) {
    EXPECT_GE(cell.start, *parse_utc("2026-11-17T10:00:00Z")) << cell.slot;
  }
  EXPECT_EQ(view.attention.size(), 6u);  // 18..23
}

TEST_F(ReportTest, SlotsJsonOfAnHourlyJob) {
  const config::Job job = hourly();
  add(job, "2026-12-01T09", state::SlotState::done);
  file(job, "2026-12-01T09", "visit", "a.csv.gz", 10, std::nullopt);
  const config::Config config = config_of({job, hourly("other")});
  const boost::json::object all = slots_json(config, store_, kNow, {});
  ASSERT_EQ(all.at("jobs").as_array().size(), 2u);
  const auto& days = all.at("jobs").as_array().at(0).at("days").as_array();
  ASSERT_EQ(days.size(), 15u);  // the retention's 15 days up to today
  EXPECT_EQ(days.front().at("date").as_string(), "2026-11-17");
  EXPECT_EQ(days.back().at("date").as_string(), "2026-12-01");
  const auto& cell = days.back().at("cells").as_array().at(9).as_object();
  EXPECT_EQ(cell.at("slot").as_string(), "2026-12-01T09");
  EXPECT_EQ(cell.at("state").as_string(), "done");
  EXPECT_TRUE(cell.at("rows").is_null());
  EXPECT_EQ(cell.at("bytes").to_number<std::int64_t>(), 10);
  EXPECT_FALSE(cell.contains("chart"));
  const auto& next = all.at("jobs").as_array().at(0).at("next_ask").as_object();
  EXPECT_EQ(next.at("slot").as_string(), "2026-12-01T17");
  EXPECT_EQ(next.at("at").as_string(), "2026-12-01T10:40:00Z");
  const boost::json::object one = slots_json(config, store_, kNow, {.job = "other"});
  ASSERT_EQ(one.at("jobs").as_array().size(), 1u);
  EXPECT_EQ(one.at("jobs").as_array().at(0).at("job").as_string(), "other");
  EXPECT_THROW(slots_json(config, store_, kNow, {.job = "nope"}), UnknownJob);
}

// With a readiness history (issue 18) the scheduler first asks when the model says, not
// at the fixed ready_at: the next ask and a not-ready slot's next_at show that ask.
TEST_F(ReportTest, NextAskIsTheReadinessModelsFirstAsk) {
  const config::Job job = hourly();
  for (int hour = 0; hour < 10; ++hour) {
    const std::string slot = "2026-11-30T1" + std::to_string(hour);
    store_.record_readiness(job.name, "hour", slot, 20min, kNow - 24h, 48);
  }
  const boost::json::object all =
      slots_json(config_of({job}), store_, kNow, {.from = "2026-12-01", .to = "2026-12-01"});
  const auto& shown = all.at("jobs").as_array().at(0).as_object();
  const auto& next = shown.at("next_ask").as_object();
  EXPECT_EQ(next.at("slot").as_string(), "2026-12-01T17");
  const Instant at = *parse_utc(next.at("at").as_string());
  const Instant ready_at = *parse_utc("2026-12-01T10:40:00Z");  // 18:00 Beijing + 40 min
  EXPECT_GT(at, ready_at) << "delays of 20 min past the floor: asked later than it";
  EXPECT_LE(at, ready_at + job.poll_every);
  const auto& cell = shown.at("days").as_array().at(0).at("cells").as_array().at(17).as_object();
  EXPECT_EQ(cell.at("state").as_string(), "not_ready");
  EXPECT_EQ(cell.at("next_at").as_string(), next.at("at").as_string());
}

TEST(DateRange, BoundsAndErrors) {
  const auto range = [](SlotQuery query) {
    const DateRange found = date_range(query, kNow);
    return found.first.name() + ".." + found.last.name();
  };
  EXPECT_EQ(range({}), "2026-11-17..2026-12-01");
  EXPECT_EQ(range({.from = "2026-11-20"}), "2026-11-20..2026-12-01");
  EXPECT_EQ(range({.from = "2026-10-01"}), "2026-10-01..2026-10-15");
  EXPECT_EQ(range({.to = "2026-11-10"}), "2026-10-27..2026-11-10");
  EXPECT_EQ(range({.from = "2026-11-30", .to = "2026-11-30"}), "2026-11-30..2026-11-30");
  const auto error = [](SlotQuery query) {
    try {
      date_range(query, kNow);
    } catch (const std::invalid_argument& e) {
      return std::string{e.what()};
    }
    return std::string{"no error"};
  };
  EXPECT_EQ(error({.from = "2026-13-01"}).substr(0, 5), "from:");
  EXPECT_EQ(error({.to = "yesterday"}).substr(0, 3), "to:");
  EXPECT_EQ(error({.from = "2026-11-30", .to = "2026-11-29"}), "to: before from");
  EXPECT_EQ(error({.from = "2020-01-01", .to = "2026-11-29"}).substr(0, 3), "to:");
  // The status page's queries keep to the vendor's retention (15 days before today) and
  // to 16 days in all: they are rendered on the daemon's loop.
  const auto page = [](SlotQuery query) {
    query.within_retention = true;
    return query;
  };
  EXPECT_EQ(range(page({})), "2026-11-17..2026-12-01");
  EXPECT_EQ(range(page({.from = "2026-11-16"})), "2026-11-16..2026-11-30");
  EXPECT_EQ(range(page({.from = "2026-11-16", .to = "2026-12-01"})), "2026-11-16..2026-12-01");
  EXPECT_EQ(error(page({.from = "2026-11-15"})),
            "from: before 2026-11-16 (15 days before today, the vendor's retention)");
  EXPECT_EQ(error(page({.to = "2026-11-20"})).substr(0, 21), "to: before 2026-11-16");
  EXPECT_EQ(error(page({.from = "2026-11-16", .to = "2026-12-02"})),
            "to: more than 16 days after from");
}

TEST(Format, LeftAndIn) {
  EXPECT_EQ(format_left(0s), "none");
  EXPECT_EQ(format_left(26h + 5min), "1d2h");
  EXPECT_EQ(format_left(5h + 10min), "5h10m");
  EXPECT_EQ(format_left(5min), "5m") << "the same style as format_in";
  EXPECT_EQ(format_left(30s), "<1m");
  EXPECT_EQ(format_in(30s), "<1m");
  EXPECT_EQ(format_in(12min), "12m");
}

}  // namespace
}  // namespace gio::report
