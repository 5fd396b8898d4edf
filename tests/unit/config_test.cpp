#include "config/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "config/keys.hpp"

namespace gio::config {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kTokenVar = "GIO_CONFIG_TEST_TOKEN";
constexpr const char* kToken = "tok-3f9a-secret-value";
const fs::path kPath = "/srv/gio/conf/gio.yaml";

// Lines 1-9; tests append lines from 10 on (job keys indented by 4, top-level keys at 0).
constexpr std::string_view kMinimal =
    "projects:\n"
    "  - name: shop\n"
    "    ai: 2a1b4018cd954ec2bcc69da5138bdb96\n"
    "    project_uid: nxog09md\n"
    "    auth:\n"
    "      token_env: GIO_CONFIG_TEST_TOKEN\n"
    "jobs:\n"
    "  - name: shop-hourly\n"
    "    project: shop\n";

std::string with(std::string_view extra) {
  return std::string(kMinimal) + std::string(extra);
}

std::string all_problems(const LoadResult& result) {
  std::string out;
  for (const Problem& problem : result.problems) {
    out += "  " + problem.to_string() + "\n";
  }
  return out;
}

// Exactly one problem, at line:column, whose message contains `fragment`.
::testing::AssertionResult only_problem(const LoadResult& result, int line, int column,
                                        std::string_view fragment) {
  if (result.problems.size() != 1) {
    return ::testing::AssertionFailure()
           << "expected exactly one problem, got " << result.problems.size() << ":\n"
           << all_problems(result);
  }
  const Problem& problem = result.problems.front();
  if (problem.line != line || problem.column != column ||
      problem.message.find(fragment) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "expected " << line << ":" << column << " with \"" << fragment << "\", got:\n"
           << all_problems(result);
  }
  if (result.config) {
    return ::testing::AssertionFailure() << "a config was returned despite the problem";
  }
  return ::testing::AssertionSuccess();
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv(kTokenVar, kToken, 1);
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("gio-config-test-" + std::to_string(::getpid()) + "-" + test->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    ::unsetenv(kTokenVar);
    fs::remove_all(dir_);
  }

  fs::path write(const std::string& name, std::string_view text) {
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  fs::path dir_;
};

TEST_F(ConfigTest, FullConfigRoundTrip) {
  const std::string yaml = R"(state_db: /data/gio/state.db
archive_dir: /data/gio/archive
http:
  api_base: http://127.0.0.1:8080/prefix/
  timeout: 90s
  ca_file: /etc/ssl/extra.pem
limits:
  api_requests_per_second: 0.5
  parallel_downloads: 8
  max_part_size: 256MiB
metrics:
  listen: "[::1]:9000"
log:
  level: debug
projects:
  - name: shop
    ai: 2a1b4018cd954ec2bcc69da5138bdb96
    project_uid: nxog09md
    auth:
      token_env: GIO_CONFIG_TEST_TOKEN
  - name: blog.v2
    ai: ffff0000
    project_uid: abc
    auth:
      token_env: GIO_CONFIG_TEST_TOKEN
jobs:
  - name: shop-hourly
    project: shop
    kind: raw
    granularity: hour
    data_types: all
    ready_after: 50m
    poll_every: 2m
    give_up_after: 12h
    not_exists_grace: 30m
    backfill: 3d
    link_expire: 90m
    verify: size
  - name: blog_daily
    project: blog.v2
    granularity: day
    data_types: [visit, custom_event]
    ready_after: 1h30m
    poll_every: 1s
    give_up_after: 1d
    backfill: 15d
    link_expire: 7d
)";
  const LoadResult result = parse_config(yaml, kPath);
  ASSERT_TRUE(result.problems.empty()) << all_problems(result);
  ASSERT_TRUE(result.config);
  const Config& config = *result.config;
  EXPECT_EQ(config.source, kPath);
  EXPECT_EQ(config.state_db, "/data/gio/state.db");
  EXPECT_EQ(config.archive_dir, "/data/gio/archive");
  EXPECT_EQ(config.http.api_base, "http://127.0.0.1:8080/prefix");  // trailing slash dropped
  EXPECT_EQ(config.http.timeout, 90s);
  EXPECT_EQ(config.http.ca_file, "/etc/ssl/extra.pem");
  EXPECT_DOUBLE_EQ(config.limits.api_requests_per_second, 0.5);
  EXPECT_EQ(config.limits.parallel_downloads, 8);
  EXPECT_EQ(config.limits.max_part_size, 256u << 20);
  EXPECT_EQ(config.metrics.listen, "[::1]:9000");
  EXPECT_EQ(config.log.level, "debug");

  ASSERT_EQ(config.projects.size(), 2u);
  EXPECT_EQ(config.projects[0].name, "shop");
  EXPECT_EQ(config.projects[0].ai, "2a1b4018cd954ec2bcc69da5138bdb96");
  EXPECT_EQ(config.projects[0].project_uid, "nxog09md");
  EXPECT_TRUE(config.projects[0].auth.uses_token());
  EXPECT_EQ(config.projects[0].auth.token.reveal(), kToken);
  EXPECT_EQ(config.projects[1].name, "blog.v2");

  ASSERT_EQ(config.jobs.size(), 2u);
  const Job& hourly = config.jobs[0];
  EXPECT_EQ(hourly.name, "shop-hourly");
  EXPECT_EQ(hourly.project, "shop");
  ASSERT_TRUE(std::holds_alternative<RawJob>(hourly.settings));
  EXPECT_EQ(kind_name(hourly), "raw");
  EXPECT_EQ(hourly.granularity, Granularity::hour);
  EXPECT_TRUE(std::get<RawJob>(hourly.settings).data_types.empty());
  EXPECT_EQ(hourly.ready_after, 50min);
  EXPECT_EQ(hourly.poll_every, 2min);
  EXPECT_EQ(hourly.give_up_after, 12h);
  EXPECT_EQ(hourly.not_exists_grace, 30min);
  EXPECT_EQ(hourly.backfill, 72h);
  EXPECT_EQ(hourly.link_expire, 90min);
  EXPECT_EQ(hourly.verify, archive::VerifyMode::size);

  const Job& daily = config.jobs[1];
  EXPECT_EQ(daily.granularity, Granularity::day);
  ASSERT_TRUE(std::holds_alternative<RawJob>(daily.settings));
  EXPECT_EQ(std::get<RawJob>(daily.settings).data_types,
            (std::vector<std::string>{"visit", "custom_event"}));
  EXPECT_EQ(daily.ready_after, 90min);
  EXPECT_EQ(daily.poll_every, 1s);
  EXPECT_EQ(daily.give_up_after, 24h);
  EXPECT_EQ(daily.backfill, std::chrono::days{15});
  EXPECT_EQ(daily.link_expire, std::chrono::days{7});
  EXPECT_EQ(daily.verify, archive::VerifyMode::gzip);

  EXPECT_EQ(&config.project_of(daily), &config.projects[1]);
  EXPECT_EQ(config.find_job("blog_daily"), &daily);
  EXPECT_EQ(config.find_job("nope"), nullptr);
}

TEST_F(ConfigTest, DefaultsForEverythingLeftOut) {
  const LoadResult result =
      parse_config(with("  - name: shop-daily\n    project: shop\n    granularity: day\n"), kPath);
  ASSERT_TRUE(result.config) << all_problems(result);
  const Config& config = *result.config;
  const Config defaults;
  EXPECT_EQ(config.state_db, "/var/lib/gio-exporter/state.db");
  EXPECT_EQ(config.archive_dir, "/var/lib/gio-exporter/archive");
  EXPECT_EQ(config.http.api_base, "https://www.growingio.com");
  EXPECT_EQ(config.http.timeout, 60s);
  EXPECT_TRUE(config.http.ca_file.empty());
  EXPECT_DOUBLE_EQ(config.limits.api_requests_per_second, 2);
  EXPECT_EQ(config.limits.parallel_downloads, 4);
  EXPECT_EQ(config.limits.max_part_size, 1u << 30);  // well above the vendor's 64 MiB parts
  EXPECT_EQ(config.metrics.listen, "127.0.0.1:9464");
  EXPECT_EQ(config.log.level, "info");

  ASSERT_EQ(config.jobs.size(), 2u);
  const Job& hourly = config.jobs[0];
  ASSERT_TRUE(std::holds_alternative<RawJob>(hourly.settings));
  EXPECT_EQ(kind_name(hourly), "raw");
  EXPECT_EQ(hourly.granularity, Granularity::hour);
  EXPECT_TRUE(std::get<RawJob>(hourly.settings).data_types.empty());
  EXPECT_EQ(hourly.ready_after, 40min);
  EXPECT_EQ(hourly.poll_every, 5min);
  EXPECT_EQ(hourly.give_up_after, 24h);
  EXPECT_EQ(hourly.not_exists_grace, 2h);
  EXPECT_EQ(hourly.backfill, std::chrono::days{15});
  EXPECT_EQ(hourly.link_expire, 60min);
  EXPECT_EQ(hourly.verify, archive::VerifyMode::gzip);
  EXPECT_EQ(config.jobs[1].ready_after, 6h);  // a day's export takes hours
}

TEST_F(ConfigTest, EmptySectionsAndEmptyOptionalValuesMeanDefaultsOrOff) {
  const LoadResult result =
      parse_config(with("http:\nlimits:\nlog:\nmetrics:\n  listen: \"\"\n"), kPath);
  ASSERT_TRUE(result.config) << all_problems(result);
  EXPECT_EQ(result.config->metrics.listen, "");
  EXPECT_EQ(result.config->http.timeout, 60s);
}

TEST_F(ConfigTest, LogLevelWarningIsWarn) {
  // The log lines print "warning"; the config takes that spelling as well as "warn".
  for (const char* level : {"warning", "warn"}) {
    const LoadResult result =
        parse_config(with(std::string{"log: {level: "} + level + "}\n"), kPath);
    ASSERT_TRUE(result.config) << level << ":\n" << all_problems(result);
    EXPECT_EQ(result.config->log.level, "warn");
  }
}

TEST_F(ConfigTest, UnknownKeysAtEveryLevel) {
  EXPECT_TRUE(only_problem(parse_config(with("stat_db: /x\n"), kPath), 10, 1,
                           "unknown key 'stat_db' in the config file"));
  EXPECT_TRUE(only_problem(parse_config(with("    pollevery: 5m\n"), kPath), 10, 5,
                           "unknown key 'pollevery' in a job"));
  EXPECT_TRUE(only_problem(parse_config(with("http:\n  timeuot: 5s\n"), kPath), 11, 3,
                           "unknown key 'timeuot' in http"));
  const std::string yaml =
      "projects:\n"
      "  - name: shop\n"
      "    ai: abc\n"
      "    project_uid: def\n"
      "    auth:\n"
      "      token_env: GIO_CONFIG_TEST_TOKEN\n"
      "      tokn_file: /x\n"
      "jobs:\n"
      "  - name: shop-hourly\n"
      "    project: shop\n";
  EXPECT_TRUE(only_problem(parse_config(yaml, kPath), 7, 7, "unknown key 'tokn_file' in auth"));
}

TEST_F(ConfigTest, DuplicateKeyIsAProblemAtTheSecondOne) {
  EXPECT_TRUE(only_problem(parse_config(with("    project: other\n"), kPath), 10, 5,
                           "duplicate key 'project' (first at line 9)"));
}

TEST_F(ConfigTest, WrongTypes) {
  EXPECT_TRUE(only_problem(parse_config(with("http: [a, b]\n"), kPath), 10, 7,
                           "'http' must be a map of settings, not a list"));
  EXPECT_TRUE(only_problem(parse_config(with("state_db: {a: b}\n"), kPath), 10, 11,
                           "'state_db' must be a single value, not a map"));
  EXPECT_TRUE(only_problem(parse_config(with("    granularity: [hour]\n"), kPath), 10, 18,
                           "'granularity' must be a single value, not a list"));
  EXPECT_TRUE(only_problem(parse_config(with("limits:\n  parallel_downloads: four\n"), kPath), 11,
                           23, "'parallel_downloads' must be a whole number"));
  EXPECT_TRUE(only_problem(parse_config(with("limits:\n  api_requests_per_second: fast\n"), kPath),
                           11, 28, "must be a number"));
  EXPECT_TRUE(
      only_problem(parse_config(with("  - just a string\n"), kPath), 10, 5, "a job must be a map"));
  // An empty value is shown at its key (yaml-cpp would place it on the next line).
  EXPECT_TRUE(only_problem(parse_config(with("    poll_every:\n"), kPath), 10, 5, "needs a value"));
}

TEST_F(ConfigTest, MalformedDuration) {
  EXPECT_TRUE(only_problem(parse_config(with("    poll_every: 5 minutes\n"), kPath), 10, 17,
                           "'poll_every' is not a duration: '5 minutes'"));
  EXPECT_TRUE(
      only_problem(parse_config(with("    backfill: -1d\n"), kPath), 10, 15, "is not a duration"));
}

TEST_F(ConfigTest, UnknownProjectInAJob) {
  EXPECT_TRUE(only_problem(parse_config(with("  - name: other\n    project: shoop\n"), kPath), 11,
                           14, "unknown project 'shoop'"));
}

TEST_F(ConfigTest, DuplicateProjectAndJobNames) {
  EXPECT_TRUE(only_problem(parse_config(with("  - name: shop-hourly\n    project: shop\n"), kPath),
                           10, 11, "duplicate job name 'shop-hourly'"));
  const std::string yaml =
      "projects:\n"
      "  - name: shop\n"
      "    ai: abc\n"
      "    project_uid: def\n"
      "    auth: {token_env: GIO_CONFIG_TEST_TOKEN}\n"
      "  - name: shop\n"
      "    ai: abd\n"
      "    project_uid: deg\n"
      "    auth: {token_env: GIO_CONFIG_TEST_TOKEN}\n"
      "jobs:\n"
      "  - {name: j, project: shop}\n";
  EXPECT_TRUE(only_problem(parse_config(yaml, kPath), 6, 11, "duplicate project name 'shop'"));
}

TEST_F(ConfigTest, UnknownEnumValues) {
  EXPECT_TRUE(only_problem(parse_config(with("    kind: bulk\n"), kPath), 10, 11,
                           "unknown kind 'bulk' (one of: raw, chart)"));
  EXPECT_TRUE(only_problem(parse_config(with("    granularity: minute\n"), kPath), 10, 18,
                           "unknown granularity 'minute' (one of: hour, day)"));
  EXPECT_TRUE(only_problem(parse_config(with("    verify: sha1\n"), kPath), 10, 13,
                           "unknown verify 'sha1' (one of: gzip, size)"));
  EXPECT_TRUE(only_problem(parse_config(with("log:\n  level: verbose\n"), kPath), 11, 10,
                           "unknown log level 'verbose'"));
}

struct Impossible {
  std::string extra;  // appended at line 10
  int line, column;
  std::string fragment;
};

TEST_F(ConfigTest, ImpossibleValues) {
  const Impossible cases[] = {
      {"http:\n  timeout: 0s\n", 11, 12, "'timeout' must be between 1s and 1h, not 0s"},
      {"http:\n  timeout: 2h\n", 11, 12, "between 1s and 1h"},
      {"http:\n  api_base: ftp://host\n", 11, 13, "must be an http:// or https:// URL"},
      {"http:\n  api_base: https://\n", 11, 13, "must be an http:// or https:// URL"},
      {"limits:\n  parallel_downloads: 0\n", 11, 23, "between 1 and 64, not 0"},
      {"limits:\n  parallel_downloads: 65\n", 11, 23, "between 1 and 64"},
      {"limits:\n  api_requests_per_second: 0\n", 11, 28, "more than 0 and at most 100"},
      {"limits:\n  api_requests_per_second: 101\n", 11, 28, "more than 0 and at most 100"},
      {"limits:\n  api_requests_per_second: .nan\n", 11, 28, "must be a number"},
      {"limits:\n  max_part_size: 512KiB\n", 11, 18,
       "'max_part_size' must be between 1MiB and 1TiB, not 512KiB"},
      {"limits:\n  max_part_size: 2TiB\n", 11, 18, "between 1MiB and 1TiB"},
      {"limits:\n  max_part_size: lots\n", 11, 18,
       "'max_part_size' must be a size such as 1GiB, 512MiB or 1048576 (bytes), not 'lots'"},
      {"limits:\n  max_part_size: 1.5GiB\n", 11, 18, "must be a size such as 1GiB"},
      {"metrics:\n  listen: localhost\n", 11, 11, "'listen' must be host:port"},
      {"metrics:\n  listen: \"::1:80\"\n", 11, 11, "'listen' must be host:port"},
      {"metrics:\n  listen: 127.0.0.1:70000\n", 11, 11, "'listen' must be host:port"},
      {"state_db: \"\"\n", 10, 11, "'state_db' must not be empty"},
      {"    poll_every: 0s\n", 10, 17, "'poll_every' must be between 1s and 1d"},
      {"    poll_every: 25h\n", 10, 17, "'poll_every' must be between 1s and 1d"},
      {"    poll_every: 2h\n    give_up_after: 1h\n", 11, 20,
       "'give_up_after' (1h) must be at least 'poll_every' (2h)"},
      {"    give_up_after: 0s\n", 10, 20, "'give_up_after' must be between 1s and 15d, not 0s"},
      {"    give_up_after: 16d\n", 10, 20, "'give_up_after' must be between 1s and 15d, not 16d"},
      {"    backfill: 16d\n", 10, 15, "the vendor keeps 15 days"},
      {"    backfill: 30m\n", 10, 15, "'backfill' must be between 1h and 15d"},
      {"    ready_after: 49h\n", 10, 18, "'ready_after' must be between 0s and 2d"},
      {"    not_exists_grace: 3d\n", 10, 23, "'not_exists_grace' must be between 0s and 2d"},
      {"    link_expire: 30s\n", 10, 18, "between 1m and 7d"},
      {"    link_expire: 7d1m\n", 10, 18, "between 1m and 7d"},
      {"    link_expire: 90s\n", 10, 18, "whole minutes"},
      {"    data_types: some\n", 10, 17, "'data_types' must be all or a non-empty list"},
      {"    data_types: []\n", 10, 17, "'data_types' must be all or a non-empty list"},
      {"    data_types: [visit, clicks]\n", 10, 25, "unknown data type 'clicks'"},
      {"    data_types: [visit, page, visit]\n", 10, 31, "data type 'visit' is listed twice"},
      {"    charts: [abc]\n", 10, 5, "'charts' is only for chart jobs"},
      {"    interval: 1d\n", 10, 5, "'interval' is only for chart jobs"},
      {"  - name: ../etc\n    project: shop\n", 10, 11, "job name '../etc' must be 1 to 100"},
      {"  - name: " + std::string(101, 'a') + "\n    project: shop\n", 10, 11, "must be 1 to 100"},
  };
  for (const Impossible& c : cases) {
    EXPECT_TRUE(only_problem(parse_config(with(c.extra), kPath), c.line, c.column, c.fragment))
        << c.extra;
  }
  // 100 characters is still fine.
  EXPECT_TRUE(
      parse_config(with("  - name: " + std::string(100, 'a') + "\n    project: shop\n"), kPath)
          .config);
}

TEST_F(ConfigTest, MaxPartSizeTakesBinaryAndDecimalUnits) {
  const std::pair<std::string, std::uint64_t> cases[] = {
      {"1GiB", 1ull << 30},      {"64MiB", 64ull << 20},     {"1TiB", 1ull << 40},
      {"1048576", 1ull << 20},   {"2000KiB", 2000ull << 10}, {"100MB", 100'000'000ull},
      {"5GB", 5'000'000'000ull}, {"3000000B", 3'000'000ull}};
  for (const auto& [text, bytes] : cases) {
    const LoadResult result = parse_config(with("limits:\n  max_part_size: " + text + "\n"), kPath);
    ASSERT_TRUE(result.config) << text << ": " << all_problems(result);
    EXPECT_EQ(result.config->limits.max_part_size, bytes) << text;
  }
}

TEST_F(ConfigTest, ProjectIdentifiersAreLettersAndDigits) {
  const std::string yaml =
      "projects:\n"
      "  - name: shop\n"
      "    ai: 2a1b-4018\n"
      "    project_uid: \"\"\n"
      "    auth: {token_env: GIO_CONFIG_TEST_TOKEN}\n"
      "jobs:\n"
      "  - {name: j, project: shop}\n";
  const LoadResult result = parse_config(yaml, kPath);
  ASSERT_EQ(result.problems.size(), 2u) << all_problems(result);
  EXPECT_EQ(result.problems[0].to_string(),
            kPath.string() + ":3:9: 'ai' must be letters and digits only, not '2a1b-4018'");
  EXPECT_EQ(result.problems[1].to_string(),
            kPath.string() + ":4:18: 'project_uid' must not be empty");
}

TEST_F(ConfigTest, ApiBaseWithAQueryIsRejectedWithoutEchoingIt) {
  const LoadResult result =
      parse_config(with("http:\n  api_base: https://h.example/?sig=hush123\n"), kPath);
  ASSERT_TRUE(only_problem(result, 11, 13, "without a query"));
  EXPECT_EQ(result.problems[0].message.find("hush123"), std::string::npos);
}

TEST_F(ConfigTest, AllowPrivateLinks) {
  const LoadResult unset = parse_config(with(""), kPath);
  ASSERT_TRUE(unset.config) << all_problems(unset);
  EXPECT_FALSE(unset.config->http.allow_private_links);
  const LoadResult set = parse_config(with("http:\n  allow_private_links: true\n"), kPath);
  ASSERT_TRUE(set.config) << all_problems(set);
  EXPECT_TRUE(set.config->http.allow_private_links);
  const LoadResult bad = parse_config(with("http:\n  allow_private_links: maybe\n"), kPath);
  ASSERT_TRUE(only_problem(bad, 11, 24, "'allow_private_links' must be true or false"))
      << all_problems(bad);
}

TEST_F(ConfigTest, ProxyKeys) {
  const LoadResult unset = parse_config(with(""), kPath);
  ASSERT_TRUE(unset.config) << all_problems(unset);
  EXPECT_FALSE(unset.config->http.proxy);  // the environment decides
  EXPECT_FALSE(unset.config->http.no_proxy);

  const LoadResult set = parse_config(
      with("http:\n  proxy: http://alice:s3cret@proxy.corp:3128\n  no_proxy: localhost,.corp\n"),
      kPath);
  ASSERT_TRUE(set.config) << all_problems(set);
  ASSERT_TRUE(set.config->http.proxy);
  EXPECT_EQ(set.config->http.proxy->reveal(), "http://alice:s3cret@proxy.corp:3128");
  EXPECT_EQ(set.config->http.no_proxy, "localhost,.corp");

  for (const char* good : {"proxy.corp:3128", "HTTP://[::1]:8080/", "http://proxy.corp", "\"\""}) {
    const LoadResult result =
        parse_config(with(std::string{"http:\n  proxy: "} + good + "\n"), kPath);
    EXPECT_TRUE(result.config) << good << ": " << all_problems(result);
  }
  const LoadResult direct = parse_config(with("http:\n  proxy: \"\"\n"), kPath);
  ASSERT_TRUE(direct.config && direct.config->http.proxy);
  EXPECT_EQ(direct.config->http.proxy->reveal(), "");  // no proxy, whatever the environment says

  // Refused without echoing the value, which may hold a password.
  for (const char* bad : {"https://u:hush123@proxy.corp:3128", "socks5://u:hush123@proxy.corp",
                          "http://u:hush123@proxy.corp:0", "http://u:hush123@proxy.corp:3128/path",
                          "http://u:hush123@proxy.corp:3128?x=1", "http://u:hush123@:3128"}) {
    const LoadResult result =
        parse_config(with(std::string{"http:\n  proxy: \""} + bad + "\"\n"), kPath);
    ASSERT_TRUE(only_problem(result, 11, 10, "'proxy' must be an http:// URL")) << bad;
    EXPECT_EQ(result.problems[0].message.find("hush123"), std::string::npos) << bad;
  }
}

TEST_F(ConfigTest, ChartJobsAreValidatedInFull) {
  const LoadResult valid =
      parse_config(with("  - name: charts\n    project: shop\n    kind: chart\n"
                        "    charts: [YoX28w7R, big_1]\n    interval: 7d\n"),
                   kPath);
  ASSERT_TRUE(valid.config) << all_problems(valid);
  ASSERT_TRUE(std::holds_alternative<ChartJob>(valid.config->jobs.back().settings));
  EXPECT_EQ(kind_name(valid.config->jobs.back()), "chart");
  const ChartJob& chart = std::get<ChartJob>(valid.config->jobs.back().settings);
  EXPECT_EQ(chart.charts, (std::vector<std::string>{"YoX28w7R", "big_1"}));
  EXPECT_EQ(chart.interval, std::chrono::days{7});
  EXPECT_EQ(chart.resource, ChartResource::charts);
  EXPECT_FALSE(chart.conversion_window);
  EXPECT_EQ(chart.range, "");

  const LoadResult result =
      parse_config(with("  - name: charts\n    project: shop\n    kind: chart\n    interval: 2d\n"
                        "    data_types: all\n"),
                   kPath);
  std::vector<std::string> got;
  for (const Problem& problem : result.problems) {
    got.push_back(std::to_string(problem.line) + ":" + std::to_string(problem.column) + " " +
                  problem.message);
  }
  EXPECT_EQ(got, (std::vector<std::string>{
                     "10:5 a chart job needs 'charts', a list of chart ids",
                     "13:15 'interval' must be one of 1h, 1d, 7d, 30d (the chart API's "
                     "intervals), not 2d",
                     "14:5 'data_types' is only for raw jobs; this job is a chart job",
                 }));
  EXPECT_EQ(
      parse_config(with("  - name: charts\n    project: shop\n    kind: chart\n"
                        "    charts: [ok, \"a/b\"]\n"),
                   kPath)
          .problems.back()
          .to_string(),
      kPath.string() + ":13:18: a chart id must be letters, digits, '.', '_' or '-', not 'a/b'");
}

TEST_F(ConfigTest, ChartResourcesAndTheirQueryKeys) {
  const std::string job = "  - name: f\n    project: shop\n    kind: chart\n    charts: [a]\n";
  const LoadResult funnel =
      parse_config(with(job + "    resource: funnels\n    conversion_window: 7d\n"), kPath);
  ASSERT_TRUE(funnel.config) << all_problems(funnel);
  ASSERT_TRUE(std::holds_alternative<ChartJob>(funnel.config->jobs.back().settings));
  EXPECT_EQ(std::get<ChartJob>(funnel.config->jobs.back().settings).resource,
            ChartResource::funnels);
  EXPECT_EQ(std::get<ChartJob>(funnel.config->jobs.back().settings).conversion_window,
            std::chrono::days{7});

  const LoadResult retention =
      parse_config(with(job + "    resource: retentions\n    range: \"30\"\n"), kPath);
  ASSERT_TRUE(retention.config) << all_problems(retention);
  ASSERT_TRUE(std::holds_alternative<ChartJob>(retention.config->jobs.back().settings));
  EXPECT_EQ(std::get<ChartJob>(retention.config->jobs.back().settings).resource,
            ChartResource::retentions);
  EXPECT_EQ(std::get<ChartJob>(retention.config->jobs.back().settings).range, "30");

  EXPECT_TRUE(only_problem(parse_config(with(job + "    resource: users\n"), kPath), 14, 15,
                           "unknown resource 'users' (one of: charts, funnels, retentions, "
                           "frequencies, segmentations, tags)"));
  EXPECT_TRUE(only_problem(parse_config(with(job + "    conversion_window: 7d\n"), kPath), 14, 5,
                           "'conversion_window' is only for resource: funnels"));
  EXPECT_TRUE(only_problem(
      parse_config(with(job + "    resource: funnels\n    conversion_window: 36h\n"), kPath), 15,
      24, "'conversion_window' must be whole days (the API takes days), not 1d12h"));
  EXPECT_TRUE(
      only_problem(parse_config(with(job + "    resource: funnels\n    range: 30\n"), kPath), 15, 5,
                   "'range' is only for resource: retentions"));
  EXPECT_TRUE(only_problem(
      parse_config(with(job + "    resource: retentions\n    range: \"a&b\"\n"), kPath), 15, 12,
      "'range' must be 1 to 32 letters, digits, '.', '_', '-' or ',', not 'a&b'"));
  EXPECT_TRUE(only_problem(parse_config(with("    resource: funnels\n"), kPath), 10, 5,
                           "'resource' is only for chart jobs (kind: chart); this job is raw"));
}

TEST_F(ConfigTest, SignedCodeAuthIsRead) {
  ::setenv("GIO_CONFIG_TEST_KEY", "private", 1);
  const std::string yaml =
      "projects:\n"
      "  - name: shop\n"
      "    ai: abc\n"
      "    project_uid: def\n"
      "    auth:\n"
      "      client_id: pubkey\n"
      "      private_key_env: GIO_CONFIG_TEST_KEY\n"
      "jobs:\n"
      "  - {name: j, project: shop}\n";
  const LoadResult loaded = parse_config(yaml, kPath);
  ASSERT_TRUE(loaded.config) << all_problems(loaded);
  const Auth& auth = loaded.config->projects.at(0).auth;
  EXPECT_FALSE(auth.uses_token());
  EXPECT_EQ(auth.client_id, "pubkey");
  EXPECT_EQ(auth.private_key.reveal(), "private");
  ::unsetenv("GIO_CONFIG_TEST_KEY");
  const LoadResult unset = parse_config(yaml, kPath);
  EXPECT_TRUE(only_problem(
      unset, 7, 24, "the environment variable GIO_CONFIG_TEST_KEY (the private key) is not set"));
}

TEST_F(ConfigTest, AuthNeedsExactlyOneSource) {
  write("shop.token", kToken);
  auto project_with_auth = [](std::string_view auth) {
    return "projects:\n"
           "  - name: shop\n"
           "    ai: abc\n"
           "    project_uid: def\n"
           "    auth:\n" +
           std::string(auth) +
           "jobs:\n"
           "  - {name: j, project: shop}\n";
  };
  EXPECT_TRUE(only_problem(parse_config(project_with_auth("      token_env: GIO_CONFIG_TEST_TOKEN\n"
                                                          "      token_file: shop.token\n"),
                                        dir_ / "gio.yaml"),
                           6, 7,
                           "use one of token_file, token_env, token_credential, not several"));
  EXPECT_TRUE(only_problem(parse_config(project_with_auth("      {}\n"), kPath), 6, 7,
                           "'auth' needs token_file or token_env"));
  const LoadResult missing = parse_config(project_with_auth(""), kPath);
  EXPECT_TRUE(only_problem(missing, 5, 5, "'auth' must be a map")) << all_problems(missing);
}

TEST_F(ConfigTest, TokenFromASystemdCredential) {
  const auto yaml = [](std::string_view name) {
    return "projects:\n"
           "  - name: shop\n"
           "    ai: abc\n"
           "    project_uid: def\n"
           "    auth: {token_credential: " +
           std::string(name) +
           "}\n"
           "jobs:\n"
           "  - {name: j, project: shop}\n";
  };
  ::unsetenv("CREDENTIALS_DIRECTORY");
  EXPECT_TRUE(only_problem(parse_config(yaml("gio-token"), kPath), 5, 30,
                           "$CREDENTIALS_DIRECTORY is not set; systemd sets it for a unit with "
                           "LoadCredential=gio-token:/path/to/file"));

  write("gio-token", "  credential-token\n");
  ::setenv("CREDENTIALS_DIRECTORY", dir_.c_str(), 1);
  const LoadResult loaded = parse_config(yaml("gio-token"), kPath);
  ASSERT_TRUE(loaded.config) << all_problems(loaded);
  EXPECT_EQ(loaded.config->projects[0].auth.token.reveal(), "credential-token");
  EXPECT_TRUE(only_problem(parse_config(yaml("../gio-token"), kPath), 5, 30,
                           "a credential name is a file name"));
  const LoadResult missing = parse_config(yaml("absent"), kPath);
  EXPECT_TRUE(only_problem(missing, 5, 30, "credential 'absent' (the token) at "))
      << all_problems(missing);
  ::unsetenv("CREDENTIALS_DIRECTORY");
}

TEST_F(ConfigTest, ASecondDocumentIsAProblemAndNeverLoopsTheParser) {
  const LoadResult two = parse_config("jobs: []\n---\nprojects: []\n", kPath);
  ASSERT_FALSE(two.config);
  EXPECT_NE(all_problems(two).find("a config file holds one YAML document; this is a second"),
            std::string::npos)
      << all_problems(two);
  // 16 bytes on which yaml-cpp 0.7's LoadAll appends nodes until memory runs out
  // (tests/fuzz/findings): a clear problem instead.
  const LoadResult fuzzed = parse_config(std::string_view{", yk\xca}-$\n--- {}\n", 16}, kPath);
  ASSERT_FALSE(fuzzed.config);
  EXPECT_NE(all_problems(fuzzed).find("this is a second"), std::string::npos)
      << all_problems(fuzzed);
}

TEST_F(ConfigTest, SyntaxErrorAtWhereTheStructureOpens) {
  const LoadResult result = parse_config("jobs: [a, b\nprojects: x\n", kPath);
  ASSERT_EQ(result.problems.size(), 1u) << all_problems(result);
  EXPECT_FALSE(result.config);
  // yaml-cpp notices the unclosed list where the next line's mapping begins (2:9, "end
  // of sequence flow not found"); the place to fix is the '[' that opens it.
  EXPECT_EQ(result.problems[0].line, 1);
  EXPECT_EQ(result.problems[0].column, 7);
  EXPECT_EQ(result.problems[0].message,
            "a list opened with '[' here is not closed: add the missing ']' (YAML read on to "
            "line 2 looking for it)");
  EXPECT_EQ(result.problems[0].file, kPath.string());
}

struct Translated {
  std::string yaml;
  int line, column;
  std::string fragment;
};

// Each of yaml-cpp's common messages (in the comment) in plain words, at the line to fix.
TEST_F(ConfigTest, YamlSyntaxErrorsInPlainWords) {
  const Translated cases[] = {
      // end of map flow not found (yaml-cpp: 2:1, the end of the file)
      {"log: {level: info\n", 1, 6,
       "a map opened with '{' here is not closed: add the missing '}'"},
      // end of sequence flow not found (yaml-cpp: 11:15, the next key)
      {with("    data_types: [visit, page\n    poll_every: 5m\n"), 10, 17,
       "a list opened with '[' here is not closed: add the missing ']' (YAML read on to line 11"},
      // end of sequence not found
      {with("   kind: raw\n"), 10, 4,
       "this line is indented by 3 spaces, which lines up with nothing above it: the entries of "
       "the list that starts at line 8 are indented by 2, line 9 by 4"},
      // end of map not found
      {with("- name: other\n"), 10, 1,
       "a list entry ('- ') among the keys of the map that starts at line 1: a list must be the "
       "value of a key"},
      {"log:\n  level: info\n format: json\n", 3, 2,
       "this line is indented by 1 space, which lines up with nothing above it"},
      // illegal map value
      {with("    kind: raw: chart\n"), 10, 14, "a second ': ' on this line"},
      {with("    kind:raw\n    verify: gzip\n"), 10, 9,
       "a key needs a space after its ':' (write 'kind: raw', not 'kind:raw')"},
      {with("    verify: gzip\n      kind: raw\n"), 11, 7,
       "this line is indented more than the key on line 10, which already has a value"},
      {with("  -name: other\n   project: shop\n"), 10, 3,
       "a list entry needs a space after '-' (write '- name', not '-name')"},
      // illegal tab when looking for indentation, and the errors a tab causes
      {with("\tkind: raw\n"), 10, 1, "a tab in the indentation: YAML indents with spaces only"},
      {"log:\n\tlevel: info\n", 2, 1, "a tab in the indentation"},
      // illegal block entry
      {with("    data_types: - visit\n"), 10, 17, "a list entry ('- ') cannot start here"},
      // illegal flow end
      {"log: {level: info}}\n", 1, 19, "'}' closes nothing"},
      // unknown token
      {with("    kind: @raw\n"), 10, 11, "a value cannot start with '@' in YAML"},
      // unknown escape character: q
      {with("    on_slot_done: \"echo \\q\"\n"), 10, 25,
       "an unknown escape ('\\q') in a double-quoted value"},
      // the referenced anchor is not defined
      {with("    kind: *raw\n"), 10, 11, "'*' refers to an anchor ('&name') defined above"},
      // Left as yaml-cpp words it: rare in a config file.
      {with("    kind: &a &b raw\n"), 10, 14,
       "YAML syntax error: cannot assign multiple anchors to the same node"},
  };
  for (const Translated& c : cases) {
    EXPECT_TRUE(only_problem(parse_config(c.yaml, kPath), c.line, c.column, c.fragment)) << c.yaml;
  }
}

// yaml-cpp 0.7 reads an unclosed quote on into the next lines, up to the next quote or
// the end of the file: without this check it surfaced as an unknown kind, or as "end
// of map not found" lines later.
TEST_F(ConfigTest, AnUnclosedQuoteIsNamedAsSuch) {
  EXPECT_TRUE(only_problem(parse_config(with("    kind: \"raw\n    verify: gzip\n"), kPath), 10, 11,
                           "unclosed quote: the \" here is never closed, so YAML reads the rest "
                           "of the file into this value"));
  EXPECT_TRUE(only_problem(parse_config(with("    kind: 'raw\n    verify: 'gzip'\n"), kPath), 10,
                           11,
                           "unclosed quote: the ' here is not closed on its line, so YAML reads "
                           "on into line 11"));
  EXPECT_TRUE(only_problem(parse_config(with("    data_types: [visit, 'page]\n"), kPath), 10, 25,
                           "unclosed quote"));
  // A quoted value may go on over lines indented past its key, and quotes inside other
  // values or block text are not quotes.
  const LoadResult fine = parse_config(with("    on_slot_done: \"echo it's\n"
                                            "      done\"\n"
                                            "    on_slot_failed: |\n"
                                            "      echo \"failed\n"
                                            "    on_slot_at_risk: echo \"late\n"),
                                       kPath);
  ASSERT_TRUE(fine.config) << all_problems(fine);
  EXPECT_EQ(fine.config->jobs.at(0).hooks.on_slot_done, "echo it's done");
}

TEST_F(ConfigTest, TyposGetTheNearestKnownName) {
  EXPECT_TRUE(only_problem(parse_config(with("    poll_evry: 5m\n"), kPath), 10, 5,
                           "unknown key 'poll_evry' in a job (did you mean 'poll_every'? known "
                           "keys: name, project,"));
  EXPECT_TRUE(only_problem(parse_config(with("http:\n  timeuot: 5s\n"), kPath), 11, 3,
                           "unknown key 'timeuot' in http (did you mean 'timeout'?"));
  EXPECT_TRUE(only_problem(parse_config(with("    data_types: [visit, pageview]\n"), kPath), 10, 25,
                           "unknown data type 'pageview' (did you mean 'page'? known: visit, "));
  EXPECT_TRUE(only_problem(parse_config(with("    kind: chrat\n"), kPath), 10, 11,
                           "unknown kind 'chrat' (did you mean 'chart'? one of: raw, chart)"));
  EXPECT_TRUE(only_problem(parse_config(with("    granularity: Hour\n"), kPath), 10, 18,
                           "unknown granularity 'Hour' (did you mean 'hour'?"));
  EXPECT_TRUE(only_problem(parse_config(with("    verify: gzp\n"), kPath), 10, 13,
                           "unknown verify 'gzp' (did you mean 'gzip'?"));
  EXPECT_TRUE(only_problem(
      parse_config(with("    kind: chart\n    charts: [a1]\n    resource: chart\n"), kPath), 12, 15,
      "unknown resource 'chart' (did you mean 'charts'?"));
  EXPECT_TRUE(only_problem(parse_config(with("log:\n  level: inof\n"), kPath), 11, 10,
                           "unknown log level 'inof' (did you mean 'info'?"));
  EXPECT_TRUE(only_problem(parse_config(with("log:\n  format: jsno\n"), kPath), 11, 11,
                           "unknown log format 'jsno' (did you mean 'json'? one of: text, json)"));
  EXPECT_TRUE(only_problem(parse_config(with("  - name: other\n    project: shoop\n"), kPath), 11,
                           14,
                           "unknown project 'shoop' (not in 'projects'; did you mean 'shop'?)"));
}

TEST_F(ConfigTest, NoSuggestionWhenNothingIsClose) {
  const LoadResult key = parse_config(with("    colour: blue\n"), kPath);
  EXPECT_TRUE(only_problem(key, 10, 5, "unknown key 'colour' in a job (known keys: name,"));
  EXPECT_EQ(all_problems(key).find("did you mean"), std::string::npos);
  const LoadResult type = parse_config(with("    data_types: [clicks]\n"), kPath);
  EXPECT_TRUE(only_problem(type, 10, 18, "unknown data type 'clicks' (known: visit,"));
  EXPECT_EQ(all_problems(type).find("did you mean"), std::string::npos);
  // Three letters allow one typo, not two.
  EXPECT_TRUE(only_problem(parse_config(with("    kind: rwa\n"), kPath), 10, 11,
                           "unknown kind 'rwa' (did you mean 'raw'?"));
  EXPECT_TRUE(only_problem(parse_config(with("    kind: rxy\n"), kPath), 10, 11,
                           "unknown kind 'rxy' (one of: raw, chart)"));
}

TEST_F(ConfigTest, EmptyFileAndMissingSections) {
  EXPECT_TRUE(only_problem(parse_config("", kPath), 0, 0, "the config file is empty"));
  EXPECT_TRUE(only_problem(parse_config("# nothing yet\n", kPath), 0, 0, "is empty"));
  EXPECT_TRUE(only_problem(parse_config("- a\n", kPath), 1, 1, "must be a map of settings"));
  const LoadResult result = parse_config("log:\n  level: info\n", kPath);
  ASSERT_EQ(result.problems.size(), 2u) << all_problems(result);
  EXPECT_EQ(result.problems[0].to_string(),
            kPath.string() + ":1:1: 'projects' is missing; at least one project is needed");
  EXPECT_EQ(result.problems[1].to_string(),
            kPath.string() + ":1:1: 'jobs' is missing; at least one job is needed");
  EXPECT_TRUE(only_problem(parse_config("projects: []\njobs: [{name: j, project: x}]\n", kPath), 1,
                           11, "'projects' must be a list of at least one project"));
}

TEST_F(ConfigTest, CollectsEveryProblemInFileOrder) {
  const std::string yaml =
      "http:\n"
      "  timeout: soon\n"  // 2:12
      "projects:\n"
      "  - name: shop\n"
      "    ai: abc\n"
      "    project_uid: def\n"
      "    colour: blue\n"  // 7:5
      "    auth:\n"
      "      token_env: GIO_CONFIG_TEST_UNSET\n"  // 9:18
      "jobs:\n"
      "  - name: a\n"
      "    project: nowhere\n"  // 12:14
      "    kind: chart\n"       // a chart job needs charts (at 11:5)
      "  - name: a\n"           // 14:11
      "    project: shop\n"
      "    granularity: week\n";  // 16:18
  ::unsetenv("GIO_CONFIG_TEST_UNSET");
  const LoadResult result = parse_config(yaml, kPath);
  EXPECT_FALSE(result.config);
  std::vector<std::pair<int, int>> where;
  for (const Problem& problem : result.problems) {
    where.emplace_back(problem.line, problem.column);
  }
  EXPECT_EQ(where, (std::vector<std::pair<int, int>>{
                       {2, 12}, {7, 5}, {9, 18}, {11, 5}, {12, 14}, {14, 11}, {16, 18}}))
      << all_problems(result);
}

TEST_F(ConfigTest, RelativePathsAreResolvedAgainstTheConfigFolder) {
  write("shop.token", kToken);
  const std::string yaml =
      "state_db: state/gio.db\n"
      "archive_dir: ../archive\n"
      "http:\n"
      "  ca_file: certs/extra.pem\n"
      "projects:\n"
      "  - name: shop\n"
      "    ai: abc\n"
      "    project_uid: def\n"
      "    auth:\n"
      "      token_file: shop.token\n"
      "jobs:\n"
      "  - {name: j, project: shop}\n";
  const fs::path path = write("gio.yaml", yaml);
  const LoadResult result = load_config(path);
  ASSERT_TRUE(result.config) << all_problems(result);
  EXPECT_EQ(result.config->source, path);
  EXPECT_EQ(result.config->state_db, dir_ / "state/gio.db");
  EXPECT_EQ(result.config->archive_dir, dir_.parent_path() / "archive");
  EXPECT_EQ(result.config->http.ca_file, dir_ / "certs/extra.pem");
  EXPECT_EQ(result.config->projects[0].auth.token.reveal(), kToken);
}

TEST_F(ConfigTest, TokenFromAFileIsTrimmed) {
  write("shop.token", std::string("\n  ") + kToken + " \r\n");
  const std::string yaml =
      "projects:\n"
      "  - name: shop\n"
      "    ai: abc\n"
      "    project_uid: def\n"
      "    auth:\n"
      "      token_file: " +
      (dir_ / "shop.token").string() +
      "\n"
      "jobs:\n"
      "  - {name: j, project: shop}\n";
  const LoadResult result = parse_config(yaml, kPath);
  ASSERT_TRUE(result.config) << all_problems(result);
  EXPECT_EQ(result.config->projects[0].auth.token.reveal(), kToken);
  EXPECT_TRUE(result.config->projects[0].auth.uses_token());
}

TEST_F(ConfigTest, SecretFilesOpenToOthersAreWarnedAboutWithoutTheSecret) {
  const fs::path token = write("shop.token", kToken);
  const fs::path key = write("other.key", "-----BEGIN PRIVATE KEY-----\nsecretkey\n");
  const std::string yaml =
      "projects:\n"
      "  - name: shop\n"
      "    ai: abc\n"
      "    project_uid: def\n"
      "    auth:\n"
      "      token_file: shop.token\n"
      "  - name: other\n"
      "    ai: abc\n"
      "    project_uid: def\n"
      "    auth:\n"
      "      client_id: pub\n"
      "      private_key_file: other.key\n"
      "jobs:\n"
      "  - {name: j, project: shop}\n";
  const fs::path config = dir_ / "gio.yaml";

  fs::permissions(token, fs::perms::owner_read | fs::perms::owner_write);
  fs::permissions(key, fs::perms::owner_read);
  const LoadResult quiet = parse_config(yaml, config);
  ASSERT_TRUE(quiet.config) << all_problems(quiet);
  EXPECT_TRUE(quiet.warnings.empty()) << quiet.warnings.front().to_string();

  fs::permissions(token, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  fs::permissions(key, fs::perms::owner_read | fs::perms::others_read);
  const LoadResult loud = parse_config(yaml, config);
  ASSERT_TRUE(loud.config) << all_problems(loud);  // a warning, not a problem
  ASSERT_EQ(loud.warnings.size(), 2u);
  EXPECT_EQ(loud.warnings[0].line, 6);
  EXPECT_EQ(loud.warnings[0].column, 19);
  EXPECT_EQ(loud.warnings[0].message,
            "the token file " + token.string() +
                " is open to group or others (mode 0640); make it readable by its owner only: "
                "chmod 600 " +
                token.string());
  EXPECT_EQ(loud.warnings[1].line, 12);
  EXPECT_NE(loud.warnings[1].message.find("the private key file " + key.string() +
                                          " is open to group or others (mode 0404)"),
            std::string::npos)
      << loud.warnings[1].message;
  for (const Problem& warning : loud.warnings) {
    EXPECT_EQ(warning.to_string().find(kToken), std::string::npos);
    EXPECT_EQ(warning.to_string().find("secretkey"), std::string::npos);
  }
}

TEST_F(ConfigTest, ArchiveUmask) {
  const LoadResult defaults = parse_config(with(""), kPath);
  ASSERT_TRUE(defaults.config) << all_problems(defaults);
  EXPECT_EQ(defaults.config->archive_umask, 0027u);

  for (const auto& [text, value] : std::vector<std::pair<std::string, unsigned>>{
           {"0077", 0077}, {"\"0022\"", 0022}, {"027", 0027}, {"0000", 0}}) {
    const LoadResult loaded = parse_config(with("archive_umask: " + text + "\n"), kPath);
    ASSERT_TRUE(loaded.config) << text << all_problems(loaded);
    EXPECT_EQ(loaded.config->archive_umask, value) << text;
  }
  EXPECT_TRUE(only_problem(parse_config(with("archive_umask: 0099\n"), kPath), 10, 16,
                           "'archive_umask' must be an octal umask such as 0027, not 0099"));
  EXPECT_TRUE(only_problem(parse_config(with("archive_umask: 27\n"), kPath), 10, 16,
                           "must be an octal umask"));
  EXPECT_TRUE(only_problem(parse_config(with("archive_umask: 01777\n"), kPath), 10, 16,
                           "must be an octal umask"));
  EXPECT_TRUE(only_problem(parse_config(with("archive_umask: 0277\n"), kPath), 10, 16,
                           "would take the owner's own access to the archive away"));
  EXPECT_TRUE(only_problem(parse_config(with("archive_umask: [1]\n"), kPath), 10, 16,
                           "must be a single value"));
}

TEST_F(ConfigTest, TokenFromTheEnvironmentIsTrimmed) {
  ::setenv(kTokenVar, (std::string(" ") + kToken + "\n").c_str(), 1);
  const LoadResult result = parse_config(kMinimal, kPath);
  ASSERT_TRUE(result.config) << all_problems(result);
  EXPECT_EQ(result.config->projects[0].auth.token.reveal(), kToken);
}

TEST_F(ConfigTest, MissingOrEmptyTokens) {
  const std::string file_auth =
      "projects:\n"
      "  - name: shop\n"
      "    ai: abc\n"
      "    project_uid: def\n"
      "    auth:\n"
      "      token_file: missing.token\n"
      "jobs:\n"
      "  - {name: j, project: shop}\n";
  const fs::path config_path = dir_ / "gio.yaml";
  EXPECT_TRUE(only_problem(parse_config(file_auth, config_path), 6, 19,
                           "cannot read the token file " + (dir_ / "missing.token").string() +
                               ": No such file or directory"));

  write("missing.token", " \n\t");
  EXPECT_TRUE(only_problem(parse_config(file_auth, config_path), 6, 19,
                           "the token file " + (dir_ / "missing.token").string() + " is empty"));

  ::unsetenv(kTokenVar);
  EXPECT_TRUE(
      only_problem(parse_config(kMinimal, kPath), 6, 18,
                   "the environment variable GIO_CONFIG_TEST_TOKEN (the token) is not set"));
  ::setenv(kTokenVar, "  ", 1);
  EXPECT_TRUE(only_problem(parse_config(kMinimal, kPath), 6, 18,
                           "the environment variable GIO_CONFIG_TEST_TOKEN (the token) is empty"));
}

// Skip mode (status, gaps, verify, ...): no secret is read, so a shell without the
// service's environment, credentials or file rights still loads the config; each source
// is kept (for check-config) and still checked as far as it can be without reading it.
TEST_F(ConfigTest, SkipModeReadsNoSecretButKeepsAndChecksTheirSources) {
  const auto yaml = [](std::string_view auth) {
    return "state_db: state/gio.db\n"
           "projects:\n"
           "  - name: shop\n"
           "    ai: abc\n"
           "    project_uid: def\n"
           "    auth: " +
           std::string(auth) +
           "\n"
           "jobs:\n"
           "  - {name: j, project: shop}\n";
  };
  const fs::path config_path = dir_ / "gio.yaml";
  ::unsetenv(kTokenVar);
  ::unsetenv("CREDENTIALS_DIRECTORY");
  struct Case {
    std::string auth;
    SecretSource::Kind kind;
    std::string key, name;
  };
  const Case cases[] = {
      {"{token_env: GIO_CONFIG_TEST_TOKEN}", SecretSource::Kind::env, "token_env",
       "GIO_CONFIG_TEST_TOKEN"},
      {"{token_credential: gio-token}", SecretSource::Kind::credential, "token_credential",
       "gio-token"},
      {"{token_file: missing.token}", SecretSource::Kind::file, "token_file",
       (dir_ / "missing.token").string()},
  };
  for (const Case& c : cases) {
    // Load mode fails on each of them: the secret is not there.
    EXPECT_EQ(parse_config(yaml(c.auth), config_path).problems.size(), 1u) << c.auth;
    const LoadResult skipped = parse_config(yaml(c.auth), config_path, SecretMode::skip);
    ASSERT_TRUE(skipped.config) << c.auth << "\n" << all_problems(skipped);
    EXPECT_EQ(skipped.config->secrets, SecretMode::skip);
    const Auth& auth = skipped.config->projects.at(0).auth;
    EXPECT_TRUE(auth.token.empty());
    EXPECT_TRUE(auth.uses_token()) << "the source says which auth it is, without the secret";
    EXPECT_EQ(auth.token_source.kind, c.kind);
    EXPECT_EQ(auth.token_source.key, c.key);
    EXPECT_EQ(auth.token_source.name, c.name);
    EXPECT_EQ(auth.token_source.place.line, 6);
    EXPECT_EQ(auth.token_source.place.column, 12 + static_cast<int>(c.key.size()) + 2);
    EXPECT_FALSE(auth.private_key_source);
  }
  // The syntax of each source is still checked.
  EXPECT_TRUE(only_problem(parse_config(yaml("{token_credential: ../x}"), kPath, SecretMode::skip),
                           6, 30, "a credential name is a file name"));
  EXPECT_TRUE(only_problem(parse_config(yaml("{token_env: \"A=B\"}"), kPath, SecretMode::skip), 6,
                           23, "'token_env' must name an environment variable, not 'A=B'"));
  EXPECT_TRUE(only_problem(parse_config(yaml("{token_file: [a]}"), kPath, SecretMode::skip), 6, 24,
                           "token_file"));
  EXPECT_TRUE(only_problem(parse_config(yaml("{client_id: pub}"), kPath, SecretMode::skip), 6, 12,
                           "client_id needs private_key_file"));

  // Signed-code auth: the key's source is kept; the token's is empty.
  const LoadResult signed_code = parse_config(
      yaml("{client_id: pub, private_key_file: /nowhere/key.pem}"), kPath, SecretMode::skip);
  ASSERT_TRUE(signed_code.config) << all_problems(signed_code);
  const Auth& auth = signed_code.config->projects.at(0).auth;
  EXPECT_FALSE(auth.uses_token());
  EXPECT_TRUE(auth.private_key.empty());
  EXPECT_EQ(auth.private_key_source.kind, SecretSource::Kind::file);
  EXPECT_EQ(auth.private_key_source.name, "/nowhere/key.pem");

  // Where state_db and archive_dir were written (check-config points at them); line 0
  // for a default.
  const Config& config = *signed_code.config;
  EXPECT_EQ(config.state_db_place.line, 1);
  EXPECT_EQ(config.state_db_place.column, 11);
  EXPECT_EQ(config.archive_dir_place.line, 0);
}

// load_config passes the mode on, and a loaded config says it holds its secrets.
TEST_F(ConfigTest, LoadConfigTakesTheSecretMode) {
  ::unsetenv(kTokenVar);
  const fs::path path = dir_ / "gio.yaml";
  write("gio.yaml", std::string(kMinimal));
  EXPECT_FALSE(load_config(path).config);
  const LoadResult skipped = load_config(path, SecretMode::skip);
  ASSERT_TRUE(skipped.config) << all_problems(skipped);
  EXPECT_EQ(skipped.config->secrets, SecretMode::skip);
  ::setenv(kTokenVar, kToken, 1);
  const LoadResult loaded = load_config(path);
  ASSERT_TRUE(loaded.config) << all_problems(loaded);
  EXPECT_EQ(loaded.config->secrets, SecretMode::load);
  EXPECT_EQ(loaded.config->projects.at(0).auth.token.reveal(), kToken);
  EXPECT_EQ(loaded.config->projects.at(0).auth.token_source.name, kTokenVar);
}

TEST_F(ConfigTest, TokenFileProblemsNeverShowItsContent) {
  // A file that is too big to be a token (someone pointed at the wrong file).
  write("big.token", std::string(70 * 1024, 'k') + kToken);
  const std::string yaml =
      "projects:\n"
      "  - name: shop\n"
      "    ai: abc\n"
      "    project_uid: def\n"
      "    auth:\n"
      "      token_file: big.token\n"
      "jobs:\n"
      "  - {name: j, project: shop}\n";
  const LoadResult result = parse_config(yaml, dir_ / "gio.yaml");
  ASSERT_TRUE(only_problem(result, 6, 19, "is it the right file?"));
  EXPECT_EQ(result.problems[0].message.find(kToken), std::string::npos);
}

TEST_F(ConfigTest, MissingConfigFileIsOneProblemWithoutALine) {
  const fs::path path = dir_ / "absent.yaml";
  const LoadResult result = load_config(path);
  ASSERT_EQ(result.problems.size(), 1u);
  EXPECT_FALSE(result.config);
  EXPECT_EQ(result.problems[0].line, 0);
  EXPECT_EQ(result.problems[0].to_string(),
            path.string() + ": cannot read the config file: No such file or directory");
  EXPECT_EQ(load_config(dir_).problems.size(), 1u);  // a folder is not a config file
}

TEST_F(ConfigTest, SummaryNamesJobsButNeverTheToken) {
  const LoadResult result =
      parse_config(with("  - name: shop-daily\n    project: shop\n    granularity: day\n"), kPath);
  ASSERT_TRUE(result.config) << all_problems(result);
  const std::string line = summary(*result.config);
  EXPECT_EQ(line.find(kToken), std::string::npos);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(
      line.rfind("1 project, 2 jobs (shop-hourly: raw hour of shop, shop-daily: raw day of shop)",
                 0),
      0u)
      << line;
}

// Sinks (issue 15): read with their defaults; a job names one; the remote never shows in
// the summary (it may hold credentials).
TEST_F(ConfigTest, SinksAreReadAndJobsNameThem) {
  const LoadResult result =
      parse_config(with("    sink: lake\n"
                        "sinks:\n"
                        "  - name: lake\n"
                        "    rclone_remote: \":s3,secret_access_key=hush42:bucket/gio\"\n"
                        "    rclone_config: rclone.conf\n"
                        "    keep_local: 0s\n"
                        "  - name: cold_2\n"
                        "    rclone_remote: oss:archive\n"),
                   kPath);
  ASSERT_TRUE(result.config) << all_problems(result);
  const Config& config = *result.config;
  ASSERT_EQ(config.sinks.size(), 2u);
  EXPECT_EQ(config.sinks[0].name, "lake");
  EXPECT_EQ(config.sinks[0].rclone_remote, ":s3,secret_access_key=hush42:bucket/gio");
  EXPECT_EQ(config.sinks[0].rclone_config, "/srv/gio/conf/rclone.conf");
  EXPECT_EQ(config.sinks[0].keep_local, 0s);
  EXPECT_EQ(config.sinks[0].place.line, 12);
  EXPECT_EQ(config.sinks[1].keep_local, std::chrono::days{2});
  EXPECT_TRUE(config.sinks[1].rclone_config.empty());
  EXPECT_EQ(config.jobs[0].sink, "lake");
  ASSERT_NE(config.sink_of(config.jobs[0]), nullptr);
  EXPECT_EQ(config.sink_of(config.jobs[0])->name, "lake");
  const std::string line = summary(config);
  EXPECT_NE(line.find("shop-hourly: raw hour of shop to sink lake"), std::string::npos) << line;
  EXPECT_NE(line.find("2 sinks (lake: keep_local 0s, cold_2: keep_local 2d)"), std::string::npos)
      << line;
  EXPECT_EQ(line.find("hush42"), std::string::npos) << line;
  EXPECT_EQ(line.find("oss:"), std::string::npos) << line;
}

TEST_F(ConfigTest, JobsWithoutASinkAndNoSinksList) {
  const LoadResult result = parse_config(with(""), kPath);
  ASSERT_TRUE(result.config) << all_problems(result);
  EXPECT_TRUE(result.config->sinks.empty());
  EXPECT_TRUE(result.config->jobs[0].sink.empty());
  EXPECT_EQ(result.config->sink_of(result.config->jobs[0]), nullptr);
  EXPECT_TRUE(parse_config(with("sinks: []\n"), kPath).config);
  EXPECT_TRUE(parse_config(with("sinks:\n"), kPath).config);
}

TEST_F(ConfigTest, UnknownSinkInAJobNamesItsLine) {
  EXPECT_TRUE(only_problem(parse_config(with("    sink: lak\n"
                                             "sinks:\n"
                                             "  - name: lake\n"
                                             "    rclone_remote: oss:b\n"),
                                        kPath),
                           10, 11, "unknown sink 'lak' (not in 'sinks'; did you mean 'lake'?)"));
  EXPECT_TRUE(
      only_problem(parse_config(with("    sink: lake\n"), kPath), 10, 11, "unknown sink 'lake'"));
}

TEST_F(ConfigTest, SinkProblemsNameTheirLineAndNeverTheRemote) {
  EXPECT_TRUE(only_problem(parse_config(with("sinks:\n"
                                             "  - name: lake\n"
                                             "    rclone_remote: oss:a\n"
                                             "  - name: lake\n"
                                             "    rclone_remote: oss:b\n"),
                                        kPath),
                           13, 11, "duplicate sink name 'lake'"));
  EXPECT_TRUE(only_problem(parse_config(with("sinks:\n"
                                             "  - name: la.ke\n"
                                             "    rclone_remote: oss:a\n"),
                                        kPath),
                           11, 11, "letters, digits, '_' or '-'"));
  EXPECT_TRUE(only_problem(parse_config(with("sinks:\n"
                                             "  - name: ../up\n"
                                             "    rclone_remote: oss:a\n"),
                                        kPath),
                           11, 11, "sink name"));
  EXPECT_TRUE(only_problem(parse_config(with("sinks:\n"
                                             "  - name: lake\n"
                                             "    keep_local: 1d\n"),
                                        kPath),
                           11, 5, "this sink has no 'rclone_remote'"));
  EXPECT_TRUE(only_problem(parse_config(with("sinks:\n"
                                             "  - rclone_remote: oss:a\n"),
                                        kPath),
                           11, 5, "this sink has no 'name'"));
  EXPECT_TRUE(only_problem(parse_config(with("sinks:\n"
                                             "  - name: lake\n"
                                             "    rclone_remote: oss:a\n"
                                             "    keep_local: two days\n"),
                                        kPath),
                           13, 17, "keep_local"));
  EXPECT_TRUE(only_problem(parse_config(with("sinks:\n"
                                             "  - name: lake\n"
                                             "    rclone_remote: oss:a\n"
                                             "    keep_locl: 1d\n"),
                                        kPath),
                           13, 5, "keep_local"));
  EXPECT_TRUE(
      only_problem(parse_config(with("sinks: lake\n"), kPath), 10, 8, "'sinks' must be a list"));
  // A remote that cannot be one (a line break) is refused without quoting it.
  const LoadResult broken = parse_config(with("sinks:\n"
                                              "  - name: lake\n"
                                              "    rclone_remote: \"oss:a\\nkey=hush42\"\n"),
                                         kPath);
  EXPECT_TRUE(only_problem(broken, 12, 20, "'rclone_remote' must be"));
  EXPECT_EQ(all_problems(broken).find("hush42"), std::string::npos);
}

TEST(Duration, ParseAndFormat) {
  struct Case {
    std::string_view text;
    std::optional<Duration> value;
    std::string_view formatted;  // "" when the same as text
  };
  const Case cases[] = {
      {"90s", 90s, "1m30s"},
      {"5m", 5min, ""},
      {"1h30m", 90min, ""},
      {"15d", std::chrono::days{15}, ""},
      {"2h", 2h, ""},
      {"1d2h3m4s", 93784s, ""},
      {"0s", 0s, ""},
      {"0", 0s, "0s"},
      {"60m", 1h, "1h"},
      {"", std::nullopt, ""},
      {"5", std::nullopt, ""},
      {"m", std::nullopt, ""},
      {"-5m", std::nullopt, ""},
      {"+5m", std::nullopt, ""},
      {"5 m", std::nullopt, ""},
      {" 5m", std::nullopt, ""},
      {"5M", std::nullopt, ""},
      {"1.5h", std::nullopt, ""},
      {"30m1h", std::nullopt, ""},
      {"1h1h", std::nullopt, ""},
      {"1w", std::nullopt, ""},
      {"99999999999999999999s", std::nullopt, ""},
      {"9999999999999999d", std::nullopt, ""},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(parse_duration(c.text), c.value) << "'" << c.text << "'";
    if (c.value) {
      EXPECT_EQ(format_duration(*c.value), c.formatted.empty() ? c.text : c.formatted);
    }
  }
  EXPECT_EQ(format_duration(5400s), "1h30m");
  EXPECT_EQ(format_duration(0s), "0s");
  EXPECT_EQ(format_duration(std::chrono::days{7}), "7d");
}

TEST_F(ConfigTest, DefaultConfigPathFollowsTheEnvironment) {
  ::setenv("GIO_EXPORTER_CONFIG", "/tmp/x.yaml", 1);
  EXPECT_EQ(default_config_path(), "/tmp/x.yaml");
  ::setenv("GIO_EXPORTER_CONFIG", "", 1);
  EXPECT_EQ(default_config_path(), "/etc/gio-exporter/config.yaml");
  ::unsetenv("GIO_EXPORTER_CONFIG");
  EXPECT_EQ(default_config_path(), "/etc/gio-exporter/config.yaml");
}

// The example names its token as a systemd credential (the README's setup): it loads
// once $CREDENTIALS_DIRECTORY holds that credential.
TEST_F(ConfigTest, ExampleConfigLoadsWhenItsCredentialIsThere) {
  const fs::path credentials = dir_ / "credentials";
  fs::create_directories(credentials);
  std::ofstream(credentials / "shop-token") << kToken << "\n";
  ::setenv("CREDENTIALS_DIRECTORY", credentials.c_str(), 1);
  const fs::path path = fs::path(GIO_SOURCE_DIR) / "config/gio-exporter.example.yaml";
  const LoadResult result = load_config(path);
  ::unsetenv("CREDENTIALS_DIRECTORY");
  ASSERT_TRUE(result.problems.empty()) << all_problems(result);
  ASSERT_TRUE(result.config);
  const Config& config = *result.config;
  EXPECT_EQ(config.projects.size(), 1u);
  // Two raw jobs; the chart and user-list jobs are commented out (their ids are
  // placeholders that the vendor would refuse).
  ASSERT_EQ(config.jobs.size(), 2u);
  EXPECT_EQ(config.jobs[0].granularity, Granularity::hour);
  EXPECT_EQ(config.jobs[1].granularity, Granularity::day);
  for (const Job& job : config.jobs) {
    EXPECT_TRUE(std::holds_alternative<RawJob>(job.settings)) << job.name;
    EXPECT_TRUE(job.hooks.on_slot_done.empty()) << job.name;
  }
  EXPECT_EQ(config.projects[0].auth.token.reveal(), kToken);

  // And without the credential it says which one is missing.
  const LoadResult unset = load_config(path);
  ASSERT_EQ(unset.problems.size(), 1u) << all_problems(unset);
  EXPECT_NE(unset.problems[0].message.find("shop-token"), std::string::npos);
}

// "key:" at the start of a line of the example, set or commented out ("# key:",
// "- key:", "# - key:").
bool example_shows(const std::string& example, std::string_view key) {
  const std::regex line("(^|\n)[ \t]*(#[ \t]*)?(-[ \t]+)?" + std::string(key) + ":");
  return std::regex_search(example, line);
}

// Every key the parser accepts (the lists it checks maps against) has a line in the
// shipped example, so a new key cannot be added without showing it there.
TEST(ExampleConfig, ShowsEveryKeyTheParserKnows) {
  std::ifstream in(fs::path(GIO_SOURCE_DIR) / "config/gio-exporter.example.yaml");
  ASSERT_TRUE(in) << "config/gio-exporter.example.yaml";
  std::stringstream text;
  text << in.rdbuf();
  const std::string example = text.str();
  std::size_t checked = 0;
  for (const keys::Map& map : keys::kMaps) {
    for (std::string_view key : map.keys) {
      EXPECT_TRUE(example_shows(example, key)) << map.where << ": '" << key << "' is missing";
      ++checked;
    }
  }
  EXPECT_GE(checked, 45u);
  // The check can fail: a key that is not in the example is reported missing.
  EXPECT_FALSE(example_shows(example, "poll_evry"));
  EXPECT_FALSE(example_shows("jobs:\n  # poll_every is the interval\n", "poll_every"));
}

// The section 5 man page (docs/gio-exporter.yaml.5) has an entry (".B key") per key.
TEST(ManPage, DescribesEveryKeyTheParserKnows) {
  std::ifstream in(fs::path(GIO_SOURCE_DIR) / "docs/gio-exporter.yaml.5");
  ASSERT_TRUE(in) << "docs/gio-exporter.yaml.5";
  std::stringstream text;
  text << in.rdbuf();
  const std::string page = text.str();
  for (const keys::Map& map : keys::kMaps) {
    for (std::string_view key : map.keys) {
      const std::regex entry("\\n\\.TP\\n\\.B " + std::string(key) + "\\n");
      EXPECT_TRUE(std::regex_search(page, entry)) << map.where << ": '" << key << "' is missing";
    }
  }
}

// The lists that are parts of the job's map are in it.
TEST(ConfigKeys, JobListHoldsTheChartAndHookKeys) {
  for (keys::List part : {keys::List{keys::kChartOnly}, keys::List{keys::kHooks}}) {
    for (std::string_view key : part) {
      EXPECT_NE(std::find(std::begin(keys::kJob), std::end(keys::kJob), key), std::end(keys::kJob))
          << key;
    }
  }
}

TEST(Problem, ToStringFormats) {
  EXPECT_EQ((Problem{"a.yaml", 3, 7, "bad"}).to_string(), "a.yaml:3:7: bad");
  EXPECT_EQ((Problem{"a.yaml", 0, 0, "gone"}).to_string(), "a.yaml: gone");
}

TEST(Config, ProjectOfAnUnknownProjectThrows) {
  Config config;
  Job job;
  job.project = "nope";
  EXPECT_THROW(config.project_of(job), std::logic_error);
}

// Issue 14 (11): a state database inside the archive is deleted by the archive's own
// housekeeping; the config refuses it, naming both paths, wherever below the archive.
TEST(StateDbPlace, InsideTheArchiveIsRefused) {
  for (const char* state_db : {"/data/archive/.staging/state.db", "/data/archive/state.db",
                               "/data/archive/a/b/state.db", "/data/archive"}) {
    const LoadResult result =
        parse_config(std::string("state_db: ") + state_db + "\narchive_dir: /data/archive/\n" +
                         std::string(kMinimal),
                     kPath, SecretMode::skip);
    EXPECT_TRUE(only_problem(result, 1, 11, "is inside the archive /data/archive")) << state_db;
    EXPECT_NE(all_problems(result).find(state_db), std::string::npos) << state_db;
  }
  // Beside it, or in a folder whose name merely starts like the archive's: fine.
  for (const char* state_db : {"/data/state.db", "/data/archive2/state.db", "/data/archive.db"}) {
    const LoadResult result =
        parse_config(std::string("state_db: ") + state_db + "\narchive_dir: /data/archive\n" +
                         std::string(kMinimal),
                     kPath, SecretMode::skip);
    EXPECT_TRUE(result.problems.empty()) << state_db << all_problems(result);
  }
}

TEST(StateDbPlace, ADefaultStateDbInsideAGivenArchiveIsRefused) {
  const LoadResult result = parse_config(
      "archive_dir: /var/lib/gio-exporter\n" + std::string(kMinimal), kPath, SecretMode::skip);
  EXPECT_TRUE(only_problem(result, 1, 14, "is inside the archive"));
}

TEST(StateDbPlace, SymlinksAreResolved) {
  const fs::path top =
      fs::temp_directory_path() / ("gio-config-test-" + std::to_string(::getpid()));
  fs::remove_all(top);
  fs::create_directories(top / "archive" / ".staging");
  fs::create_directory_symlink(top / "archive" / ".staging", top / "db");
  EXPECT_TRUE(is_inside(top / "db" / "state.db", top / "archive"));
  EXPECT_TRUE(is_inside(top / "db" / "new" / "state.db", top / "archive"));
  EXPECT_FALSE(is_inside(top / "state.db", top / "archive"));
  // The archive itself reached through a link.
  fs::create_directory_symlink(top / "archive", top / "link");
  EXPECT_TRUE(is_inside(top / "archive" / "state.db", top / "link"));
  fs::remove_all(top);
}

// --- Hourly against daily (issue 16) -------------------------------------------------

const Reconcile& reconcile_of(const Config& config, std::string_view job) {
  return std::get<RawJob>(config.find_job(job)->settings).reconcile;
}

// Line 10 on: a daily raw job of shop; `hourly` goes on shop-hourly (line 10), before it.
std::string paired(std::string_view hourly, std::string_view more = "") {
  return with(std::string{hourly} +
              "  - name: shop-daily\n    project: shop\n    granularity: day\n" +
              std::string{more});
}

TEST_F(ConfigTest, ReconcilePairsTheProjectsOneHourlyAndOneDailyRawJob) {
  const LoadResult result = parse_config(paired(""), kPath);
  ASSERT_TRUE(result.config) << all_problems(result);
  const Reconcile& reconcile = reconcile_of(*result.config, "shop-hourly");
  EXPECT_EQ(reconcile.daily_job, "shop-daily");
  EXPECT_TRUE(reconcile.automatic);
  EXPECT_EQ(reconcile.tolerance_percent, 0.5);
  EXPECT_FALSE(reconcile.refetch);
  EXPECT_EQ(reconcile_of(*result.config, "shop-daily").daily_job, "");
}

TEST_F(ConfigTest, ReconcileNotAutomaticWithTwoDailyJobs) {
  const LoadResult result = parse_config(
      paired("", "  - name: shop-daily2\n    project: shop\n    granularity: day\n"), kPath);
  ASSERT_TRUE(result.config) << all_problems(result);
  EXPECT_EQ(reconcile_of(*result.config, "shop-hourly").daily_job, "");
  // Named, it pairs; with its tolerance and refetch.
  const LoadResult named =
      parse_config(paired("    reconcile_with: shop-daily2\n    reconcile_tolerance: 2%\n"
                          "    on_reconcile_mismatch: refetch\n",
                          "  - name: shop-daily2\n    project: shop\n    granularity: day\n"),
                   kPath);
  ASSERT_TRUE(named.config) << all_problems(named);
  const Reconcile& reconcile = reconcile_of(*named.config, "shop-hourly");
  EXPECT_EQ(reconcile.daily_job, "shop-daily2");
  EXPECT_FALSE(reconcile.automatic);
  EXPECT_EQ(reconcile.tolerance_percent, 2.0);
  EXPECT_TRUE(reconcile.refetch);
}

// A size-only daily job counts no rows: the pair is loaded, with one warning saying so.
TEST_F(ConfigTest, ReconcileWithASizeOnlyDailyJobWarnsAtLoad) {
  const LoadResult counted = parse_config(paired(""), kPath);
  ASSERT_TRUE(counted.config) << all_problems(counted);
  EXPECT_TRUE(counted.warnings.empty());
  const LoadResult size_only = parse_config(paired("", "    verify: size\n"), kPath);
  ASSERT_TRUE(size_only.config) << all_problems(size_only);
  EXPECT_EQ(reconcile_of(*size_only.config, "shop-hourly").daily_job, "shop-daily");
  ASSERT_EQ(size_only.warnings.size(), 1u);
  EXPECT_NE(size_only.warnings[0].message.find("'shop-daily' has 'verify: size'"),
            std::string::npos)
      << size_only.warnings[0].message;
}

TEST_F(ConfigTest, ReconcileWithMustNameADailyRawJobOfTheProject) {
  EXPECT_TRUE(only_problem(parse_config(paired("    reconcile_with: shop-dialy\n"), kPath), 10, 21,
                           "'reconcile_with' names no job: 'shop-dialy'"));
  EXPECT_TRUE(only_problem(parse_config(paired("    reconcile_with: shop-hourly\n"), kPath), 10, 21,
                           "another job"));
  EXPECT_TRUE(only_problem(
      parse_config(paired("    reconcile_with: shop-h2\n",
                          "  - name: shop-h2\n    project: shop\n    granularity: hour\n"),
                   kPath),
      10, 21, "an hourly job; it must be a daily raw job"));
  EXPECT_TRUE(
      only_problem(parse_config(paired("    reconcile_with: shop-charts\n",
                                       "  - name: shop-charts\n    project: shop\n    kind: chart\n"
                                       "    granularity: day\n    charts: [abc]\n"),
                                kPath),
                   10, 21, "a chart job"));
}

TEST_F(ConfigTest, ReconcileKeysBelongOnTheHourlyRawJob) {
  EXPECT_TRUE(only_problem(parse_config(paired("", "    reconcile_tolerance: 1\n"), kPath), 13, 5,
                           "belong on the hourly raw job"));
  EXPECT_TRUE(only_problem(parse_config(paired("    reconcile_tolerance: 101%\n"), kPath), 10, 26,
                           "percentage from 0 to 100"));
  EXPECT_TRUE(only_problem(parse_config(paired("    on_reconcile_mismatch: fix\n"), kPath), 10, 28,
                           "one of: report, refetch"));
  // Nothing to pair with: said at the key.
  EXPECT_TRUE(only_problem(parse_config(with("    reconcile_tolerance: 1\n"), kPath), 10, 5,
                           "reconciles with no daily job"));
}

}  // namespace
}  // namespace gio::config
