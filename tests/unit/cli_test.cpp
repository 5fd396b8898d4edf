// The CLI's own pieces: `fetch` (cli/fetch_command) against the test HTTP server.

#include <gtest/gtest.h>
#include <zlib.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "cli/archive_binding.hpp"
#include "cli/byte_text.hpp"
#include "cli/fetch_command.hpp"
#include "cli/http_settings.hpp"
#include "cli/status_page.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace gio::download {
namespace {

namespace fs = std::filesystem;
using test::gzip_member;
using test::read_file;
using test::sha256sum;
using namespace std::chrono_literals;
using archive::VerifyMode;
using test::reply;
using test::TestServer;

std::string csv_rows(std::size_t rows) {
  std::string out;
  for (std::size_t i = 0; i < rows; ++i) {
    out += std::to_string(i) + ",u" + std::to_string(i * 7919 % 1000003) + ",page_view\n";
  }
  return out;
}

TEST(Fetch, RunFetchPrintsOneLinePerUrlAndPublishesVerifiedFiles) {
  const gio::testing::TempDir dir;
  http::Settings settings;
  settings.timeout = 5s;
  const std::string good = gzip_member(csv_rows(5000));
  TestServer server{[&](const std::string& target, const std::string&) {
    return target.starts_with("/good.csv.gz") ? reply(200, good) : reply(404, "");
  }};
  const fs::path out = dir.path() / "out";

  ::testing::internal::CaptureStdout();
  const int all_good = run_fetch({server.url("/good.csv.gz?sign=SECRET")}, out, VerifyMode::gzip,
                                 archive::best_inflater(), 4, false, settings);
  const std::string printed = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(all_good, 0);
  EXPECT_EQ(printed, "OK good.csv.gz " + std::to_string(good.size()) + " " +
                         sha256sum(good, dir.path()) + "\n");
  EXPECT_TRUE(read_file(out / "good.csv.gz") == good);
  EXPECT_FALSE(fs::exists(out / ".staging"));

  ::testing::internal::CaptureStdout();
  const int mixed =
      run_fetch({server.url("/missing.csv.gz?sign=SECRET"), server.url("/good.csv.gz?again")}, out,
                VerifyMode::gzip, archive::best_inflater(), 1, false, settings);
  const std::string lines = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(mixed, 1);
  EXPECT_NE(lines.find("FAILED " + server.url("/missing.csv.gz") + ": link_rejected: "),
            std::string::npos)
      << lines;
  EXPECT_NE(lines.find("OK good.csv.gz "), std::string::npos) << lines;
  EXPECT_EQ(lines.find("SECRET"), std::string::npos);
}

}  // namespace
}  // namespace gio::download

