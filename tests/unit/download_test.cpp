#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <utility>
#include <vector>

#include "download/downloader.hpp"
#include "support/files.hpp"
#include "support/test_server.hpp"

namespace gio::download {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using test::gzip_member;
using test::read_file;
using test::sha256sum;
using namespace std::chrono_literals;
using archive::VerifyMode;
using test::reply;
using test::Reply;
using test::TestServer;

using FetchResult = boost::system::result<VerifiedFile, Error>;

// CSV-like rows with enough randomness that the gzip of a few MB spans several of the
// verifier's batches.
std::string csv_rows(std::size_t rows, unsigned seed) {
  std::mt19937_64 generator{seed};
  std::string out;
  for (std::size_t i = 0; i < rows; ++i) {
    out += std::to_string(i) + ",u" + std::to_string(generator() % 1000000) + ",page_view," +
           std::to_string(generator()) + ",\"/p/" + std::to_string(generator() % 5000) + "\"\n";
  }
  return out;
}

class Download : public ::testing::Test {
 protected:
  Download()
      : dir_(fs::temp_directory_path() /
             ("gio-download-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name())),
        staging_(dir_ / "staging") {
    fs::create_directories(dir_);
    settings_.timeout = 5s;
  }
  ~Download() override { fs::remove_all(dir_); }

  FetchResult fetch(const std::string& url, VerifyMode mode, bool count_rows = false,
                    std::string_view split_by = {}, archive::SplitWindow window = {},
                    FetchListener* listener = nullptr) {
    asio::io_context io;
    asio::thread_pool pool{2};
    http::Client client{io.get_executor(), settings_};
    Downloader downloader{client, pool, inflater_, limits_};
    std::optional<FetchResult> out;
    asio::co_spawn(io,
                   downloader.fetch(url, staging_, mode, count_rows, split_by, window, listener),
                   [&](std::exception_ptr error, FetchResult result) {
                     if (error) {
                       std::rethrow_exception(error);
                     }
                     out.emplace(std::move(result));
                   });
    io.run();
    return std::move(*out);
  }

  std::size_t staged_files() const {
    if (!fs::exists(staging_)) {
      return 0;
    }
    return static_cast<std::size_t>(
        std::distance(fs::directory_iterator{staging_}, fs::directory_iterator{}));
  }

  fs::path dir_;
  fs::path staging_;
  http::Settings settings_;
  Limits limits_;
  archive::Inflater inflater_ = archive::best_inflater();
};

std::vector<archive::Inflater> inflaters() {
  std::vector<archive::Inflater> out{archive::Inflater::zlib};
  if (archive::available(archive::Inflater::isal)) {
    out.push_back(archive::Inflater::isal);
  }
  return out;
}

// The byte offset a gzip problem names ("... near byte N: ..."), or -1.
long long offset_named(const std::string& message) {
  const std::string marker = "near byte ";
  const std::size_t at = message.find(marker);
  return at == std::string::npos ? -1 : std::stoll(message.substr(at + marker.size()));
}

// A response without Content-Length whose body ends when the connection closes.
Reply unsized(const std::string& body) {
  return Reply{.raw = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body, .close_after = true};
}

TEST_F(Download, SizeModeKeepsAnyFileWithItsSha256) {
  TestServer server{[](const std::string&, const std::string&) { return reply(200, "abc"); }};
  auto fetched = fetch(server.url("/plain.txt?sign=SECRET"), VerifyMode::size);
  ASSERT_TRUE(fetched) << fetched.error().message;
  EXPECT_EQ(fetched->bytes, 3u);
  // FIPS 180-2 test vector.
  EXPECT_EQ(fetched->sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(fetched->file.path().parent_path(), staging_);
  EXPECT_EQ(read_file(fetched->file.path()), "abc");
}

// Progress (issue 17): the listener hears the start (0 and the Content-Length, when there
// is one) and then the bytes so far, rising to the body's size.
class Heard final : public FetchListener {
 public:
  void fetched(std::uint64_t bytes, std::optional<std::uint64_t> total) override {
    calls.emplace_back(bytes, total);
  }
  std::vector<std::pair<std::uint64_t, std::optional<std::uint64_t>>> calls;
};

TEST_F(Download, AListenerHearsTheBytesAsTheyArrive) {
  const std::string body = gzip_member(csv_rows(20000, 3));
  TestServer server{[&](const std::string& target, const std::string&) {
    return target.starts_with("/unsized") ? unsized(body) : reply(200, body);
  }};
  for (const bool sized : {true, false}) {
    Heard heard;
    auto fetched = fetch(server.url(sized ? "/sized.csv.gz" : "/unsized.csv.gz"), VerifyMode::gzip,
                         false, {}, {}, &heard);
    ASSERT_TRUE(fetched) << fetched.error().message;
    ASSERT_GE(heard.calls.size(), 2u);
    const std::optional<std::uint64_t> total =
        sized ? std::optional<std::uint64_t>{body.size()} : std::nullopt;
    EXPECT_EQ(heard.calls.front(), std::make_pair(std::uint64_t{0}, total));
    EXPECT_EQ(heard.calls.back(), std::make_pair(std::uint64_t{body.size()}, total));
    for (std::size_t i = 1; i < heard.calls.size(); ++i) {
      EXPECT_GE(heard.calls[i].first, heard.calls[i - 1].first);
    }
  }
  // Without a listener nothing changes.
  EXPECT_TRUE(fetch(server.url("/sized.csv.gz"), VerifyMode::gzip));
}

TEST_F(Download, GzipModeAcceptsAMultiMemberFileAndHashesIt) {
  const std::string body =
      gzip_member(csv_rows(200000, 1)) + gzip_member(csv_rows(150000, 2)) + gzip_member("");
  ASSERT_GT(body.size(), 6u << 20);  // more than one verifier batch
  TestServer server{[&](const std::string&, const std::string&) { return reply(200, body); }};
  auto fetched = fetch(server.url("/part-00000.csv.gz"), VerifyMode::gzip);
  ASSERT_TRUE(fetched) << fetched.error().message;
  EXPECT_EQ(fetched->bytes, body.size());
  EXPECT_EQ(fetched->sha256, sha256sum(body, dir_));
  EXPECT_TRUE(read_file(fetched->file.path()) == body);
  EXPECT_EQ(staged_files(), 1u);
}

// Rows (issue 16): counted from the gzip check's own inflated bytes, across members and
// verifier batches; split by hour when asked; never in size mode.
TEST_F(Download, GzipModeCountsTheRowsInTheSamePass) {
  // "time" ms of 2026-11-22 00:00 Beijing plus i seconds: hours 0 and 1.
  std::string csv = "time,x\n";
  for (int i = 0; i < 4000; ++i) {
    csv += std::to_string(1795276800000 + i * 1000LL) + ",\"a\nb\"\n";
  }
  const std::string body =
      gzip_member(csv.substr(0, 5000)) + gzip_member(csv.substr(5000)) + gzip_member("");
  TestServer server{[&](const std::string&, const std::string&) { return reply(200, body); }};

  auto counted = fetch(server.url("/part-00000.csv.gz"), VerifyMode::gzip, true);
  ASSERT_TRUE(counted) << counted.error().message;
  ASSERT_TRUE(counted->rows.has_value());
  EXPECT_EQ(counted->rows->rows, 4000u);
  EXPECT_EQ(counted->rows->columns, (std::vector<std::string>{"time", "x"}));
  EXPECT_TRUE(counted->rows->rows_by_hour.empty());

  auto split = fetch(server.url("/part-00000.csv.gz"), VerifyMode::gzip, true, "time");
  ASSERT_TRUE(split) << split.error().message;
  std::vector<std::uint64_t> hours(24, 0);
  hours[0] = 3600;
  hours[1] = 400;
  EXPECT_EQ(split->rows->rows_by_hour, hours);
  EXPECT_EQ(split->rows->unhoured, 0u);

  // Only the split window's times get an hour: here its first half hour.
  const archive::SplitWindow half_hour{.start_ms = 1795276800000,
                                       .end_ms = 1795276800000 + 1800 * 1000};
  auto windowed =
      fetch(server.url("/part-00000.csv.gz"), VerifyMode::gzip, true, "time", half_hour);
  ASSERT_TRUE(windowed) << windowed.error().message;
  std::vector<std::uint64_t> first_half(24, 0);
  first_half[0] = 1800;
  EXPECT_EQ(windowed->rows->rows_by_hour, first_half);
  EXPECT_EQ(windowed->rows->unhoured, 2200u);

  EXPECT_FALSE(fetch(server.url("/part-00000.csv.gz"), VerifyMode::gzip)->rows.has_value());
  EXPECT_FALSE(fetch(server.url("/part-00000.csv.gz"), VerifyMode::size, true)->rows.has_value());
}

TEST_F(Download, GzipModeRejectsCorruptDataOfTheRightLength) {
  std::string body = gzip_member(csv_rows(100000, 3));
  for (std::size_t i = body.size() / 2; i < body.size() / 2 + 64; ++i) {
    body[i] = static_cast<char>(~body[i]);
  }
  TestServer server{[&](const std::string&, const std::string&) { return reply(200, body); }};
  auto fetched = fetch(server.url("/bad.csv.gz"), VerifyMode::gzip);
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().kind, Failure::corrupt) << fetched.error().message;
  // The inflater's own verdict, not a later "ends early": it names where the damage is.
  EXPECT_NE(fetched.error().message.find("not a valid gzip stream near byte"), std::string::npos)
      << fetched.error().message;
  EXPECT_GE(offset_named(fetched.error().message), static_cast<long long>(body.size() / 2))
      << fetched.error().message;
  EXPECT_EQ(staged_files(), 0u);

  // The same bytes are fine when only the size is checked.
  auto sized = fetch(server.url("/bad.csv.gz"), VerifyMode::size);
  ASSERT_TRUE(sized) << sized.error().message;
  EXPECT_EQ(sized->bytes, body.size());
}

// Only the trailer is wrong: the deflate data is intact, so only the CRC-32 (or the
// length) check can tell. A checker that skipped the trailer would accept these.
TEST_F(Download, GzipModeRejectsAWrongCrcOrLengthAlone) {
  const std::string good = gzip_member(csv_rows(20000, 6));
  // The trailer: CRC-32 (8 to 5 bytes from the end), then ISIZE (4 to 1), little-endian.
  for (const std::size_t from_end : {std::size_t{8}, std::size_t{5}, std::size_t{4}}) {
    std::string body = good;
    body[body.size() - from_end] = static_cast<char>(body[body.size() - from_end] ^ 0x01);
    TestServer server{[&](const std::string&, const std::string&) { return reply(200, body); }};
    for (const archive::Inflater inflater : inflaters()) {
      inflater_ = inflater;
      const std::string where =
          std::string{to_string(inflater)} + ", byte " + std::to_string(from_end) + " from the end";
      auto fetched = fetch(server.url("/trailer.csv.gz"), VerifyMode::gzip);
      ASSERT_FALSE(fetched) << where;
      EXPECT_EQ(fetched.error().kind, Failure::corrupt) << where << ": " << fetched.error().message;
      EXPECT_NE(fetched.error().message.find("not a valid gzip stream near byte"),
                std::string::npos)
          << where << ": " << fetched.error().message;
      // zlib tells "incorrect data check" from "incorrect length check"; igzip says
      // "incorrect data check" for both.
      EXPECT_NE(fetched.error().message.find(from_end > 4 ? "incorrect data check" : "check"),
                std::string::npos)
          << where << ": " << fetched.error().message;
      EXPECT_GE(offset_named(fetched.error().message), static_cast<long long>(body.size() - 8))
          << where << ": " << fetched.error().message;
      EXPECT_EQ(staged_files(), 0u) << where;
    }
  }
}

// Without Content-Length a body cut off when the connection closes looks complete, so
// size mode cannot tell: a gzip part then gets the gzip check.
TEST_F(Download, SizeModeWithoutContentLengthChecksTheGzipStream) {
  const std::string whole = gzip_member(csv_rows(20000, 8));
  TestServer server{[&](const std::string& target, const std::string&) {
    return unsized(target.starts_with("/half") ? whole.substr(0, whole.size() / 2) : whole);
  }};
  auto half = fetch(server.url("/half.csv.gz?sign=SECRET"), VerifyMode::size);
  ASSERT_FALSE(half) << "a cut-off body was accepted";
  EXPECT_EQ(half.error().kind, Failure::corrupt) << half.error().message;
  EXPECT_NE(half.error().message.find("ends early"), std::string::npos) << half.error().message;
  EXPECT_NE(half.error().message.find("no Content-Length"), std::string::npos)
      << half.error().message;
  EXPECT_EQ(half.error().message.find("SECRET"), std::string::npos);
  EXPECT_EQ(staged_files(), 0u);

  // The gzip magic decides too, whatever the link's name.
  auto half_unnamed = fetch(server.url("/half-object"), VerifyMode::size);
  ASSERT_FALSE(half_unnamed);
  EXPECT_EQ(half_unnamed.error().kind, Failure::corrupt) << half_unnamed.error().message;

  auto good = fetch(server.url("/whole.csv.gz"), VerifyMode::size);
  ASSERT_TRUE(good) << good.error().message;
  EXPECT_EQ(good->bytes, whole.size());
  EXPECT_EQ(good->sha256, sha256sum(whole, dir_));
}

TEST_F(Download, SizeModeWithoutContentLengthRejectsACorruptGzipPart) {
  std::string body = gzip_member(csv_rows(20000, 9));
  for (std::size_t i = body.size() / 2; i < body.size() / 2 + 32; ++i) {
    body[i] = static_cast<char>(~body[i]);
  }
  TestServer server{[&](const std::string&, const std::string&) { return unsized(body); }};
  auto fetched = fetch(server.url("/bad.csv.gz"), VerifyMode::size);
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().kind, Failure::corrupt) << fetched.error().message;
  EXPECT_NE(fetched.error().message.find("not a valid gzip stream"), std::string::npos)
      << fetched.error().message;
}

TEST_F(Download, SizeModeWithoutContentLengthKeepsAPlainFile) {
  // Nothing can check a plain file that comes without its length (a user list's CSV):
  // it is kept as received, as before.
  TestServer server{[&](const std::string&, const std::string&) { return unsized("id\n1\n"); }};
  auto fetched = fetch(server.url("/users.csv"), VerifyMode::size);
  ASSERT_TRUE(fetched) << fetched.error().message;
  EXPECT_EQ(fetched->bytes, 5u);
}

// An endless (or merely huge) body stops at limits.max_part_size, whether the length is
// announced or not, and leaves nothing behind.
TEST_F(Download, APartLargerThanTheLimitFailsAndLeavesNoStagingFile) {
  limits_.max_part_size = 1 << 20;
  const std::string member = gzip_member(csv_rows(5000, 11));
  std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::size_t sent = 0;
  while (sent < (3u << 20)) {  // valid gzip all the way: only the size can stop it
    std::ostringstream chunk;
    chunk << std::hex << member.size() << "\r\n" << member << "\r\n";
    chunked += chunk.str();
    sent += member.size();
  }
  chunked += "0\r\n\r\n";
  const std::string big = std::string(2u << 20, 'x');
  TestServer server{[&](const std::string& target, const std::string&) {
    return target.starts_with("/chunked") ? Reply{.raw = chunked} : reply(200, big);
  }};
  for (const VerifyMode mode : {VerifyMode::gzip, VerifyMode::size}) {
    auto fetched = fetch(server.url("/chunked.csv.gz?sign=SECRET"), mode);
    ASSERT_FALSE(fetched) << "an oversized part was accepted";
    EXPECT_EQ(fetched.error().kind, Failure::too_large) << fetched.error().message;
    EXPECT_NE(fetched.error().message.find("limits.max_part_size"), std::string::npos)
        << fetched.error().message;
    EXPECT_NE(fetched.error().message.find("1048576 bytes"), std::string::npos)
        << fetched.error().message;
    EXPECT_EQ(fetched.error().message.find("SECRET"), std::string::npos);
    EXPECT_EQ(staged_files(), 0u);
  }
  // Announced: refused before the body is read.
  auto announced = fetch(server.url("/announced.bin"), VerifyMode::size);
  ASSERT_FALSE(announced);
  EXPECT_EQ(announced.error().kind, Failure::too_large) << announced.error().message;
  EXPECT_NE(announced.error().message.find("Content-Length " + std::to_string(big.size())),
            std::string::npos)
      << announced.error().message;
  EXPECT_EQ(staged_files(), 0u);

  limits_.max_part_size = 4u << 20;  // the same parts under a larger limit are fine
  auto fine = fetch(server.url("/chunked.csv.gz"), VerifyMode::gzip);
  ASSERT_TRUE(fine) << fine.error().message;
}

// A Content-Length larger than any disk (1 PB): refused before a byte is written, as a
// local fault (the daemon pauses downloads), naming what is needed and what is free.
TEST_F(Download, NotEnoughFreeSpaceForTheContentLengthIsALocalFailure) {
  limits_.max_part_size = std::uint64_t{1} << 62;
  const std::string petabyte = std::to_string(std::uint64_t{1} << 50);
  TestServer server{[&](const std::string&, const std::string&) {
    return Reply{.raw = "HTTP/1.1 200 OK\r\nContent-Length: " + petabyte + "\r\n\r\nabc",
                 .close_after = true};
  }};
  auto fetched = fetch(server.url("/huge.csv.gz?sign=SECRET"), VerifyMode::gzip);
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().kind, Failure::local) << fetched.error().message;
  EXPECT_NE(fetched.error().message.find("not enough free space"), std::string::npos)
      << fetched.error().message;
  EXPECT_NE(fetched.error().message.find(petabyte), std::string::npos) << fetched.error().message;
  EXPECT_NE(fetched.error().message.find(" free"), std::string::npos) << fetched.error().message;
  EXPECT_EQ(fetched.error().message.find("SECRET"), std::string::npos);
  EXPECT_EQ(staged_files(), 0u);
}

TEST_F(Download, GzipModeRejectsAStreamThatEndsEarly) {
  std::string body = gzip_member(csv_rows(20000, 4));
  body.resize(body.size() - 100);  // served with a matching Content-Length
  TestServer server{[&](const std::string&, const std::string&) { return reply(200, body); }};
  auto fetched = fetch(server.url("/short.csv.gz"), VerifyMode::gzip);
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().kind, Failure::corrupt);
  EXPECT_NE(fetched.error().message.find("ends early"), std::string::npos)
      << fetched.error().message;
  EXPECT_EQ(staged_files(), 0u);
}

