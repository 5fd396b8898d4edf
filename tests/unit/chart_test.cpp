#include "chart/chart.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace gio::chart {
namespace {

using namespace std::chrono_literals;

Slot slot(std::string_view name, Granularity granularity) {
  return Slot::parse(name, granularity).value();
}

std::string csv_of(std::string_view body) {
  const auto answer = parse_answer(body);
  EXPECT_TRUE(answer) << answer.error();
  EXPECT_FALSE(answer->doing);
  return answer ? answer->csv : std::string{};
}

TEST(ChartAnswer, DoingIsNotFinished) {
  const auto answer = parse_answer(R"({"id":"随机ID","status":"doing"})");
  ASSERT_TRUE(answer) << answer.error();
  EXPECT_TRUE(answer->doing);
  EXPECT_EQ(answer->id, "随机ID");
  EXPECT_EQ(answer->rows, 0u);
  EXPECT_TRUE(answer->csv.empty());
}

TEST(ChartAnswer, MalformedAnswersAreErrors) {
  EXPECT_FALSE(parse_answer("not json"));
  EXPECT_FALSE(parse_answer("[1,2]"));
  EXPECT_FALSE(parse_answer(R"({"id":"x"})"));
  EXPECT_FALSE(parse_answer(R"({"id":"x","meta":[],"data":{}})"));
  EXPECT_FALSE(parse_answer(R"({"id":"x","meta":{},"data":[]})"));
  EXPECT_FALSE(parse_answer(R"({"id":"x","meta":[{"dimension":true}],"data":[]})"));
  EXPECT_FALSE(parse_answer(R"({"id":"x","meta":[{"name":"a"}],"data":[1]})"));
  const auto failed = parse_answer(R"({"id":"x","status":"failed","errorMsg":"超时"})");
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().find("failed"), std::string::npos) << failed.error();
  EXPECT_NE(failed.error().find("超时"), std::string::npos) << failed.error();
}

// The line chart of seed 000: [segment, timestamp, metric1, metric2].
TEST(ChartCsv, LineChart) {
  const std::string csv = csv_of(R"({
    "id": "YoX28w7R", "name": "日活趋势", "startTime": 1462118400000, "endTime": 1462204799999,
    "interval": 86400000,
    "meta": [{"name": "目标用户", "dimension": true}, {"name": "时间", "dimension": true},
             {"name": "访问用户量", "metric": true}, {"name": "人均时长", "metric": true}],
    "data": [["全部用户", 1462118400000, 27557, 12.50], ["全部用户", 1462204800000, 25409, 0.1]]
  })");
  EXPECT_EQ(csv,
            "目标用户,时间,访问用户量,人均时长\r\n"
            "全部用户,1462118400000,27557,12.50\r\n"
            "全部用户,1462204800000,25409,0.1\r\n");
}

TEST(ChartCsv, BarChart) {
  EXPECT_EQ(
      csv_of(R"({"meta": [{"name":"目标用户","dimension":true},{"name":"城市","dimension":true},
                               {"name":"Metric 1","metric":true}],
                      "data": [["全部用户","北京",3],["全部用户","上海",-1.5e3]]})"),
      "目标用户,城市,Metric 1\r\n全部用户,北京,3\r\n全部用户,上海,-1.5e3\r\n");
}

TEST(ChartCsv, TableWithNullsAndQuoting) {
  EXPECT_EQ(
      csv_of(R"({"meta": [{"name":"目标用户","dimension":true},{"name":"城市, 省","dimension":true},
                         {"name":"浏览器","dimension":true},{"name":"说 \"次数\"","metric":true},
                         {"name":"Metric 2","metric":true}],
                "data": [["新用户","广州, 广东","Chrome",10,null],
                         ["老用户","line\nbreak","CR\rhere",true,18446744073709551615]]})"),
      "目标用户,\"城市, 省\",浏览器,\"说 \"\"次数\"\"\",Metric 2\r\n"
      "新用户,\"广州, 广东\",Chrome,10,\r\n"
      "老用户,\"line\nbreak\",\"CR\rhere\",true,18446744073709551615\r\n");
}

