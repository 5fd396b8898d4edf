// Each kind of slot work driven alone against a scripted server, asserting on the
// Outcome it returns: no scheduler, no state store (an in-memory Ledger), a real
// archive in a temporary folder, real HTTP, real downloads and verification.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <zlib.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "support/files.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"
#include "work/slot_work.hpp"

namespace gio::work {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using test::gzip_member;
using test::read_file;
using test::reply;
using test::Reply;
using test::TestServer;

// The slot's record, kept in memory.
class MemoryLedger final : public Ledger {
 public:
  std::vector<RecordedFile> recorded() override { return files; }
  void record(const RecordedFile& file) override { files.push_back(file); }
  void downloading(std::string_view api_status) override {
    downloading_status = std::string{api_status};
  }
  std::vector<RecordedFile> files;
  std::string downloading_status;  // "" until the pass marks the slot downloading
};

// What downloads told the log.
class Events final : public Observer {
 public:
  void archived(const config::Job&, std::size_t files, std::uint64_t bytes) override {
    archived_files += files;
    archived_bytes += bytes;
  }
  void downloaded(std::uint64_t, std::chrono::duration<double>) override { ++downloads; }
  void chart_capped(const config::Job&, const Slot&, std::string_view chart_id,
                    std::size_t rows) override {
    seen.push_back("capped " + std::string{chart_id} + " " + std::to_string(rows));
  }
  void paused(const std::string& reason, std::chrono::seconds) override {
    seen.push_back("paused: " + reason);
  }
  void resumed(const config::Job&, const Slot&) override { seen.push_back("resumed"); }
  void part_failed(const config::Job&, const Slot&, std::string_view name, int attempt, int,
                   const std::string&) override {
    seen.push_back("part_failed " + std::string{name} + " " + std::to_string(attempt));
  }
  void links_expired(const config::Job&, const Slot&) override { seen.push_back("links_expired"); }
  void unknown_data_type(const config::Job&, const Slot&, std::string_view type) override {
    seen.push_back("unknown_type " + std::string{type});
  }
  void duplicate_part(const config::Job&, const Slot&, std::string_view type, std::string_view name,
                      std::string_view same_as) override {
    seen.push_back("duplicate " + std::string{type} + "/" + std::string{name} + " " +
                   std::string{same_as});
  }
  std::vector<std::string> seen;
  std::size_t archived_files = 0;
  std::uint64_t archived_bytes = 0;
  int downloads = 0;
};

// A vendor: API answers from `api`, files from `files` (by path; 404 when unknown).
struct Vendor {
  std::function<Reply(const std::string& target)> api;
  std::map<std::string, Reply> files;
  std::mutex mutex;
  std::vector<std::string> asked;  // API targets, in order

  Reply answer(const std::string& target) {
    std::lock_guard lock{mutex};
    if (target.starts_with("/files/")) {
      // By path: the query only signs the link.
      const auto found = files.find(target.substr(0, target.find('?')));
      return found == files.end() ? reply(404, "no such file") : found->second;
    }
    asked.push_back(target);
    return api(target);
  }
};

class Work : public ::testing::Test {
 protected:
  Work() {
    project_.name = "shop";
    project_.ai = "ai-1";
    project_.project_uid = "pUid1";
    project_.auth.token = config::Secret{"test-token"};
    job_.name = "shop-hourly";
    job_.project = "shop";
    job_.granularity = Granularity::hour;
    job_.settings = config::RawJob{};
  }

  std::string link(const std::string& path) const { return server_.url("/files/" + path); }

  // Runs one pass of `job_` on `slot_` to its end.
  Outcome run_pass() {
    asio::io_context io;
    http::Settings settings;
    settings.timeout = std::chrono::seconds{5};
    http::Client http{io.get_executor(), settings};
    api::RateLimiter limiter{io.get_executor(), 1000.0};
    api::Client api{http, server_.url(""), project_, limiter, clock_, nullptr};
    download::Downloader downloader{http, pool_};
    Downloads downloads{io.get_executor(), downloader, archive_, clock_, 2, events_};
    const SlotWork work{.job = job_,
                        .project = project_,
                        .slot = slot_,
                        .api = api,
                        .turn = {},
                        .ledger = ledger_,
                        .archive = archive_,
                        .clock = clock_,
                        .downloads = downloads,
                        .observer = events_};
    auto done = asio::co_spawn(io, run(work), asio::use_future);
    io.run();
    return done.get();
  }