TEST_F(Download, GzipModeRejectsTrailingGarbage) {
  const std::string body = gzip_member(csv_rows(1000, 5)) + "garbage after the member";
  TestServer server{[&](const std::string&, const std::string&) { return reply(200, body); }};
  auto fetched = fetch(server.url("/tail.csv.gz"), VerifyMode::gzip);
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().kind, Failure::corrupt) << fetched.error().message;
}

TEST_F(Download, GzipModeRejectsAnEmptyFile) {
  TestServer server{[&](const std::string&, const std::string&) { return reply(200, ""); }};
  auto fetched = fetch(server.url("/empty.csv.gz"), VerifyMode::gzip);
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().kind, Failure::corrupt);
}

TEST_F(Download, AContentLengthMismatchFailsAndLeavesNoStagingFile) {
  TestServer server{[](const std::string&, const std::string&) {
    return Reply{
        .raw = "HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n" + std::string(10000, 'x'),
        .close_after = true};
  }};
  auto fetched = fetch(server.url("/cut.csv.gz?sign=SECRET"), VerifyMode::size);
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().kind, Failure::truncated) << fetched.error().message;
  EXPECT_NE(fetched.error().message.find("10000 of 20000"), std::string::npos);
  EXPECT_EQ(fetched.error().message.find("SECRET"), std::string::npos);
  EXPECT_TRUE(fs::exists(staging_));
  EXPECT_EQ(staged_files(), 0u);
}