TEST(ChartCsv, BigNumberKeepsItsRowsAndCountsThem) {
  const auto answer = parse_answer(R"({
    "id": "bn", "name": "大数字", "startTime": 1, "endTime": 2, "interval": 86400000,
    "aggregator": {"values": [27557, 25409]},
    "meta": [{"name":"目标用户","dimension":true},{"name":"时间","dimension":true},
             {"name":"Metric 1","metric":true}],
    "data": [["全部用户", 1462118400000, 27557]]})");
  ASSERT_TRUE(answer) << answer.error();
  EXPECT_EQ(answer->rows, 1u);
  EXPECT_EQ(answer->csv, "目标用户,时间,Metric 1\r\n全部用户,1462118400000,27557\r\n");
}

TEST(ChartCsv, ARepeatedKeyNeverShiftsNumbersIntoTheWrongCell) {
  // Boost.JSON keeps the first place of "x" with its last value (5): pairing digits by
  // position would have written 5 into the data cell (found by fuzzing). The cell keeps
  // its value, in Boost.JSON's form.
  EXPECT_EQ(csv_of(R"({"x":"s","meta":[{"name":"a"}],"data":[[1.50]],"x":5})"), "a\r\n1.5E0\r\n");
  EXPECT_EQ(csv_of(R"({"meta":[{"name":"a"}],"data":[[1.50]]})"), "a\r\n1.50\r\n");
}

TEST(ChartCsv, EmptyDataIsAHeaderOnly) {
  EXPECT_EQ(csv_of(R"({"meta":[{"name":"a"},{"name":"b"}],"data":[]})"), "a,b\r\n");
}

TEST(ChartCsv, Fields) {
  EXPECT_EQ(csv_field("plain 中文"), "plain 中文");
  EXPECT_EQ(csv_field(""), "");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("a\r\nb"), "\"a\r\nb\"");
}

TEST(ChartRequest, HourSlotCoversItsBeijingHour) {
  // 2026-11-22T03 Beijing = 2026-11-21T19:00:00Z = 1795287600 s.
  const TimeRange range = time_range(slot("2026-11-22T03", Granularity::hour));
  EXPECT_EQ(range.start_ms, 1795287600000);
  EXPECT_EQ(range.end_ms, 1795287600000 + 3600000 - 1);
}

TEST(ChartRequest, DaySlotCoversItsBeijingDay) {
  // 2026-11-22 Beijing starts 2026-11-21T16:00:00Z.
  const TimeRange range = time_range(slot("2026-11-22", Granularity::day));
  EXPECT_EQ(range.start_ms, 1795276800000);
  EXPECT_EQ(range.end_ms, 1795276800000 + 86400000 - 1);
}

TEST(ChartRequest, PathAndQueryPerResource) {
  config::ChartJob job;
  job.interval = std::chrono::hours{1};
  const Slot day = slot("2026-11-22", Granularity::day);
  EXPECT_EQ(request_path(job, "nxog09md", "YoX28w7R", day),
            "/v3/exporter/projects/nxog09md/charts/YoX28w7R?interval=3600000"
            "&startTime=1795276800000&endTime=1795363199999");

  job.resource = config::ChartResource::funnels;
  job.interval = std::chrono::days{30};
  job.conversion_window = std::chrono::days{7};
  EXPECT_EQ(request_path(job, "nxog09md", "f1", day),
            "/v3/exporter/projects/nxog09md/funnels/f1?interval=2592000000"
            "&startTime=1795276800000&endTime=1795363199999&conversionWindow=7");

  job.resource = config::ChartResource::retentions;
  job.interval = std::chrono::days{7};
  job.range = "30";
  EXPECT_EQ(request_path(job, "nxog09md", "r1", day),
            "/v3/exporter/projects/nxog09md/retentions/r1?interval=604800000"
            "&startTime=1795276800000&endTime=1795363199999&range=30");

  job.resource = config::ChartResource::frequencies;
  EXPECT_EQ(request_path(job, "p", "q", day).substr(0, 38),
            "/v3/exporter/projects/p/frequencies/q?");
}

TEST(UserList, PathHasExpireAndEncodedParameters) {
  config::UserListJob job;
  job.resource = config::ChartResource::segmentations;
  EXPECT_EQ(user_list_path(job, "nxog09md", "seg1", 60min),
            "/v3/exporter/projects/nxog09md/segmentations/seg1/users?expire=60");
  job.resource = config::ChartResource::tags;
  job.parameters = "城 a=1&b~";
  EXPECT_EQ(user_list_path(job, "p", "t_2", 5min),
            "/v3/exporter/projects/p/tags/t_2/users?expire=5"
            "&parameters=%E5%9F%8E%20a%3D1%26b~");
}

