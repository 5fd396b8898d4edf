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