namespace gio::cli {
namespace {

// http.proxy and http.no_proxy win over the environment's variables, each on its own.
TEST(HttpSettings, TheConfigWinsOverTheEnvironment) {
  const std::map<std::string, std::string> env{{"https_proxy", "http://env-https:1"},
                                               {"http_proxy", "http://env-http:2"},
                                               {"no_proxy", "env.example"}};
  const auto lookup = [&env](const char* name) -> const char* {
    const auto found = env.find(name);
    return found == env.end() ? nullptr : found->second.c_str();
  };
  config::HttpSettings http;
  http::ProxySettings from_env = proxy_settings(http, lookup);
  EXPECT_EQ(from_env.https, "http://env-https:1");
  EXPECT_EQ(from_env.https_source, "https_proxy");
  EXPECT_EQ(from_env.http, "http://env-http:2");
  EXPECT_EQ(from_env.no_proxy, "env.example");

  http.proxy = config::Secret{"http://config:3"};
  http::ProxySettings from_config = proxy_settings(http, lookup);
  EXPECT_EQ(from_config.https, "http://config:3");
  EXPECT_EQ(from_config.http, "http://config:3");
  EXPECT_EQ(from_config.https_source, "http.proxy");
  EXPECT_EQ(from_config.http_source, "http.proxy");
  EXPECT_EQ(from_config.no_proxy, "env.example");  // not replaced: http.no_proxy is unset

  http.proxy = config::Secret{""};  // "" is no proxy, whatever the environment says
  http.no_proxy = "";
  http::ProxySettings direct = proxy_settings(http, lookup);
  EXPECT_EQ(direct.https, "");
  EXPECT_EQ(direct.http, "");
  EXPECT_EQ(direct.no_proxy, "");
}

// --- which archive a database describes (issue 14, items 6 and 10) ---------------------

TEST(ArchiveMismatch, SaysWhyNamingBothPaths) {
  const std::string id = "0123456789abcdef0123456789abcdef";
  const std::string other = "fedcba9876543210fedcba9876543210";
  const RecordedArchive recorded{id, "/data/archive"};
  const std::filesystem::path db = "/data/state.db";
  // Nothing recorded and no identity: a new installation (or one from before identities).
  EXPECT_EQ(archive_mismatch({}, std::nullopt, "/data/archive", db), "");
  EXPECT_EQ(archive_mismatch(recorded, id, "/data/archive", db), "");
  struct Case {
    RecordedArchive recorded;
    std::optional<std::string> on_disk;
    std::filesystem::path dir;
    std::string says;
  };
  const Case cases[] = {
      {{}, id, "/data/archive", "does not record"},                   // a new or replaced database
      {recorded, std::nullopt, "/data/new", "no identity file"},      // archive_dir changed
      {recorded, std::nullopt, "/data/archive", "no identity file"},  // emptied archive
      {recorded, other, "/data/other", "another archive"},            // another archive
      {recorded, id, "/data/moved", "a move or a copy"},              // moved or copied
  };
  for (const Case& c : cases) {
    const std::string why = archive_mismatch(c.recorded, c.on_disk, c.dir, db);
    EXPECT_NE(why.find(c.says), std::string::npos) << why;
    EXPECT_NE(why.find(c.dir.string()), std::string::npos) << why;
    EXPECT_NE(why.find("adopt-archive"), std::string::npos) << why;
    if (c.recorded.path) {
      EXPECT_NE(why.find(*c.recorded.path), std::string::npos) << why;
    }
  }
}

// Bytes, rates and times as status, fetch and verify write them (issue 17).
TEST(ByteText, BytesRatesAndClockTimes) {
  EXPECT_EQ(human_bytes(512), "512 bytes");
  EXPECT_EQ(human_bytes(std::uint64_t{412} << 20), "412 MiB");
  EXPECT_EQ(human_bytes(std::uint64_t{1} << 30), "1.0 GiB");
  EXPECT_EQ(bytes_of(std::uint64_t{412} << 20, std::uint64_t{1} << 30), "412 MiB of 1.0 GiB");
  EXPECT_EQ(bytes_of(std::uint64_t{412} << 20, std::nullopt), "412 MiB");
  EXPECT_EQ(human_rate(3.5 * (1 << 20)), "3 MiB/s");
  EXPECT_EQ(human_rate(-1), "0 bytes/s");
  EXPECT_EQ(clock_text(std::chrono::seconds{245}), "4:05");
  EXPECT_EQ(clock_text(std::chrono::seconds{3723}), "1:02:03");
  EXPECT_EQ(clock_text(std::chrono::seconds{-5}), "0:00");
}

}  // namespace
}  // namespace gio::cli