  fs::path partition(const std::string& type) const {
    return archive_.partition_dir(job_.name, type, slot_);
  }

  static std::string finished(const std::map<std::string, std::vector<std::string>>& links) {
    std::string body = R"({"status":"FINISHED","errorMsg":"","downloadLinks":{)";
    bool first_type = true;
    for (const auto& [type, urls] : links) {
      body += std::string{first_type ? "" : ","} + "\"" + type + "\":[";
      for (std::size_t i = 0; i < urls.size(); ++i) {
        body += std::string{i == 0 ? "" : ","} + "\"" + urls[i] + "\"";
      }
      body += "]";
      first_type = false;
    }
    return body + "}}";
  }

  testing::TempDir dir_;
  archive::Archive archive_{dir_.path() / "archive"};
  asio::thread_pool pool_{1};
  ManualClock clock_{Instant{std::chrono::seconds{1'795'000'000}}};
  Vendor vendor_;
  TestServer server_{
      [this](const std::string& target, const std::string&) { return vendor_.answer(target); }};
  config::Project project_;
  config::Job job_;
  Slot slot_ = *Slot::parse("2026-11-22T03", Granularity::hour);
  MemoryLedger ledger_;
  Events events_;
  const std::string visit_ = gzip_member("visit rows\n1,2,3\n");
  const std::string page_ = gzip_member("page rows\n4,5,6\n");
};

TEST_F(Work, RawFinishedArchivesEveryPartAndCompletesThePartitions) {
  vendor_.files["/files/v1.csv.gz"] = reply(200, visit_);
  vendor_.files["/files/p1.csv.gz"] = reply(200, page_);
  vendor_.api = [&](const std::string&) {
    return reply(200, finished({{"visit", {link("v1.csv.gz")}}, {"page", {link("p1.csv.gz")}}}));
  };
  const Outcome outcome = run_pass();
  const auto* done = std::get_if<Done>(&outcome.result);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->files, 2u);
  EXPECT_EQ(done->bytes, visit_.size() + page_.size());
  EXPECT_EQ(outcome.progress.archived_files, 2u);
  EXPECT_TRUE(outcome.progress.asked);
  EXPECT_EQ(ledger_.downloading_status, "FINISHED");
  EXPECT_EQ(ledger_.files.size(), 2u);
  EXPECT_EQ(read_file(partition("visit") / "v1.csv.gz"), visit_);
  EXPECT_EQ(read_file(partition("page") / "p1.csv.gz"), page_);
  EXPECT_TRUE(archive_.is_complete(job_.name, "visit", slot_));
  EXPECT_TRUE(archive_.is_complete(job_.name, "page", slot_));
}

// A daily raw part is split by the Beijing hour of `time` within its own date only: an
// event timed on the day before or after is a row of the part but in none of its hours.
TEST_F(Work, DailyRawPartsSplitOnlyTheSlotsDateIntoHours) {
  job_.granularity = Granularity::day;
  slot_ = *Slot::parse("2026-11-22", Granularity::day);  // [1795276800000, 1795363200000) ms
  vendor_.files["/files/d1.csv.gz"] = reply(
      200, gzip_member("time,x\n1795276799999,before\n1795276800000,h0\n1795363200000,after\n"));
  vendor_.api = [&](const std::string&) {
    return reply(200, finished({{"visit", {link("d1.csv.gz")}}}));
  };
  const Outcome outcome = run_pass();
  ASSERT_NE(std::get_if<Done>(&outcome.result), nullptr);
  ASSERT_EQ(ledger_.files.size(), 1u);
  const archive::ManifestFile& file = ledger_.files[0].file;
  EXPECT_EQ(file.rows, 3u);
  std::vector<std::uint64_t> hours(24, 0);
  hours[0] = 1;
  EXPECT_EQ(file.rows_by_hour, hours);
}

TEST_F(Work, RawRunningAndNotExistsWait) {
  vendor_.api = [](const std::string&) { return reply(200, R"({"status":"RUNNING"})"); };
  Outcome outcome = run_pass();
  auto* wait = std::get_if<Wait>(&outcome.result);
  ASSERT_NE(wait, nullptr);
  EXPECT_EQ(wait->api_status, "RUNNING");
  EXPECT_FALSE(wait->not_exists);

  vendor_.api = [](const std::string&) { return reply(200, R"({"status":"NOT_EXISTS"})"); };
  outcome = run_pass();
  wait = std::get_if<Wait>(&outcome.result);
  ASSERT_NE(wait, nullptr);
  EXPECT_EQ(wait->api_status, "NOT_EXISTS");
  EXPECT_TRUE(wait->not_exists);
  EXPECT_EQ(ledger_.downloading_status, "");
}

TEST_F(Work, RawErrorIsAnExportFailureAskedAgainAtTheNextPoll) {
  vendor_.api = [](const std::string&) {
    return reply(200, R"({"status":"ERROR","errorMsg":"disk on fire"})");
  };
  const Outcome outcome = run_pass();
  const auto* retry = std::get_if<Retry>(&outcome.result);
  ASSERT_NE(retry, nullptr);
  EXPECT_EQ(retry->kind, RetryClass::export_failed);
  EXPECT_EQ(retry->api_status, "ERROR");
  EXPECT_EQ(retry->reason, "the export failed (ERROR: disk on fire)");
}

TEST_F(Work, ApiFailuresAreRetriedOrFailedByTheirClass) {
  vendor_.api = [](const std::string&) { return reply(503, "busy", {"Retry-After: 7"}); };
  Outcome outcome = run_pass();
  const auto* retry = std::get_if<Retry>(&outcome.result);
  ASSERT_NE(retry, nullptr);
  EXPECT_EQ(retry->kind, RetryClass::transient);

  vendor_.api = [](const std::string&) { return reply(401, "who are you"); };
  outcome = run_pass();
  const auto* failed = std::get_if<Failed>(&outcome.result);
  ASSERT_NE(failed, nullptr);
  EXPECT_EQ(failed->reason.find("test-token"), std::string::npos);
}

TEST_F(Work, ExpiredLinksEndThePassForFreshOnesAndTheNextCompletes) {
  vendor_.files["/files/old.csv.gz"] = reply(403, "expired");
  vendor_.files["/files/new.csv.gz"] = reply(200, visit_);
  int answers = 0;
  vendor_.api = [&](const std::string&) {
    ++answers;
    return reply(200, finished({{"visit", {link(answers == 1 ? "old.csv.gz" : "new.csv.gz")}}}));
  };
  const Outcome first = run_pass();
  const auto* retry = std::get_if<Retry>(&first.result);
  ASSERT_NE(retry, nullptr);
  EXPECT_EQ(retry->kind, RetryClass::links_expired);
  EXPECT_NE(retry->reason.find("old.csv.gz"), std::string::npos) << retry->reason;
  EXPECT_EQ(ledger_.downloading_status, "FINISHED");
  EXPECT_NE(std::find(events_.seen.begin(), events_.seen.end(), "links_expired"),
            events_.seen.end());

  const Outcome second = run_pass();
  const auto* done = std::get_if<Done>(&second.result);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(answers, 2);
  EXPECT_EQ(done->files, 1u);
  EXPECT_EQ(read_file(partition("visit") / "new.csv.gz"), visit_);
  EXPECT_FALSE(fs::exists(partition("visit") / "old.csv.gz"));
  EXPECT_EQ(events_.archived_files, 1u);
  EXPECT_EQ(events_.archived_bytes, visit_.size());
  EXPECT_EQ(events_.downloads, 1);
}

TEST_F(Work, OnePartFailingKeepsTheOthersAndLeavesThePartitionOpen) {
  vendor_.files["/files/v1.csv.gz"] = reply(200, visit_);
  vendor_.files["/files/v2.csv.gz"] = reply(500, "broken");
  vendor_.api = [&](const std::string&) {
    return reply(200, finished({{"visit", {link("v1.csv.gz"), link("v2.csv.gz")}}}));
  };
  const Outcome outcome = run_pass();
  const auto* retry = std::get_if<Retry>(&outcome.result);
  ASSERT_NE(retry, nullptr);
  EXPECT_EQ(retry->kind, RetryClass::transient);
  EXPECT_NE(retry->reason.find("1 part(s) not archived"), std::string::npos) << retry->reason;
  EXPECT_NE(retry->reason.find("v2.csv.gz"), std::string::npos) << retry->reason;
  ASSERT_EQ(ledger_.files.size(), 1u);
  EXPECT_EQ(ledger_.files[0].file.name, "v1.csv.gz");
  EXPECT_EQ(read_file(partition("visit") / "v1.csv.gz"), visit_);
  EXPECT_FALSE(archive_.is_complete(job_.name, "visit", slot_));

  // The next pass fetches only the missing part, then completes the partition.
  vendor_.files["/files/v2.csv.gz"] = reply(200, page_);
  vendor_.files["/files/v1.csv.gz"] = reply(500, "must not be fetched again");
  const Outcome second = run_pass();
  const auto* done = std::get_if<Done>(&second.result);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->files, 2u);
  EXPECT_EQ(second.progress.archived_files, 1u);
  EXPECT_TRUE(archive_.is_complete(job_.name, "visit", slot_));
}

TEST_F(Work, ALocalWriteFailurePausesDownloadsAndRetries) {
  vendor_.files["/files/v1.csv.gz"] = reply(200, visit_);
  vendor_.api = [&](const std::string&) {
    return reply(200, finished({{"visit", {link("v1.csv.gz")}}}));
  };
  // A file-size limit below the part's size: the staging write fails as on a full disk.
  struct FileSizeLimit {
    rlimit saved{};
    FileSizeLimit() {
      ::signal(SIGXFSZ, SIG_IGN);
      ::getrlimit(RLIMIT_FSIZE, &saved);
      rlimit small = saved;
      small.rlim_cur = 8;
      ::setrlimit(RLIMIT_FSIZE, &small);
    }
    ~FileSizeLimit() { ::setrlimit(RLIMIT_FSIZE, &saved); }
  };
  Outcome outcome;
  {
    FileSizeLimit limit;
    outcome = run_pass();
  }
  const auto* retry = std::get_if<Retry>(&outcome.result);
  ASSERT_NE(retry, nullptr);
  EXPECT_EQ(retry->kind, RetryClass::transient);
  EXPECT_NE(retry->reason.find("local"), std::string::npos) << retry->reason;
  ASSERT_FALSE(events_.seen.empty());
  EXPECT_TRUE(events_.seen.back().starts_with("paused: ") ||
              std::any_of(events_.seen.begin(), events_.seen.end(),
                          [](const std::string& seen) { return seen.starts_with("paused: "); }));
  EXPECT_TRUE(ledger_.files.empty());
  EXPECT_FALSE(fs::exists(partition("visit") / "v1.csv.gz"));
}

TEST_F(Work, RawAnUnsafeDataTypeFailsTheSlot) {
  vendor_.api = [&](const std::string&) { return reply(200, finished({{"Bad Type", {}}})); };
  const Outcome outcome = run_pass();
  const auto* failed = std::get_if<Failed>(&outcome.result);
  ASSERT_NE(failed, nullptr);
  EXPECT_NE(failed->reason.find("not a safe folder name"), std::string::npos);
  EXPECT_NE(failed->reason.find("\"Bad Type\""), std::string::npos) << failed->reason;

  // Named escaped: a name the vendor sends never reaches the log raw.
  vendor_.api = [&](const std::string&) {
    return reply(200, finished({{"..\\u001b[31m/x", {}}, {"visit", {}}}));
  };
  const Outcome hostile = run_pass();
  const auto* refused = std::get_if<Failed>(&hostile.result);
  ASSERT_NE(refused, nullptr);
  EXPECT_NE(refused->reason.find("\"..\\x1b[31m/x\""), std::string::npos) << refused->reason;
  EXPECT_EQ(refused->reason.find('\x1b'), std::string::npos);
  // The types that have a safe name are archived all the same.
  EXPECT_TRUE(archive_.is_complete(job_.name, "visit", slot_));
}

// The partition's files by content, and the manifest's sha256 values: what a reader sees.
std::multiset<std::string> contents_of(const fs::path& partition) {
  std::multiset<std::string> contents;
  for (const auto& entry : fs::directory_iterator{partition}) {
    const std::string name = entry.path().filename().string();
    if (name != archive::kManifestName && name != archive::kSuccessName) {
      contents.insert(read_file(entry.path()));
    }
  }
  return contents;
}

TEST_F(Work, RawLinksReorderedBetweenAnswersAreNeverMixed) {
  // Two objects whose last segments collide, of the same size but other content.
  const std::string a = gzip_member("rows of part A\n1,2,3\n");
  const std::string b = gzip_member("rows of part B\n4,5,6\n");
  ASSERT_EQ(a.size(), b.size());
  vendor_.files["/files/A/x.csv.gz"] = reply(200, a);
  vendor_.files["/files/B/x.csv.gz"] = reply(500, "broken");
  std::vector<std::string> order{link("A/x.csv.gz"), link("B/x.csv.gz")};
  vendor_.api = [&](const std::string&) { return reply(200, finished({{"visit", order}})); };
  ASSERT_TRUE(std::holds_alternative<Retry>(run_pass().result));

  // The next answer lists them the other way round.
  vendor_.files["/files/B/x.csv.gz"] = reply(200, b);
  order = {link("B/x.csv.gz"), link("A/x.csv.gz")};
  const Outcome second = run_pass();
  const auto* done = std::get_if<Done>(&second.result);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->files, 2u);
  // A keeps its name whatever the order of the links: only B is fetched.
  EXPECT_EQ(second.progress.archived_files, 1u);
  EXPECT_EQ(contents_of(partition("visit")), (std::multiset<std::string>{a, b}));
  const auto manifest = archive_.read_manifest(job_.name, "visit", slot_);
  ASSERT_TRUE(manifest.has_value());
  ASSERT_EQ(manifest->files.size(), 2u);
  EXPECT_NE(manifest->files[0].sha256, manifest->files[1].sha256);
  EXPECT_NE(manifest->files[0].name, manifest->files[1].name);
}

TEST_F(Work, RawARerunUnderOtherLinksReplacesThePartsOfTheEarlierAnswer) {
  // A re-run export reuses the file names; its objects are other ones, of the same size.
  const std::string old_x = gzip_member("run 1 rows\n1,2,3\n");
  const std::string new_x = gzip_member("run 2 rows\n7,8,9\n");
  ASSERT_EQ(old_x.size(), new_x.size());
  vendor_.files["/files/run1/x.csv.gz"] = reply(200, old_x);
  vendor_.files["/files/run1/y.csv.gz"] = reply(500, "broken");
  vendor_.files["/files/run2/x.csv.gz"] = reply(200, new_x);
  vendor_.files["/files/run2/y.csv.gz"] = reply(200, page_);
  std::string run = "run1";
  vendor_.api = [&](const std::string&) {
    return reply(200, finished({{"visit", {link(run + "/x.csv.gz"), link(run + "/y.csv.gz")}}}));
  };
  ASSERT_TRUE(std::holds_alternative<Retry>(run_pass().result));
  ASSERT_EQ(read_file(partition("visit") / "x.csv.gz"), old_x);

  run = "run2";
  const Outcome second = run_pass();
  ASSERT_NE(std::get_if<Done>(&second.result), nullptr);
  EXPECT_EQ(read_file(partition("visit") / "x.csv.gz"), new_x);
  EXPECT_EQ(read_file(partition("visit") / "y.csv.gz"), page_);
  EXPECT_EQ(second.progress.archived_files, 2u);
}

TEST_F(Work, RawAResumedPassChecksTheContentOfEachArchivedPartNotOnlyItsSize) {
  vendor_.files["/files/v1.csv.gz"] = reply(200, visit_);
  vendor_.files["/files/v2.csv.gz"] = reply(500, "broken");
  vendor_.api = [&](const std::string&) {
    return reply(200, finished({{"visit", {link("v1.csv.gz"), link("v2.csv.gz")}}}));
  };
  ASSERT_TRUE(std::holds_alternative<Retry>(run_pass().result));
  // What a crash between recording and publishing (or a damaged disk) can leave: a file
  // of the recorded size with other bytes.
  std::string other = visit_;
  other[other.size() / 2] ^= 0x55;
  archive_.publish(archive_.stage_bytes(other), job_.name, "visit", slot_, "v1.csv.gz");

  vendor_.files["/files/v2.csv.gz"] = reply(200, page_);
  const Outcome second = run_pass();
  ASSERT_NE(std::get_if<Done>(&second.result), nullptr);
  EXPECT_EQ(read_file(partition("visit") / "v1.csv.gz"), visit_);
  EXPECT_EQ(second.progress.archived_files, 2u);
}

TEST_F(Work, RawAnObjectListedTwiceIsOnePartAndOneContentIsListedOnce) {
  vendor_.files["/files/a/v.csv.gz"] = reply(200, visit_);
  vendor_.files["/files/b/v.csv.gz"] = reply(200, visit_);  // another object, the same bytes
  vendor_.files["/files/p.csv.gz"] = reply(200, page_);
  vendor_.api = [&](const std::string&) {
    return reply(
        200, finished({{"visit",
                        {link("a/v.csv.gz?sign=1"), link("b/v.csv.gz"), link("a/v.csv.gz?sign=2")}},
                       {"page", {link("p.csv.gz"), link("p.csv.gz")}}}));
  };
  const Outcome outcome = run_pass();
  const auto* done = std::get_if<Done>(&outcome.result);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(events_.downloads, 3);  // a/v, b/v and p: each object once
  EXPECT_EQ(done->files, 2u);
  EXPECT_EQ(contents_of(partition("visit")), std::multiset<std::string>{visit_});
  EXPECT_EQ(contents_of(partition("page")), std::multiset<std::string>{page_});
  const auto manifest = archive_.read_manifest(job_.name, "visit", slot_);
  ASSERT_TRUE(manifest.has_value());
  ASSERT_EQ(manifest->files.size(), 1u);
  EXPECT_EQ(manifest->files[0].name, "v.csv.gz");
  EXPECT_NE(
      std::find(events_.seen.begin(), events_.seen.end(), "duplicate visit/v-2.csv.gz v.csv.gz"),
      events_.seen.end());
}

TEST_F(Work, RawNotExistsWaitsAndNeverFailsTheSlot) {
  // Raw export enabled recently: the vendor has nothing for older hours, and says so for
  // every ask. That is a wait, asked again at the next poll, for both endpoints.
  vendor_.api = [](const std::string&) {
    return reply(200, R"({"status":"NOT_EXISTS","errorMsg":"no such export"})");
  };
  for (const bool per_type : {false, true}) {
    config::RawJob raw;
    if (per_type) {
      raw.data_types = {"visit", "page"};
    }
    job_.settings = raw;
    vendor_.asked.clear();
    const Outcome outcome = run_pass();
    EXPECT_EQ(std::get_if<Failed>(&outcome.result), nullptr) << "per_type=" << per_type;
    EXPECT_EQ(std::get_if<Retry>(&outcome.result), nullptr) << "per_type=" << per_type;
    const auto* wait = std::get_if<Wait>(&outcome.result);
    ASSERT_NE(wait, nullptr) << "per_type=" << per_type;
    EXPECT_TRUE(wait->not_exists);
    EXPECT_EQ(wait->api_status, "NOT_EXISTS");
    EXPECT_EQ(vendor_.asked.size(), 1u);  // per type: the first type that is not FINISHED
    EXPECT_EQ(ledger_.downloading_status, "");
    EXPECT_TRUE(ledger_.files.empty());
  }
}

TEST_F(Work, RawAnUnknownDataTypeIsArchivedUnderItsOwnNameWithTheKnownOnes) {
  vendor_.files["/files/v1.csv.gz"] = reply(200, visit_);
  vendor_.files["/files/ads.csv.gz"] = reply(200, page_);
  vendor_.api = [&](const std::string&) {
    return reply(200, finished({{"visit", {link("v1.csv.gz")}},
                                {"adsTrackClick", {link("ads.csv.gz")}},
                                {"ads-track-2", {}}}));
  };
  const Outcome outcome = run_pass();
  const auto* done = std::get_if<Done>(&outcome.result);
  ASSERT_NE(done, nullptr) << (std::get_if<Failed>(&outcome.result)
                                   ? std::get_if<Failed>(&outcome.result)->reason
                                   : "");
  EXPECT_EQ(done->files, 2u);
  EXPECT_EQ(read_file(partition("visit") / "v1.csv.gz"), visit_);
  EXPECT_EQ(read_file(partition("adsTrackClick") / "ads.csv.gz"), page_);
  EXPECT_TRUE(archive_.is_complete(job_.name, "adsTrackClick", slot_));
  EXPECT_TRUE(archive_.is_complete(job_.name, "ads-track-2", slot_));
  // Each unknown type is named to the log once; the known ones are not.
  EXPECT_EQ(std::count(events_.seen.begin(), events_.seen.end(), "unknown_type adsTrackClick"), 1);
  EXPECT_EQ(std::count(events_.seen.begin(), events_.seen.end(), "unknown_type ads-track-2"), 1);
  EXPECT_EQ(std::count(events_.seen.begin(), events_.seen.end(), "unknown_type visit"), 0);
}

TEST_F(Work, ChartDoingWaitsAndDoneArchivesBothFiles) {
  config::ChartJob chart;
  chart.charts = {"cHart1", "cHart2"};
  job_.settings = chart;
  vendor_.api = [](const std::string& target) {
    if (target.find("cHart1") != std::string::npos) {
      return reply(200, R"({"meta":[{"name":"day"},{"name":"uv"}],"data":[["2026-11-22",7]]})");
    }
    return reply(200, R"({"id":"tmp-1","status":"doing"})");
  };
  Outcome outcome = run_pass();
  const auto* wait = std::get_if<Wait>(&outcome.result);
  ASSERT_NE(wait, nullptr);
  EXPECT_EQ(wait->api_status, "doing");
  EXPECT_EQ(wait->detail, " charts_doing=1");
  EXPECT_EQ(outcome.progress.archived_files, 2u);
  EXPECT_TRUE(archive_.is_complete(job_.name, "cHart1", slot_));
  EXPECT_NE(read_file(partition("cHart1") / "chart.csv").find("uv"), std::string::npos);

  // The next pass asks only for the chart still being computed.
  vendor_.asked.clear();
  vendor_.api = [](const std::string&) {
    return reply(200, R"({"meta":[{"name":"day"}],"data":[["2026-11-22"]]})");
  };
  outcome = run_pass();
  const auto* done = std::get_if<Done>(&outcome.result);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->items, "charts=2");
  EXPECT_EQ(done->api_status, "done");
  ASSERT_EQ(vendor_.asked.size(), 1u);
  EXPECT_NE(vendor_.asked[0].find("cHart2"), std::string::npos);
}