TEST(UserList, Statuses) {
  const auto doing = parse_user_list(R"({"status":"doing","downloadLinks":[],"errorMsg":""})");
  ASSERT_TRUE(doing) << doing.error();
  EXPECT_EQ(doing->status, UserListStatus::doing);

  const auto failed = parse_user_list(R"({"status":"failed","errorMsg":"导出失败"})");
  ASSERT_TRUE(failed) << failed.error();
  EXPECT_EQ(failed->status, UserListStatus::failed);
  EXPECT_EQ(failed->error_message, "导出失败");

  const auto done = parse_user_list(
      R"({"status":"done","downloadLinks":["https://s/a.csv?sign=1","https://s/b.csv"],"errorMsg":""})");
  ASSERT_TRUE(done) << done.error();
  EXPECT_EQ(done->status, UserListStatus::done);
  EXPECT_EQ(done->links, (std::vector<std::string>{"https://s/a.csv?sign=1", "https://s/b.csv"}));

  const auto empty = parse_user_list(R"({"status":"done","downloadLinks":[]})");
  ASSERT_TRUE(empty) << empty.error();
  EXPECT_TRUE(empty->links.empty());
}

TEST(UserList, MalformedAnswersAreErrorsWithoutLinks) {
  EXPECT_FALSE(parse_user_list("not json"));
  EXPECT_FALSE(parse_user_list("[]"));
  EXPECT_FALSE(parse_user_list(R"({"downloadLinks":[]})"));
  EXPECT_FALSE(parse_user_list(R"({"status":"FINISHED","downloadLinks":[]})"));
  EXPECT_FALSE(parse_user_list(R"({"status":"done"})"));
  EXPECT_FALSE(parse_user_list(R"({"status":"done","downloadLinks":{"a":[]}})"));
  const auto bad =
      parse_user_list(R"({"status":"done","downloadLinks":["https://s/x?sign=SECRET",3]})");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().find("SECRET"), std::string::npos) << bad.error();
}

TEST(UserList, ConfigResourceParametersAndVerifyDefault) {
  const std::string head =
      "projects:\n  - {name: shop, ai: 2a1b4018cd954ec2bcc69da5138bdb96, project_uid: nxog09md, "
      "auth: {token_env: GIO_TEST_TOKEN}}\n"
      "jobs:\n";
  ::setenv("GIO_TEST_TOKEN", "t", 1);
  auto loaded = config::parse_config(
      head +
          "  - {name: s, project: shop, kind: chart, resource: segmentations, charts: [seg1], "
          "parameters: 'a=1'}\n"
          "  - {name: t, project: shop, kind: chart, resource: tags, charts: [tagA], "
          "verify: gzip}\n",
      "/tmp/c.yaml");
  ASSERT_TRUE(loaded.config) << (loaded.problems.empty() ? "" : loaded.problems[0].to_string());
  ASSERT_TRUE(std::holds_alternative<config::UserListJob>(loaded.config->jobs[0].settings));
  EXPECT_EQ(std::get<config::UserListJob>(loaded.config->jobs[0].settings).resource,
            config::ChartResource::segmentations);
  EXPECT_EQ(std::get<config::UserListJob>(loaded.config->jobs[0].settings).parameters, "a=1");
  EXPECT_EQ(loaded.config->jobs[0].verify, archive::VerifyMode::size);
  ASSERT_TRUE(std::holds_alternative<config::UserListJob>(loaded.config->jobs[1].settings));
  EXPECT_EQ(std::get<config::UserListJob>(loaded.config->jobs[1].settings).resource,
            config::ChartResource::tags);
  EXPECT_EQ(loaded.config->jobs[1].verify, archive::VerifyMode::gzip);

  const auto wrong = config::parse_config(
      head +
          "  - {name: c, project: shop, kind: chart, charts: [c1], parameters: x}\n"
          "  - {name: s, project: shop, kind: chart, resource: tags, charts: [t], interval: 1h}\n",
      "/tmp/c.yaml");
  EXPECT_FALSE(wrong.config);
  EXPECT_EQ(wrong.problems.size(), 2u);
}

}  // namespace
}  // namespace gio::chart