TEST_F(Download, MoreBytesThanTheContentLengthFailAndLeaveNoStagingFile) {
  const std::string body = gzip_member(csv_rows(100, 3));
  TestServer server{[&](const std::string&, const std::string&) {
    return Reply{.raw = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                        "\r\n\r\n" + body + "appended by a hostile peer"};
  }};
  auto fetched = fetch(server.url("/long.csv.gz?sign=SECRET"), VerifyMode::gzip);
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().kind, Failure::truncated) << fetched.error().message;
  EXPECT_NE(fetched.error().message.find("sent more than the " + std::to_string(body.size()) +
                                         " bytes it announced"),
            std::string::npos)
      << fetched.error().message;
  EXPECT_EQ(fetched.error().message.find("SECRET"), std::string::npos);
  EXPECT_EQ(staged_files(), 0u);
}

TEST_F(Download, AChunkedBodyWithoutItsEndFailsAndLeavesNoStagingFile) {
  const std::string body = gzip_member(csv_rows(100, 4));
  TestServer server{[&](const std::string& target, const std::string&) {
    std::ostringstream raw;
    raw << "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        << std::hex << body.size() << "\r\n"
        << body << "\r\n";  // a whole gzip member, but never the last chunk
    return Reply{.raw = raw.str(), .close_after = target.starts_with("/closed")};
  }};
  settings_.timeout = 1s;
  auto closed = fetch(server.url("/closed.csv.gz?sign=SECRET"), VerifyMode::gzip);
  ASSERT_FALSE(closed);
  EXPECT_EQ(closed.error().kind, Failure::truncated) << closed.error().message;
  EXPECT_EQ(closed.error().message.find("SECRET"), std::string::npos);
  EXPECT_EQ(staged_files(), 0u);

  auto open = fetch(server.url("/open.csv.gz?sign=SECRET"), VerifyMode::gzip);
  ASSERT_FALSE(open);
  EXPECT_EQ(open.error().kind, Failure::network) << open.error().message;
  EXPECT_NE(open.error().message.find("no data for 1 s"), std::string::npos)
      << open.error().message;
  EXPECT_EQ(open.error().message.find("SECRET"), std::string::npos);
  EXPECT_EQ(staged_files(), 0u);
}