// The status page's HTML (cli/status_html.cpp): every text from the store is escaped, so
// a last_error quoting markup cannot run on the page; and the attention list stays short.
namespace gio::cli {
namespace {

boost::json::object page_slot(std::string slot, std::string state, std::string error) {
  return {{"slot", std::move(slot)},
          {"state", std::move(state)},
          {"attempts", 2},
          {"api_status", "ERROR"},
          {"last_error", std::move(error)},
          {"files", 0},
          {"bytes", 0},
          {"rows", nullptr},
          {"next_at", nullptr},
          {"lost_at", "2026-11-30T00:00:00Z"},
          {"seconds_left", 90000},
          {"at_risk", true}};
}

TEST(StatusPage, RendersEveryJobEscapedWithAShortAttentionList) {
  boost::json::array attention;
  for (int hour = 0; hour < 10; ++hour) {
    attention.push_back(page_slot("2026-11-22T0" + std::to_string(hour), "failed",
                                  "<script>alert(1)</script> & \"quoted\""));
  }
  boost::json::array cells{page_slot("2026-11-22T00", "failed", "<b>x</b>")};
  const boost::json::object slots{
      {"generated_at", "2026-11-22T10:10:00Z"},
      {"daemon",
       {{"version", "1.2.3"},
        {"started_at", "2026-11-22T10:00:00Z"},
        {"uptime_seconds", 3720},
        {"last_reload", nullptr}}},
      {"jobs",
       {{{"job", "shop<1>"},
         {"kind", "raw"},
         {"granularity", "hour"},
         {"sink", nullptr},
         {"next_ask", {{"at", "2026-11-22T10:40:00Z"}, {"slot", "2026-11-22T17"}}},
         {"counts", {{"done", 0}, {"failed", 10}}},
         {"attention", attention},
         {"days", {{{"date", "2026-11-22"}, {"cells", cells}}}}}}}};
  const std::string page = render_page(
      "<body data-updated=\"@GENERATED_AT@\"><p id=\"daemon\">@DAEMON@</p>@JOBS@", slots);
  EXPECT_EQ(page.find("<script>"), std::string::npos) << page;
  EXPECT_EQ(page.find("<b>x</b>"), std::string::npos) << page;
  EXPECT_NE(page.find("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot;"),
            std::string::npos);
  EXPECT_NE(page.find("<section class=\"job\" data-job=\"shop&lt;1&gt;\">"), std::string::npos);
  EXPECT_NE(page.find("data-updated=\"2026-11-22T10:10:00Z\""), std::string::npos);
  EXPECT_NE(page.find("version 1.2.3 · up 1h2m · last reload none"), std::string::npos) << page;
  EXPECT_NE(page.find("<button type=\"button\" class=\"cell\" data-job=\"shop&lt;1&gt;\" "
                      "data-slot=\"2026-11-22T00\" data-state=\"failed\" data-risk=\"1\""),
            std::string::npos)
      << page;
  // Eight lines, then how many more.
  std::size_t lines = 0;
  for (auto at = page.find("<li data-job"); at != std::string::npos;
       at = page.find("<li data-job", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 8u);
  EXPECT_NE(page.find("and 2 more"), std::string::npos);
}

// The page words states as its legend does, and says plainly which times are Beijing
// (slot names) and which UTC.
TEST(StatusPage, NextAskAndCountsReadPlainly) {
  const boost::json::object slots{
      {"generated_at", "2026-11-22T10:10:00Z"},
      {"daemon",
       {{"version", "1"}, {"started_at", "2026-11-22T10:00:00Z"}, {"uptime_seconds", 60}}},
      {"jobs",
       {{{"job", "shop"},
         {"kind", "raw"},
         {"granularity", "hour"},
         {"sink", nullptr},
         {"next_ask", {{"at", "2026-11-22T10:40:00Z"}, {"slot", "2026-11-22T17"}}},
         {"counts", {{"done", 1}, {"not_ready", 7}}},
         {"attention", boost::json::array{}},
         {"days", boost::json::array{}}}}}};
  const std::string page = render_page("@DAEMON@@JOBS@", slots);
  EXPECT_NE(page.find("7 not ready</li>"), std::string::npos) << page;
  EXPECT_EQ(page.find("not_ready</li>"), std::string::npos) << page;
  EXPECT_NE(page.find("Next ask: slot <b>2026-11-22T17</b> (Beijing), in 30m — <time "
                      "datetime=\"2026-11-22T10:40:00Z\">10:40 UTC</time>"),
            std::string::npos)
      << page;
}

}  // namespace
}  // namespace gio::cli

// The page's answers are cached, but a change the daemon itself writes (a slot turning
// done) shows once kRebuiltAfter has passed, not only when the 2 s period ends.
namespace gio::cli {
namespace {

TEST(StatusPage, TheDaemonsOwnWritesShowBeforeTheCacheExpires) {
  testing::TempDir dir;
  state::StateStore store{dir.path() / "state.db"};
  const Instant now = *parse_utc("2026-12-01T10:00:00Z");  // 18:00 Beijing
  ManualClock clock{now};
  config::Job job;
  job.name = "shop-hourly";
  job.project = "p";
  job.granularity = Granularity::hour;
  job.ready_after = std::chrono::minutes{40};
  job.settings = config::RawJob{};
  config::Config config;
  config.jobs = {job};
  const std::string slot = "2026-12-01T16";
  const state::PlannedSlot planned{slot, Slot::parse(slot, Granularity::hour)->start(), now};
  store.plan(job.name, std::span{&planned, 1}, now);

  StatusPage page{store, clock};
  const ops::Request request{.path = "/api/slots", .query = "job=shop-hourly"};
  const auto body = [&] { return page.answer(request, config)->shared_body; };
  const auto first = body();
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->find("\"state\":\"done\""), std::string::npos) << *first;

