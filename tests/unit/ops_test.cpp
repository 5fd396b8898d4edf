#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "ops/exporter_metrics.hpp"
#include "ops/hook_process.hpp"
#include "ops/hooks.hpp"
#include "ops/logging.hpp"
#include "ops/process_metrics.hpp"
#include "ops/registry.hpp"
#include "ops/server.hpp"

namespace gio::ops {
namespace {

// 2026-11-22T03:41:07.123Z
const std::chrono::system_clock::time_point kLogTime =
    std::chrono::system_clock::time_point{std::chrono::milliseconds{1795318867123}};

TEST(Logfmt, LeavesPlainValuesBareAndQuotesTheRest) {
  EXPECT_EQ(logfmt_value("shop-hourly"), "shop-hourly");
  EXPECT_EQ(logfmt_value("2026-11-22T03:00:00Z"), "2026-11-22T03:00:00Z");
  EXPECT_EQ(logfmt_value("数据"), "数据");  // UTF-8 is text, not a control character
  EXPECT_EQ(logfmt_value(""), "\"\"");
  EXPECT_EQ(logfmt_value("two words"), "\"two words\"");
  EXPECT_EQ(logfmt_value("a=b"), "\"a=b\"");
  EXPECT_EQ(logfmt_value("say \"hi\""), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(logfmt_value("back\\slash"), "\"back\\\\slash\"");
  EXPECT_EQ(logfmt_value("tab\tline\nreturn\r"), "\"tab\\tline\\nreturn\\r\"");
  EXPECT_EQ(logfmt_value(std::string_view{"nul\0bell\x07"
                                          "del\x7f",
                                          13}),
            "\"nul\\u0000bell\\u0007del\\u007f\"");
}

TEST(Logfmt, ApiTextCannotForgeAFieldOrALine) {
  // An error message from the vendor that looks like fields and a second line.
  const std::string evil = "oops\" level=info event=slot_done\nts=x level=error msg=forged";
  const std::string line = format_line({}, Level::warning, kLogTime, "slot retried later",
                                       {{"event", "slot_retry"}, {"reason", evil}});
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line,
            "ts=2026-11-22T03:41:07.123Z level=warning msg=\"slot retried later\" "
            "event=slot_retry reason=\"oops\\\" level=info event=slot_done\\nts=x "
            "level=error msg=forged\"");
}

TEST(Logfmt, TextLinesStartWithTimeLevelAndMessage) {
  const Fields fields{{"event", "slot_done"},
                      {"job", "shop"},
                      {"files", std::size_t{5}},
                      {"bytes", std::uint64_t{291705}},
                      {"attempt", -1},
                      {"ratio", 0.5},
                      {"final", true}};
  EXPECT_EQ(format_line({}, Level::info, kLogTime, "slot archived", fields),
            "ts=2026-11-22T03:41:07.123Z level=info msg=\"slot archived\" event=slot_done "
            "job=shop files=5 bytes=291705 attempt=-1 ratio=0.5 final=true");
  // A plain message with no fields is still a whole logfmt line.
  EXPECT_EQ(format_line({}, Level::error, kLogTime, "stopped", {}),
            "ts=2026-11-22T03:41:07.123Z level=error msg=stopped");
  // The journal stamps lines itself and reads the priority from the prefix.
  EXPECT_EQ(format_line({.journal = true}, Level::warning, kLogTime, "x y", {{"event", "e"}}),
            "<4>level=warning msg=\"x y\" event=e");
  EXPECT_EQ(format_line({.journal = true}, Level::debug, kLogTime, "d", {}),
            "<7>level=debug msg=d");
}

TEST(Logfmt, JsonLinesKeepTheTypesOfTheirValues) {
  const Fields fields{{"event", "slot_done"},
                      {"job", "123"},
                      {"files", 5},
                      {"bytes", std::uint64_t{18446744073709551615ULL}},
                      {"ratio", 0.25},
                      {"final", false},
                      {"reason", "a \"b\"\n"},
                      {"ts", "forged"}};
  const std::string line = format_line({.json = true}, Level::warning, kLogTime, "m", fields);
  const boost::json::object record = boost::json::parse(line).as_object();
  EXPECT_EQ(record.at("ts").as_string(), "2026-11-22T03:41:07.123Z");  // not the field
  EXPECT_EQ(record.at("level").as_string(), "warning");
  EXPECT_EQ(record.at("msg").as_string(), "m");
  EXPECT_EQ(record.at("event").as_string(), "slot_done");
  EXPECT_EQ(record.at("job").as_string(), "123");  // a string that looks like a number
  EXPECT_EQ(record.at("files").as_int64(), 5);
  EXPECT_EQ(record.at("bytes").as_uint64(), 18446744073709551615ULL);
  EXPECT_EQ(record.at("ratio").as_double(), 0.25);
  EXPECT_EQ(record.at("final").as_bool(), false);
  EXPECT_EQ(record.at("reason").as_string(), "a \"b\"\n");
  EXPECT_EQ(
      format_line({.journal = true, .json = true}, Level::error, kLogTime, "m", {}).substr(0, 4),
      "<3>{");
}

TEST(Registry, WritesTheTextFormatWithEscapedLabels) {
  Registry registry;
  // Declared out of order: the text is sorted by family, then by labels.
  registry.declare("gio_exporter_slots", Kind::gauge, "Slots by state");
  registry.declare("gio_exporter_api_requests_total", Kind::counter, "API calls by \"code\"");
  registry.declare("gio_exporter_unused_total", Kind::counter, "never counted");
  registry.add("gio_exporter_api_requests_total", {{"project", "shop"}, {"code", "200"}});
  registry.add("gio_exporter_api_requests_total", {{"project", "shop"}, {"code", "200"}}, 2);
  registry.add("gio_exporter_api_requests_total", {{"project", "a\"b\\c\nd"}, {"code", "429"}});
  registry.set("gio_exporter_slots", {{"job", "j"}, {"state", "lost"}}, 0.5);
  registry.set("gio_exporter_slots", {{"job", "j"}, {"state", "done"}}, 12);

  EXPECT_EQ(registry.text(),
            "# HELP gio_exporter_api_requests_total API calls by \"code\"\n"
            "# TYPE gio_exporter_api_requests_total counter\n"
            "gio_exporter_api_requests_total{code=\"200\",project=\"shop\"} 3\n"
            "gio_exporter_api_requests_total{code=\"429\",project=\"a\\\"b\\\\c\\nd\"} 1\n"
            "# HELP gio_exporter_slots Slots by state\n"
            "# TYPE gio_exporter_slots gauge\n"
            "gio_exporter_slots{job=\"j\",state=\"done\"} 12\n"
            "gio_exporter_slots{job=\"j\",state=\"lost\"} 0.5\n");
  EXPECT_EQ(
      registry.value("gio_exporter_api_requests_total", {{"project", "shop"}, {"code", "200"}}), 3);
  EXPECT_EQ(registry.value("gio_exporter_api_requests_total", {{"project", "none"}}), 0);
  registry.clear("gio_exporter_slots");
  EXPECT_EQ(registry.text().find("gio_exporter_slots"), std::string::npos);
  registry.set("gio_exporter_slots", {{"job", "j"}, {"state", "done"}}, 1);
  EXPECT_NE(registry.text().find("gio_exporter_slots{job=\"j\",state=\"done\"} 1\n"),
            std::string::npos);
}

TEST(Registry, WritesWholeNumbersWithoutAnExponent) {
  // Unix seconds and byte counts must read back exactly.
  Registry registry;
  registry.declare("gio_exporter_start_time_seconds", Kind::gauge, "start");
  registry.declare("gio_exporter_archived_bytes_total", Kind::counter, "bytes");
  registry.set("gio_exporter_start_time_seconds", {}, 1764601234);
  registry.add("gio_exporter_archived_bytes_total", {}, 1e15);
  const std::string text = registry.text();
  EXPECT_NE(text.find("gio_exporter_start_time_seconds 1764601234\n"), std::string::npos) << text;
  EXPECT_NE(text.find("gio_exporter_archived_bytes_total 1000000000000000\n"), std::string::npos)
      << text;
}

TEST(Registry, RefusesUndeclaredNamesSettingCountersAndUnescapableHelp) {
  Registry registry;
  EXPECT_THROW(registry.add("gio_exporter_typo_total"), std::logic_error);
  EXPECT_THROW(registry.set("gio_exporter_typo", {}, 1), std::logic_error);
  registry.declare("gio_exporter_things_total", Kind::counter, "things");
  EXPECT_THROW(registry.set("gio_exporter_things_total", {}, 1), std::logic_error);
  // prometheus-cpp 1.0 would write these unescaped, breaking the format.
  EXPECT_THROW(registry.declare("gio_exporter_a", Kind::gauge, "two\nlines"), std::logic_error);
  EXPECT_THROW(registry.declare("gio_exporter_b", Kind::gauge, "a \\ b"), std::logic_error);
}

TEST(Registry, AdvancesACounterKeptElsewhereButNeverLowersIt) {
  Registry registry;
  registry.declare("process_cpu_seconds_total", Kind::counter, "cpu");
  registry.declare("process_open_fds", Kind::gauge, "fds");
  registry.advance_to("process_cpu_seconds_total", {}, 1.5);
  registry.advance_to("process_cpu_seconds_total", {}, 2.25);
  EXPECT_EQ(registry.value("process_cpu_seconds_total"), 2.25);
  registry.advance_to("process_cpu_seconds_total", {}, 1);  // a counter never goes down
  EXPECT_EQ(registry.value("process_cpu_seconds_total"), 2.25);
  EXPECT_THROW(registry.advance_to("process_open_fds", {}, 3), std::logic_error);
}

TEST(ExporterMetrics, CountersOfEachJobAndSignedCodeProjectStartAtZero) {
  Registry registry;
  declare_exporter_metrics(registry);
  std::string text = registry.text();
  // Unlabelled counters are there from the declaration on.
  EXPECT_NE(text.find("\ngio_exporter_download_bytes_total 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\ngio_exporter_download_seconds_total 0\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("gio_exporter_slot_failures_total{"), std::string::npos) << text;

  zero_job_counters(registry, "shop-hourly");
  registry.add(kSlotFailures, {{"gio_job", "shop-hourly"}});
  zero_job_counters(registry, "shop-hourly");  // a reload keeps what was counted
  config::Project token_project;
  token_project.name = "shop";
  token_project.auth.token = config::Secret{"t"};
  config::Project signed_project;
  signed_project.name = "web";
  signed_project.auth.client_id = "id";
  zero_project_counters(registry, token_project);
  zero_project_counters(registry, signed_project);
  text = registry.text();
  for (const std::string_view counter : {kArchivedFiles, kArchivedBytes, kSlotsLost, kRetries}) {
    EXPECT_NE(text.find(std::string{counter} + "{gio_job=\"shop-hourly\"} 0\n"), std::string::npos)
        << counter << "\n"
        << text;
  }
  EXPECT_NE(text.find("gio_exporter_slot_failures_total{gio_job=\"shop-hourly\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("gio_exporter_auth_refreshes_total{project=\"web\"} 0\n"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("gio_exporter_auth_refreshes_total{project=\"shop\"}"), std::string::npos)
      << text;
}

TEST(ExporterMetrics, AFailedLoadKeepsTheLastSuccessTime) {
  Registry registry;
  declare_exporter_metrics(registry);
  record_config_load(registry, true, 1000);
  EXPECT_EQ(registry.value(kReloadSuccessful), 1);
  EXPECT_EQ(registry.value(kReloadSuccessTime), 1000);
  record_config_load(registry, false, 2000);
  EXPECT_EQ(registry.value(kReloadSuccessful), 0);
  EXPECT_EQ(registry.value(kReloadSuccessTime), 1000);
  record_config_load(registry, true, 3000);
  EXPECT_EQ(registry.value(kReloadSuccessful), 1);
  EXPECT_EQ(registry.value(kReloadSuccessTime), 3000);
}

TEST(ProcessMetrics, ParsesProcStatPastACommandNameWithSpacesAndParentheses) {
  // Fields 3 to 24 of proc(5); utime 250 and stime 50 ticks, starttime 12345 ticks,
  // vsize 104857600 bytes, rss 2560 pages.
  const std::string stat =
      "4242 (gio (x) exporter) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 3 0 "
      "12345 104857600 2560 18446744073709551615 1 1 0 0 0\n";
  const auto parsed = parse_proc_stat(stat, 100, 4096);
  ASSERT_TRUE(parsed);
  EXPECT_DOUBLE_EQ(parsed->cpu_seconds, 3.0);
  EXPECT_DOUBLE_EQ(parsed->virtual_bytes, 104857600.0);
  EXPECT_DOUBLE_EQ(parsed->resident_bytes, 2560.0 * 4096);
  EXPECT_DOUBLE_EQ(parsed->start_after_boot_s, 123.45);
  EXPECT_FALSE(parse_proc_stat("4242 (cut short) S 1 2 3", 100, 4096));
  EXPECT_FALSE(parse_proc_stat("no name here", 100, 4096));
}

TEST(ProcessMetrics, BootTimeAgreesWithTheKernels) {
  // The unit hides /proc/stat; where it is readable, its btime is the reference.
  std::ifstream proc_stat{"/proc/stat"};
  std::string line;
  while (std::getline(proc_stat, line) && !line.starts_with("btime ")) {
  }
  if (!line.starts_with("btime ")) {
    GTEST_SKIP() << "no btime in /proc/stat here";
  }
  EXPECT_NEAR(boot_time_seconds(), std::stod(line.substr(6)), 1.0);
}

TEST(ProcessMetrics, ReadsThisProcessFromProc) {
  Registry registry;
  declare_process_metrics(registry);
  update_process_metrics(registry);
  EXPECT_GT(registry.value("process_resident_memory_bytes"), 0);
  EXPECT_GE(registry.value("process_virtual_memory_bytes"),
            registry.value("process_resident_memory_bytes"));
  EXPECT_GE(registry.value("process_open_fds"), 3);  // stdin, stdout, stderr at least
  EXPECT_GE(registry.value("process_max_fds"), registry.value("process_open_fds"));
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(registry.value("process_start_time_seconds"), now + 1);
  EXPECT_GT(registry.value("process_start_time_seconds"), now - 3600);
  // CPU time grows: burn 50 ms of it (CPU time, so a busy machine cannot shorten it),
  // and read again.
  const double before = registry.value("process_cpu_seconds_total");
  volatile double sink = 0;
  for (const std::clock_t until = std::clock() + CLOCKS_PER_SEC / 20; std::clock() < until;) {
    sink = sink + 1;
  }
  update_process_metrics(registry);
  EXPECT_GT(registry.value("process_cpu_seconds_total"), before);
}

// Sends raw bytes to the server and returns everything it answers until it closes.
std::string talk(boost::asio::ip::tcp::endpoint endpoint, const std::string& request) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket{io};
  socket.connect(endpoint);
  boost::system::error_code error;  // the server may close before it has read it all
  boost::asio::write(socket, boost::asio::buffer(request), error);
  std::string answer;
  boost::asio::read(socket, boost::asio::dynamic_buffer(answer), error);
  return answer;
}

class ServerTest : public ::testing::Test {
 protected:
  ServerTest()
      : server_(io_.get_executor(), "127.0.0.1:0", [this](const Request& request) {
          seen_ = std::string{request.path};
          seen_query_ = std::string{request.query};
          if (request.path == "/metrics") {
            return Reply{.body = "up 1\n"};
          }
          if (request.path == "/shared") {
            return Reply{.content_type = "application/json",
                         .shared_body = shared_,
                         .headers = {{"Cache-Control", "no-store"}, {"X-Test", "a b"}}};
          }
          return Reply{.status = 404, .body = "not found\n"};
        }) {
    boost::asio::co_spawn(io_, server_.run(), boost::asio::detached);
    thread_ = std::thread{[this] { io_.run(); }};
  }
  ~ServerTest() override {
    io_.stop();
    thread_.join();
  }

  boost::asio::io_context io_;
  std::string seen_;
  std::string seen_query_;
  const std::shared_ptr<const std::string> shared_ =
      std::make_shared<const std::string>(R"({"a":1})");
  Server server_;
  std::thread thread_;
};

TEST_F(ServerTest, AnswersGetAndHeadThroughTheHandler) {
  const auto endpoint = server_.local_endpoint();
  const std::string get =
      talk(endpoint, "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(get.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_NE(get.find("Content-Length: 5\r\n"), std::string::npos) << get;
  EXPECT_EQ(get.substr(get.size() - 5), "up 1\n");
  EXPECT_EQ(seen_, "/metrics");   // the query is not part of the path
  EXPECT_EQ(seen_query_, "x=1");  // but the handler has it, raw

  const std::string head =
      talk(endpoint, "HEAD /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_NE(head.find("Content-Length: 5\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");  // no body

  const std::string missing =
      talk(endpoint, "GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(missing.substr(0, 12), "HTTP/1.1 404");
}

TEST_F(ServerTest, SendsTheHandlersHeadersAndSharedBody) {
  const auto endpoint = server_.local_endpoint();
  const std::string get = talk(
      endpoint, "GET /shared?job=a%20b&from= HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(seen_query_, "job=a%20b&from=");
  EXPECT_NE(get.find("Content-Type: application/json\r\n"), std::string::npos) << get;
  EXPECT_NE(get.find("Cache-Control: no-store\r\n"), std::string::npos) << get;
  EXPECT_NE(get.find("X-Test: a b\r\n"), std::string::npos) << get;
  EXPECT_NE(get.find("Content-Length: 7\r\n"), std::string::npos) << get;
  EXPECT_EQ(get.substr(get.size() - 7), R"({"a":1})");
  const std::string head =
      talk(endpoint, "HEAD /shared HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(seen_query_, "");
  EXPECT_NE(head.find("Content-Length: 7\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("X-Test: a b\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");
  EXPECT_EQ(*shared_, R"({"a":1})");  // sent, not moved from
}

TEST_F(ServerTest, RefusesOtherMethodsBodiesAndHugeHeaders) {
  const auto endpoint = server_.local_endpoint();
  const std::string post =
      talk(endpoint, "DELETE /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(post.substr(0, 12), "HTTP/1.1 405");
  // A header block past the limit ends the connection without an answer.
  const std::string flood =
      talk(endpoint, "GET /metrics HTTP/1.1\r\nX: " + std::string(64 * 1024, 'a') + "\r\n\r\n");
  EXPECT_EQ(flood, "");
  // A request with a body is not one a scraper sends.
  const std::string body =
      talk(endpoint, "GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd");
  EXPECT_EQ(body, "");
}

TEST(Server, NamesTheAddressItCannotBind) {
  boost::asio::io_context io;
  Server first{io.get_executor(), "127.0.0.1:0", [](const Request&) { return Reply{}; }};
  const std::string taken = "127.0.0.1:" + std::to_string(first.local_endpoint().port());
  try {
    Server second{io.get_executor(), taken, [](const Request&) { return Reply{}; }};
    FAIL() << "bound twice";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string{error.what()}.find(taken), std::string::npos) << error.what();
    EXPECT_NE(std::string{error.what()}.find("in use"), std::string::npos) << error.what();
  }
}

// Runs `body` on a fresh io_context until it and everything it started have finished.
void run_hooks(const std::function<boost::asio::awaitable<void>(HookRunner&)>& body) {
  boost::asio::io_context io;
  HookRunner hooks{io.get_executor()};
  bool finished = false;
  boost::asio::co_spawn(io, body(hooks), [&](std::exception_ptr error) {
    finished = true;
    if (error) {
      std::rethrow_exception(error);
    }
  });
  io.run();
  EXPECT_TRUE(finished);
}

std::string read_all(const std::string& path) {
  std::ifstream in{path};
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(HookRunner, RunsEveryHookWithItsVariablesAFewAtATime) {
  const std::string log = ::testing::TempDir() + "ops_test_hooks.log";
  std::remove(log.c_str());
  run_hooks([&](HookRunner& hooks) -> boost::asio::awaitable<void> {
    for (int i = 0; i < 6; ++i) {
      hooks.run("echo start $GIO_SLOT >> " + log + "; sleep 0.2; echo end >> " + log,
                std::chrono::seconds{10}, {{"GIO_SLOT", std::to_string(i)}});
    }
    hooks.run("", std::chrono::seconds{10}, {});  // no command: nothing runs
    co_await hooks.wait();
  });
  std::istringstream lines{read_all(log)};
  int running = 0;
  int most = 0;
  int started = 0;
  std::string word;
  std::string slot;
  while (lines >> word) {
    if (word == "start") {
      lines >> slot;
      ++started;
      most = std::max(most, ++running);
    } else {
      --running;
    }
  }
  EXPECT_EQ(started, 6);
  EXPECT_EQ(running, 0);  // wait() returned after every hook ended
  EXPECT_EQ(most, 4);     // the limit, reached
}

TEST(HookRunner, KillsAHookThatOutlivesItsTimeout) {
  const auto start = std::chrono::steady_clock::now();
  run_hooks([&](HookRunner& hooks) -> boost::asio::awaitable<void> {
    hooks.run("sleep 30 & sleep 30", std::chrono::seconds{1}, {{"GIO_EVENT", "slot_done"}});
    co_await hooks.wait();
  });
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds{10});
}

// True while `pid` runs; a zombie waiting for its reaper has ended.
bool process_alive(pid_t pid) {
  std::ifstream stat{"/proc/" + std::to_string(pid) + "/stat"};
  std::string text;
  if (!std::getline(stat, text)) {
    return false;
  }
  const auto close = text.rfind(')');
  return close != std::string::npos && text.size() > close + 2 && text[close + 2] != 'Z';
}

TEST(HookRunner, GivesAHookOnlyItsVariablesAndPathHomeLang) {
  const std::string out = ::testing::TempDir() + "ops_test_hook_env.txt";
  std::remove(out.c_str());
  ::setenv("GIO_TOKEN", "token-secret", 1);
  ::setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
  ::setenv("CREDENTIALS_DIRECTORY", "/run/credentials/gio", 1);
  ::setenv("GIO_SLOT_START", "the daemon's own", 1);
  ::setenv("LANG", "C.UTF-8", 1);
  ::setenv("HOME", "/var/lib/gio-exporter", 1);
  run_hooks([&](HookRunner& hooks) -> boost::asio::awaitable<void> {
    hooks.run("env > " + out, std::chrono::seconds{10},
              {{"GIO_EVENT", "slot_done"}, {"GIO_SLOT", "2026-11-22T03"}, {"NOT_DOCUMENTED", "x"}});
    co_await hooks.wait();
  });
  for (const char* name :
       {"GIO_TOKEN", "NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY", "GIO_SLOT_START", "LANG", "HOME"}) {
    ::unsetenv(name);
  }
  std::istringstream lines{read_all(out)};
  std::set<std::string> names;
  for (std::string line; std::getline(lines, line);) {
    names.insert(line.substr(0, line.find('=')));
    EXPECT_EQ(line.find("secret"), std::string::npos) << line;
  }
  names.erase("PWD");  // /bin/sh's own
  EXPECT_EQ(names, (std::set<std::string>{"GIO_EVENT", "GIO_SLOT", "HOME", "LANG", "PATH"}));
}

TEST(HookRunner, AHookInheritsNoDescriptorOfTheDaemon) {
  const std::string out = ::testing::TempDir() + "ops_test_hook_fds.txt";
  std::remove(out.c_str());
  // A descriptor opened without O_CLOEXEC (by a library, say) still stays out of hooks.
  const int leaky = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaky, 3);
  run_hooks([&](HookRunner& hooks) -> boost::asio::awaitable<void> {
    hooks.run(
        "exec python3 -c \"import os; fds = os.listdir('/proc/self/fd'); "
        "open('" +
            out + "', 'w').write(' '.join(sorted(fds)))\"",
        std::chrono::seconds{10}, {});
    co_await hooks.wait();
  });
  ::close(leaky);
  EXPECT_EQ(read_all(out), "0 1 2 3");  // 3 is the listing's own
}

TEST(HookRunner, KillsTheChildrenAHookLeftBehindAtItsTimeout) {
  const std::string out = ::testing::TempDir() + "ops_test_hook_child.txt";
  std::remove(out.c_str());
  const auto start = std::chrono::steady_clock::now();
  run_hooks([&](HookRunner& hooks) -> boost::asio::awaitable<void> {
    hooks.run("sleep 1000 >/dev/null 2>&1 & echo $! > " + out, std::chrono::seconds{1}, {});
    co_await hooks.wait();
  });
  const pid_t child = std::stoi(read_all(out));
  for (int i = 0; i < 20 && process_alive(child); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  const bool survived = process_alive(child);
  if (survived) {
    ::kill(child, SIGKILL);
  }
  EXPECT_FALSE(survived);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds{5});
}

TEST(HookEnvironment, HoldsPathHomeLangAndTheDocumentedVariablesOnly) {
  std::string entries[] = {"GIO_TOKEN=secret",
                           "PATH=/usr/bin:/bin",
                           "PATHS=no",
                           "LANG=C.UTF-8",
                           "LC_ALL=C",
                           "HOME=/var/lib/gio-exporter",
                           "GIO_JOB=the daemon's",
                           "NOTIFY_SOCKET=/run/systemd/notify",
                           "HOME"};
  std::vector<char*> parent;
  for (std::string& entry : entries) {
    parent.push_back(entry.data());
  }
  parent.push_back(nullptr);
  const std::vector<std::string> environment = hook_environment(
      {{"GIO_EVENT", "slot_failed"}, {"GIO_JOB", "shop"}, {"GIO_REASON", "a\nb"}, {"PATH", "/x"}},
      parent.data());
  EXPECT_EQ(environment, (std::vector<std::string>{
                             "PATH=/usr/bin:/bin", "HOME=/var/lib/gio-exporter", "LANG=C.UTF-8",
                             "GIO_EVENT=slot_failed", "GIO_JOB=shop", "GIO_REASON=a\nb"}));
  EXPECT_EQ(hook_environment({}, nullptr), std::vector<std::string>{});
}

TEST(HookOutput, KeepsTextAndReplacesWhatIsNot) {
  EXPECT_EQ(hook_output_text("done\n"), "done");
  EXPECT_EQ(hook_output_text("a\nb\r\n\x1b[31m\t"), "a\nb\r\n\x1b[31m\t");  // the formatter escapes
  EXPECT_EQ(hook_output_text("数据 ok"), "数据 ok");
  EXPECT_EQ(hook_output_text("\xff\xfe"), "\uFFFD\uFFFD");
  EXPECT_EQ(hook_output_text("\xC0\xAF"), "\uFFFD\uFFFD");            // overlong '/'
  EXPECT_EQ(hook_output_text("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // a surrogate
  EXPECT_EQ(hook_output_text("\xE6\x95"), "\uFFFD\uFFFD");            // cut off
  EXPECT_EQ(hook_output_text("a\xC2\x9B"
                             "b\xE2\x80\xA8"
                             "c"),
            "a\uFFFDb\uFFFDc");  // CSI, LS
  EXPECT_EQ(hook_output_text("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
}

TEST(HookOutput, KeepsTheFirstBytesAndCountsTheRest) {
  HookOutput output;
  output.add(std::string(3000, 'a'));
  output.add(std::string(3000, 'b'));
  output.add("");
  EXPECT_EQ(output.total(), 6000u);
  EXPECT_EQ(output.dropped(), 6000u - HookOutput::kMaxBytes);
  EXPECT_EQ(output.text(), std::string(3000, 'a') + std::string(HookOutput::kMaxBytes - 3000, 'b'));
}

TEST(HookRunner, LogsWhatAHookPrintsInOneFieldOfOneLine) {
  const std::string out = ::testing::TempDir() + "ops_test_hook_output.txt";
  std::remove(out.c_str());
  run_hooks([&](HookRunner& hooks) -> boost::asio::awaitable<void> {
    // 1 MB through a 64 KiB pipe: the hook ends only if the daemon keeps reading.
    hooks.run(
        "printf 'one\\nlevel=error msg=forged\\n'; head -c 1048576 /dev/zero; echo end > " + out,
        std::chrono::seconds{10}, {{"GIO_EVENT", "slot_done"}});
    co_await hooks.wait();
  });
  EXPECT_EQ(read_all(out), "end\n");
  EXPECT_EQ(end_running_hooks(), 0u);  // none left running
}

TEST(HookRunner, TheDaemonsStopEndsEveryHookGroupTermThenKill) {
  const std::string out = ::testing::TempDir() + "ops_test_hook_stop.txt";
  std::remove(out.c_str());
  boost::asio::io_context io;
  HookRunner hooks{io.get_executor()};
  hooks.run("(trap '' TERM; exec sleep 30) & echo $! > " + out + "; sleep 30",
            std::chrono::seconds{2}, {});
  io.run_for(std::chrono::milliseconds{500});  // the loop stops with the hook running
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(end_running_hooks(), 1u);
  const auto took = std::chrono::steady_clock::now() - start;
  const pid_t child = std::stoi(read_all(out));
  const bool survived = process_alive(child);
  if (survived) {
    ::kill(child, SIGKILL);
  }
  EXPECT_FALSE(survived);
  // The child ignores SIGTERM: it took the grace, min(5 s, hook_timeout), then SIGKILL.
  EXPECT_GE(took, std::chrono::milliseconds{1900});
  EXPECT_LT(took, std::chrono::seconds{4});
}

}  // namespace
}  // namespace gio::ops