TEST_F(Download, APeerDrippingBytesIsCutAndLeavesNoStagingFile) {
  TestServer server{[](const std::string&, const std::string&) {
    return Reply{.raw = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
                 .drip = std::string(1000, 'x'),
                 .drip_every = 300ms};
  }};
  settings_.timeout = 1s;
  auto fetched = fetch(server.url("/slow.csv.gz?sign=SECRET"), VerifyMode::size);
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().kind, Failure::network) << fetched.error().message;
  EXPECT_NE(fetched.error().message.find("no data for 1 s"), std::string::npos)
      << fetched.error().message;
  EXPECT_EQ(staged_files(), 0u);
}

TEST_F(Download, A4xxIsARejectedLink) {
  TestServer server{[](const std::string&, const std::string&) {
    return reply(403, "<Error><StringToSign>SECRET</StringToSign></Error>");
  }};
  auto fetched = fetch(server.url("/expired.csv.gz?sign=SECRET"), VerifyMode::gzip);
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().kind, Failure::link_rejected);
  EXPECT_EQ(fetched.error().status, 403u);
  EXPECT_EQ(fetched.error().message.find("SECRET"), std::string::npos);
  EXPECT_EQ(staged_files(), 0u);
}

TEST_F(Download, A5xxOr429IsAServerFailureWithRetryAfter) {
  TestServer server{[](const std::string& target, const std::string&) {
    return target == "/busy" ? reply(429, "", {"Retry-After: 30"}) : reply(503, "down");
  }};
  auto busy = fetch(server.url("/busy"), VerifyMode::gzip);
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().kind, Failure::server);
  EXPECT_EQ(busy.error().status, 429u);
  EXPECT_EQ(busy.error().retry_after, 30s);
  auto down = fetch(server.url("/down"), VerifyMode::gzip);
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().kind, Failure::server);
  EXPECT_EQ(down.error().status, 503u);
}

