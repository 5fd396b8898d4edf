#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>

#include "api/rate_limiter.hpp"
#include "api/raw_export.hpp"

namespace gio::api {
namespace {

// The vendor's documented example answer (seed 002).
constexpr std::string_view kSeedAnswer = R"({
    "status": "FINISHED",
    "downloadLinks": {
        "evar": [], "vstr": [], "pvar": [], "action_tag": [], "custom_event": [],
        "page": [], "ads_track_activation": [], "visit": [], "ads_track_click": [], "action": []
    },
    "exportType": "hour", "exportDate": "2018070100", "exportVersion": "v2",
    "requestTime": "2018-07-18 02:37", "errorMsg": ""
})";

TEST(RawExport, ParsesTheSeedExample) {
  const auto answer = parse_raw_export(kSeedAnswer);
  ASSERT_TRUE(answer) << answer.error();
  EXPECT_EQ(answer->status, ExportStatus::finished);
  EXPECT_EQ(answer->links.size(), 10u);
  for (const auto& [type, urls] : answer->links) {
    EXPECT_TRUE(urls.empty()) << type;
  }
  EXPECT_TRUE(answer->links.contains("ads_track_activation"));
}

TEST(RawExport, KeepsLinksAndUnknownTypes) {
  const auto answer = parse_raw_export(R"({"status":"FINISHED","downloadLinks":{
      "visit":["https://gta.example/a.csv.gz?sign=x","https://gta.example/b.csv.gz?sign=y"],
      "brand_new_type":["https://gta.example/c.csv.gz"]}})");
  ASSERT_TRUE(answer) << answer.error();
  ASSERT_EQ(answer->links.at("visit").size(), 2u);
  EXPECT_EQ(answer->links.at("visit")[1], "https://gta.example/b.csv.gz?sign=y");
  EXPECT_EQ(answer->links.at("brand_new_type").size(), 1u);
}

TEST(RawExport, StatusesOtherThanFinishedCarryNoLinks) {
  const auto running = parse_raw_export(R"({"status":"RUNNING","downloadLinks":{}})");
  ASSERT_TRUE(running);
  EXPECT_EQ(running->status, ExportStatus::running);
  const auto missing = parse_raw_export(R"({"status":"NOT_EXISTS"})");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, ExportStatus::not_exists);
  const auto error = parse_raw_export(R"({"status":"ERROR","errorMsg":"导出失败"})");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->status, ExportStatus::error);
  EXPECT_EQ(error->error_message, "导出失败");
  EXPECT_TRUE(error->links.empty());
}

TEST(RawExport, RejectsMalformedAnswers) {
  for (const char* body :
       {"", "not json", "[]", R"({"downloadLinks":{}})", R"({"status":7})", R"({"status":"DONE"})",
        R"({"status":"FINISHED"})", R"({"status":"FINISHED","downloadLinks":[]})",
        R"({"status":"FINISHED","downloadLinks":{"visit":"x"}})",
        R"({"status":"FINISHED","downloadLinks":{"visit":[1]}})"}) {
    const auto answer = parse_raw_export(body);
    EXPECT_FALSE(answer) << body;
    if (!answer) {
      EXPECT_FALSE(answer.error().empty());
    }
  }
}

TEST(RawExport, ErrorsNeverQuoteLinks) {
  const auto answer = parse_raw_export(
      R"({"status":"FINISHED","downloadLinks":{"visit":["https://x/a?sign=SECRET", 5]}})");
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().find("SECRET"), std::string::npos);
}

TEST(RateLimiter, SpacesTurnsByTheRate) {
  boost::asio::io_context io;
  RateLimiter limiter{io.get_executor(), 20.0};  // one turn per 50 ms
  std::vector<std::chrono::steady_clock::time_point> turns;
  auto done = boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        for (int i = 0; i < 5; ++i) {
          co_await limiter.acquire();
          turns.push_back(std::chrono::steady_clock::now());
        }
      },
      boost::asio::use_future);
  io.run();
  done.get();
  ASSERT_EQ(turns.size(), 5u);
  // Lower bounds only: the limiter must never let calls through faster than the rate.
  for (std::size_t i = 1; i < turns.size(); ++i) {
    EXPECT_GE(turns[i] - turns[0],
              std::chrono::milliseconds{50} * i - std::chrono::milliseconds{1});
  }
}

TEST(RateLimiter, PauseHoldsBackTheNextTurn) {
  boost::asio::io_context io;
  RateLimiter limiter{io.get_executor(), 100.0};
  const auto start = std::chrono::steady_clock::now();
  limiter.pause_for(std::chrono::milliseconds{120});
  std::chrono::steady_clock::time_point turn;
  auto done = boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        co_await limiter.acquire();
        turn = std::chrono::steady_clock::now();
      },
      boost::asio::use_future);
  io.run();
  done.get();
  EXPECT_GE(turn - start, std::chrono::milliseconds{119});
}

}  // namespace
}  // namespace gio::api