TEST_F(Work, UserListsDownloadDoneListsAndRetryAFailedExport) {
  config::UserListJob lists;
  lists.resource = config::ChartResource::tags;
  lists.lists = {"tagA", "tagB"};
  job_.settings = lists;
  vendor_.files["/files/a.csv.gz"] = reply(200, visit_);
  vendor_.api = [&](const std::string& target) {
    if (target.find("tagA") != std::string::npos) {
      return reply(200, R"({"status":"done","downloadLinks":[")" + link("a.csv.gz") + "\"]}");
    }
    return reply(200, R"({"status":"failed","errorMsg":"quota"})");
  };
  Outcome outcome = run_pass();
  const auto* retry = std::get_if<Retry>(&outcome.result);
  ASSERT_NE(retry, nullptr);
  EXPECT_EQ(retry->kind, RetryClass::export_failed);
  EXPECT_EQ(retry->api_status, "failed");
  EXPECT_EQ(retry->reason, "tags tagB: the export failed: quota");
  EXPECT_TRUE(archive_.is_complete(job_.name, "tagA", slot_));
  EXPECT_EQ(read_file(partition("tagA") / "a.csv.gz"), visit_);

  vendor_.files["/files/b.csv.gz"] = reply(200, page_);
  vendor_.api = [&](const std::string&) {
    return reply(200, R"({"status":"done","downloadLinks":[")" + link("b.csv.gz") + "\"]}");
  };
  outcome = run_pass();
  const auto* done = std::get_if<Done>(&outcome.result);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->items, "lists=2");
  EXPECT_TRUE(archive_.is_complete(job_.name, "tagB", slot_));
}

}  // namespace
}  // namespace gio::work