TEST_F(Download, AnUnreachableHostIsANetworkFailure) {
  unsigned short port = 0;
  {
    asio::io_context scratch;
    asio::ip::tcp::acceptor acceptor{scratch, {asio::ip::make_address("127.0.0.1"), 0}};
    port = acceptor.local_endpoint().port();
  }
  auto fetched = fetch("http://127.0.0.1:" + std::to_string(port) + "/x.gz", VerifyMode::gzip);
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().kind, Failure::network);
  EXPECT_EQ(staged_files(), 0u);
}

TEST_F(Download, AnUnusableStagingFolderIsALocalFailure) {
  std::ofstream{dir_ / "a-file"} << "x";
  staging_ = dir_ / "a-file" / "staging";
  TestServer server{[](const std::string&, const std::string&) { return reply(200, "abc"); }};
  auto fetched = fetch(server.url("/x"), VerifyMode::size);
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().kind, Failure::local);
}

TEST_F(Download, SeveralFetchesRunAtOnce) {
  std::vector<std::string> bodies;
  for (unsigned i = 0; i < 6; ++i) {
    bodies.push_back(gzip_member(csv_rows(30000 + 1000 * i, 10 + i)));
  }
  TestServer server{[&](const std::string& target, const std::string&) {
    return reply(200, bodies.at(static_cast<std::size_t>(target.at(1) - '0')));
  }};
  asio::io_context io;
  asio::thread_pool pool{2};
  http::Client client{io.get_executor(), settings_};
  Downloader downloader{client, pool};
  std::vector<std::optional<FetchResult>> results(bodies.size());
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    asio::co_spawn(io,
                   downloader.fetch(server.url("/" + std::to_string(i) + ".csv.gz"), staging_,
                                    VerifyMode::gzip),
                   [&results, i](std::exception_ptr error, FetchResult result) {
                     if (error) {
                       std::rethrow_exception(error);
                     }
                     results[i].emplace(std::move(result));
                   });
  }
  io.run();
  EXPECT_EQ(server.connections(), 6);
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    ASSERT_TRUE(results[i] && *results[i]) << i;
    EXPECT_EQ((*results[i])->sha256, sha256sum(bodies[i], dir_)) << i;
    EXPECT_TRUE(read_file((*results[i])->file.path()) == bodies[i]) << i;
  }
  EXPECT_EQ(staged_files(), bodies.size());
}

}  // namespace
}  // namespace gio::download