  clock.advance(std::chrono::seconds{1});
  EXPECT_EQ(body(), first) << "nothing changed: the cached answer";

  // The daemon's own write, 1 s into the 2 s period: the next answer shows it.
  store.update(job.name, slot, {.state = state::SlotState::done, .next_at = now}, now);
  const auto second = body();
  EXPECT_NE(second->find("\"state\":\"done\""), std::string::npos) << *second;
}

// A client cycling more queries than the cache holds must not make the default answer,
// which every polling page shares, be rendered again; a range older than the vendor's
// retention is refused (it would be built on the daemon's loop); the embedded assets are
// one string shared by every answer.
TEST(StatusPage, CyclingQueriesKeepTheDefaultAnswerAndRangesStayWithinRetention) {
  testing::TempDir dir;
  state::StateStore store{dir.path() / "state.db"};
  ManualClock clock{*parse_utc("2026-12-01T10:00:00Z")};
  config::Job job;
  job.name = "shop-hourly";
  job.project = "p";
  job.granularity = Granularity::hour;
  job.settings = config::RawJob{};
  config::Config config;
  config.jobs = {job};
  StatusPage page{store, clock};
  const auto answer = [&](std::string query) {
    return *page.answer({.path = "/api/slots", .query = std::move(query)}, config);
  };
  const auto shared = answer("").shared_body;
  for (int day = 17; day <= 30; ++day) {
    for (const char* job_query : {"", "job=shop-hourly&"}) {
      EXPECT_EQ(answer(std::string{job_query} + "from=2026-11-" + std::to_string(day)).status,
                200u);
    }
  }
  EXPECT_EQ(answer("").shared_body, shared) << "the default answer was rendered again";

  const ops::Reply old = answer("from=2025-11-01&to=2026-12-01");
  EXPECT_EQ(old.status, 400u);
  EXPECT_NE(old.shared_body->find("from: before 2026-11-16"), std::string::npos)
      << *old.shared_body;
  EXPECT_EQ(answer("from=2026-11-16&to=2026-12-02").status, 400u) << "17 days";
  EXPECT_EQ(answer("from=2026-11-16&to=2026-12-01").status, 200u);

  const ops::Request script{.path = "/page.js", .query = ""};
  EXPECT_EQ(page.answer(script, config)->shared_body, page.answer(script, config)->shared_body);
}

}  // namespace
}  // namespace gio::cli
