#include "archive/archive.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <zlib.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "archive/checksums.hpp"
#include "archive/csv_rows.hpp"
#include "archive/identity.hpp"
#include "archive/scrub.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace gio::archive {
namespace {

namespace fs = std::filesystem;
using test::gzip_member;
using test::read_file;
using namespace std::chrono_literals;

using testing::TempDir;

void write_file(const fs::path& path, std::string_view content) {
  std::ofstream out{path, std::ios::binary};
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

std::size_t entries(const fs::path& folder) {
  return static_cast<std::size_t>(
      std::distance(fs::directory_iterator{folder}, fs::directory_iterator{}));
}

unsigned mode_of(const fs::path& path) {
  struct stat info {};
  EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
  return info.st_mode & 07777;
}

Slot hour_slot(std::string_view name = "2026-11-22T03") {
  return *Slot::parse(name, Granularity::hour);
}

Slot day_slot(std::string_view name = "2026-11-22") {
  return *Slot::parse(name, Granularity::day);
}

Manifest sample_manifest(const Slot& slot, std::vector<ManifestFile> files) {
  return {.job = "shop-hourly",
          .data_type = "visit",
          .slot = slot.name(),
          .export_date = slot.export_date(),
          .archived_at = *parse_utc("2026-11-21T20:45:07Z"),
          .files = std::move(files)};
}

// --- layout --------------------------------------------------------------------------

TEST(ArchiveLayout, PartitionDirsUseBeijingDateAndHour) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  EXPECT_EQ(archive.root(), temp.path() / "archive");
  EXPECT_EQ(archive.staging_dir(), temp.path() / "archive" / ".staging");
  EXPECT_EQ(archive.partition_dir("shop-hourly", "visit", hour_slot()),
            temp.path() / "archive/shop-hourly/visit/dt=2026-11-22/hour=03");
  EXPECT_EQ(archive.partition_dir("shop-daily", "page", day_slot()),
            temp.path() / "archive/shop-daily/page/dt=2026-11-22");

  // 2026-11-21 19:30 UTC is 03:30 on the 22nd in Beijing.
  const Instant utc = *parse_utc("2026-11-21T19:30:00Z");
  EXPECT_EQ(archive.partition_dir("j", "visit", Slot::containing(utc, Granularity::hour)),
            temp.path() / "archive/j/visit/dt=2026-11-22/hour=03");
  EXPECT_EQ(archive.partition_dir("j", "visit", Slot::containing(utc, Granularity::day)),
            temp.path() / "archive/j/visit/dt=2026-11-22");
}

TEST(ArchiveLayout, TrailingSlashInRootIsIgnored) {
  TempDir temp;
  const Archive archive{temp.path().string() + "/archive/"};
  EXPECT_EQ(archive.root(), temp.path() / "archive");
  EXPECT_EQ(archive.staging_dir(), temp.path() / "archive" / ".staging");
}

// --- construction --------------------------------------------------------------------

TEST(ArchiveConstruction, CreatesRootAndStagingWithoutAccessForOthers) {
  TempDir temp;
  const Archive archive{temp.path() / "a" / "b" / "archive"};
  ASSERT_TRUE(fs::is_directory(archive.root()));
  ASSERT_TRUE(fs::is_directory(archive.staging_dir()));
  const auto others = fs::perms::others_read | fs::perms::others_write | fs::perms::others_exec;
  EXPECT_EQ(fs::status(archive.root()).permissions() & others, fs::perms::none);
  EXPECT_EQ(fs::status(archive.staging_dir()).permissions() & others, fs::perms::none);
}

TEST(ArchiveConstruction, RemovesLeftoverStagingFiles) {
  TempDir temp;
  const fs::path staging = temp.path() / "archive" / ".staging";
  fs::create_directories(staging / "partial-folder");
  write_file(staging / "part-0.csv.gz.partial", "half a download");
  write_file(staging / "partial-folder" / "x", "x");
  // An archived file is not a leftover.
  fs::create_directories(temp.path() / "archive/j/visit/dt=2026-11-22");
  write_file(temp.path() / "archive/j/visit/dt=2026-11-22/a.csv.gz", "kept");

  const Archive archive{temp.path() / "archive"};
  EXPECT_EQ(entries(staging), 0u);
  EXPECT_EQ(read_file(temp.path() / "archive/j/visit/dt=2026-11-22/a.csv.gz"), "kept");
}

TEST(ArchiveConstruction, LeavesStagingAloneWhileAnotherArchiveHoldsIt) {
  TempDir temp;
  const fs::path root = temp.path() / "archive";
  auto daemon = std::make_unique<Archive>(root);
  write_file(daemon->staging_dir() / "live-download", "in progress");

  EXPECT_TRUE(daemon->exclusive());
  {
    const Archive cli{root};  // e.g. `gio-exporter verify` while the daemon runs
    EXPECT_FALSE(cli.exclusive());
    EXPECT_TRUE(fs::exists(root / ".staging" / "live-download"));
  }
  daemon.reset();
  const Archive restarted{root};
  EXPECT_TRUE(restarted.exclusive());
  EXPECT_FALSE(fs::exists(root / ".staging" / "live-download"));
}

TEST(ArchiveConstruction, UnwritableRootThrows) {
  TempDir temp;
  const fs::path file = temp.path() / "plain-file";
  write_file(file, "not a folder");
  try {
    const Archive archive{file / "archive"};
    FAIL() << "expected ArchiveError";
  } catch (const ArchiveError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find((file / "archive").string()), std::string::npos) << message;
    EXPECT_NE(message.find("Not a directory"), std::string::npos) << message;
  }
  EXPECT_THROW(Archive{file}, ArchiveError);
}

TEST(ArchiveConstruction, SymlinkedStagingIsRefused) {
  TempDir temp;
  fs::create_directories(temp.path() / "archive");
  fs::create_directories(temp.path() / "elsewhere");
  write_file(temp.path() / "elsewhere" / "precious", "do not delete");
  fs::create_directory_symlink(temp.path() / "elsewhere", temp.path() / "archive" / ".staging");
  EXPECT_THROW(Archive{temp.path() / "archive"}, ArchiveError);
  EXPECT_EQ(read_file(temp.path() / "elsewhere" / "precious"), "do not delete");
}

TEST(ArchiveConstruction, MovedArchiveKeepsWorking) {
  TempDir temp;
  Archive first{temp.path() / "archive"};
  Archive second = std::move(first);
  second.publish(second.stage_bytes("data"), "j", "visit", hour_slot(), "part.csv.gz");
  EXPECT_TRUE(fs::exists(second.partition_dir("j", "visit", hour_slot()) / "part.csv.gz"));
}

// --- publish -------------------------------------------------------------------------

TEST(ArchivePublish, MovesTheFileAndLeavesNothingInStaging) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  const fs::path published = archive.publish(archive.stage_bytes("gzip bytes"), "shop-hourly",
                                             "visit", hour_slot(), "20261121_visit_0.csv.gz");
  EXPECT_EQ(
      published,
      temp.path() / "archive/shop-hourly/visit/dt=2026-11-22/hour=03/20261121_visit_0.csv.gz");
  EXPECT_EQ(read_file(published), "gzip bytes");
  EXPECT_EQ(entries(archive.staging_dir()), 0u);
  EXPECT_FALSE(archive.is_complete("shop-hourly", "visit", hour_slot()));
}

TEST(ArchivePublish, KeepsChineseNamesAndDaySlots) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  const fs::path published = archive.publish(archive.stage_bytes("x"), "shop-daily", "custom_event",
                                             day_slot(), "20191212-20191225_渠道.csv");
  EXPECT_EQ(
      published,
      temp.path() / "archive/shop-daily/custom_event/dt=2026-11-22/20191212-20191225_渠道.csv");
  EXPECT_TRUE(fs::is_regular_file(published));
}

TEST(ArchivePublish, ReplacesAnEarlierCopy) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  archive.publish(archive.stage_bytes("old"), "j", "visit", hour_slot(), "a.csv.gz");
  const fs::path published =
      archive.publish(archive.stage_bytes("new"), "j", "visit", hour_slot(), "a.csv.gz");
  EXPECT_EQ(read_file(published), "new");
}

TEST(ArchivePublish, RefusesUnsafeNames) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  for (const std::string_view name :
       std::initializer_list<std::string_view>{"", ".", "..", "../escape.csv.gz", "a/b.csv.gz",
                                               "_SUCCESS", "_manifest.json", ".hidden", "a\nb"}) {
    EXPECT_THROW(archive.publish(archive.stage_bytes("x"), "j", "visit", hour_slot(), name),
                 ArchiveError)
        << name;
  }
  EXPECT_THROW(archive.publish(archive.stage_bytes("x"), "..", "visit", hour_slot(), "a.csv.gz"),
               ArchiveError);
  EXPECT_THROW(archive.publish(archive.stage_bytes("x"), "j", "../x", hour_slot(), "a.csv.gz"),
               ArchiveError);
  EXPECT_EQ(entries(archive.staging_dir()), 0u);  // a refused file is dropped, so removed
  EXPECT_FALSE(fs::exists(temp.path() / "escape.csv.gz"));
  EXPECT_FALSE(fs::exists(temp.path() / "archive" / "escape.csv.gz"));
}

TEST(ArchivePublish, MissingStagedFileThrowsWithItsPath) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  StagedFile file = archive.stage_bytes("x");
  const fs::path staged = file.path();
  fs::remove(staged);  // e.g. by an operator cleaning .staging
  try {
    archive.publish(std::move(file), "j", "visit", hour_slot(), "a.csv.gz");
    FAIL() << "expected ArchiveError";
  } catch (const ArchiveError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(staged.string()), std::string::npos) << message;
    EXPECT_NE(message.find("No such file or directory"), std::string::npos) << message;
  }
}

TEST(ArchivePublish, RefusesSymlinkedPartitionFolders) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  const fs::path outside = temp.path() / "outside";
  fs::create_directories(outside);

  // A symlink planted in place of the job folder...
  fs::create_directory_symlink(outside, archive.root() / "j");
  EXPECT_THROW(archive.publish(archive.stage_bytes("x"), "j", "visit", hour_slot(), "a.csv.gz"),
               ArchiveError);
  Manifest manifest = sample_manifest(hour_slot(), {});
  manifest.job = "j";
  EXPECT_THROW(archive.complete_partition(manifest, hour_slot()), ArchiveError);

  // ...and in place of the partition folder itself.
  fs::create_directories(archive.root() / "k/visit/dt=2026-11-22");
  fs::create_directory_symlink(outside, archive.root() / "k/visit/dt=2026-11-22/hour=03");
  EXPECT_THROW(archive.publish(archive.stage_bytes("x"), "k", "visit", hour_slot(), "a.csv.gz"),
               ArchiveError);
  EXPECT_THROW(archive.is_complete("k", "visit", hour_slot()), ArchiveError);

  EXPECT_EQ(entries(outside), 0u);
  EXPECT_EQ(entries(archive.staging_dir()), 0u);
}

TEST(ArchivePublish, ReplacesASymlinkAtTheTargetNameWithoutWritingThroughIt) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  const fs::path victim = temp.path() / "victim";
  write_file(victim, "precious");
  const fs::path partition = archive.partition_dir("j", "visit", hour_slot());
  fs::create_directories(partition);
  fs::create_symlink(victim, partition / "a.csv.gz");

  archive.publish(archive.stage_bytes("archived"), "j", "visit", hour_slot(), "a.csv.gz");
  EXPECT_EQ(read_file(victim), "precious");
  EXPECT_FALSE(fs::is_symlink(partition / "a.csv.gz"));
  EXPECT_EQ(read_file(partition / "a.csv.gz"), "archived");
}

// --- staged files --------------------------------------------------------------------

TEST(StagedFile, ADroppedFileIsRemoved) {
  TempDir temp;
  fs::path path;
  {
    StagedFile file = StagedFile::create(temp.path(), "fetch", 0640);
    path = file.path();
    EXPECT_EQ(path.parent_path(), temp.path());
    file.write("half a download");
    EXPECT_EQ(read_file(path), "half a download");
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(path)));

  // Moving hands the file on; assigning over a staged file drops (removes) it.
  StagedFile first = StagedFile::create(temp.path(), "a", 0640);
  StagedFile second = StagedFile::create(temp.path(), "b", 0640);
  const fs::path first_path = first.path();
  const fs::path second_path = second.path();
  StagedFile moved = std::move(first);
  EXPECT_TRUE(first.path().empty());
  EXPECT_THROW(first.publish_to(temp.path(), "x.csv.gz"), ArchiveError);  // nothing staged
  EXPECT_EQ(moved.path(), first_path);
  moved = std::move(second);
  EXPECT_FALSE(fs::exists(first_path));
  EXPECT_TRUE(fs::exists(second_path));
  moved.sync();
  EXPECT_EQ(entries(temp.path()), 1u);
}

TEST(StagedFile, NamesAreUniqueAndStayInTheStagingFolder) {
  TempDir temp;
  std::set<fs::path> paths;
  std::vector<StagedFile> files;
  for (const std::string_view hint : {"x", "x", "../../escape", "a/b", "", ".", "_SUCCESS"}) {
    files.push_back(StagedFile::create(temp.path(), hint, 0600));
    EXPECT_EQ(files.back().path().parent_path(), temp.path()) << hint;
    paths.insert(files.back().path());
  }
  EXPECT_EQ(paths.size(), files.size());
  EXPECT_EQ(entries(temp.path()), files.size());
  files.clear();
  EXPECT_EQ(entries(temp.path()), 0u);
}

TEST(StagedFile, TheModeIsExactWhateverTheUmask) {
  TempDir temp;
  const mode_t previous = ::umask(0077);
  StagedFile open_to_group = StagedFile::create(temp.path(), "x", 0640);
  ::umask(0000);
  StagedFile private_file = StagedFile::create(temp.path(), "y", 0600);
  ::umask(previous);
  struct stat info {};
  ASSERT_EQ(::lstat(open_to_group.path().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0640u);
  ASSERT_EQ(::lstat(private_file.path().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0600u);
}

TEST(StagedFile, ASymlinkedOrMissingStagingFolderIsRefused) {
  TempDir temp;
  fs::create_directories(temp.path() / "real");
  fs::create_directory_symlink(temp.path() / "real", temp.path() / "link");
  EXPECT_THROW(StagedFile::create(temp.path() / "link", "x", 0640), ArchiveError);
  EXPECT_THROW(StagedFile::create(temp.path() / "missing", "x", 0640), ArchiveError);
  EXPECT_EQ(entries(temp.path() / "real"), 0u);
}

// RLIMIT_FSIZE fails writes past a size with EFBIG, as a full disk fails them with ENOSPC;
// SIGXFSZ is ignored meanwhile so that the write returns the error instead.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) : signal_(std::signal(SIGXFSZ, SIG_IGN)) {
    ::getrlimit(RLIMIT_FSIZE, &previous_);
    const rlimit limit{bytes, previous_.rlim_max};
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &previous_);
    std::signal(SIGXFSZ, signal_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit previous_{};
  void (*signal_)(int);
};

TEST(StagedFile, AWriteFailureNamesThePath) {
  TempDir temp;
  StagedFile file = StagedFile::create(temp.path(), "download", 0640);
  const fs::path path = file.path();
  try {
    const FileSizeLimit limit{4096};
    file.write(std::string(64 * 1024, 'x'));
    FAIL() << "expected ArchiveError";
  } catch (const ArchiveError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
    EXPECT_NE(message.find("File too large"), std::string::npos) << message;
  }
  file = StagedFile::create(temp.path(), "next", 0640);  // the failed one is dropped
  EXPECT_FALSE(fs::exists(path));
  file.sync();
  EXPECT_EQ(file.fd(), -1);
  EXPECT_THROW(file.write("after sync"), ArchiveError);
}

TEST(StagedFile, PublishToMovesTheFileIntoAFolder) {
  TempDir temp;
  fs::create_directories(temp.path() / "out" / ".staging");
  StagedFile file = StagedFile::create(temp.path() / "out" / ".staging", "fetch", 0640);
  file.write("verified bytes");
  EXPECT_THROW(file.publish_to(temp.path() / "out", "../escape.csv.gz"), ArchiveError);
  const fs::path published = file.publish_to(temp.path() / "out", "part-0.csv.gz");
  EXPECT_EQ(published, temp.path() / "out" / "part-0.csv.gz");
  EXPECT_EQ(read_file(published), "verified bytes");
  EXPECT_EQ(mode_of(published), 0640u);
  EXPECT_EQ(entries(temp.path() / "out" / ".staging"), 0u);
  EXPECT_FALSE(fs::exists(temp.path() / "escape.csv.gz"));
}

TEST(ArchiveStage, StagedBytesAreSyncedInStagingWithTheArchivesMode) {
  TempDir temp;
  const Archive archive{temp.path() / "archive", 0077};
  StagedFile file = archive.stage_bytes("chart json");
  EXPECT_EQ(file.path().parent_path(), archive.staging_dir());
  EXPECT_EQ(file.fd(), -1);  // synced and closed
  EXPECT_EQ(read_file(file.path()), "chart json");
  EXPECT_EQ(mode_of(file.path()), 0600u);

  StagedFile empty = archive.stage("download");
  EXPECT_GE(empty.fd(), 0);
  EXPECT_EQ(mode_of(empty.path()), 0600u);
  const fs::path published =
      archive.publish(std::move(empty), "j", "visit", hour_slot(), "a.csv.gz");
  EXPECT_EQ(fs::file_size(published), 0u);        // synced by publish when the caller did not
  EXPECT_EQ(entries(archive.staging_dir()), 1u);  // `file` is still staged
}

TEST(ArchiveHolds, ARegularFileOfTheRecordedSizeAndContentOnly) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  archive.publish(archive.stage_bytes("0123456789"), "j", "visit", hour_slot(), "a.csv.gz");
  const ManifestFile recorded{.name = "a.csv.gz", .bytes = 10, .sha256 = sha256_hex("0123456789")};
  EXPECT_TRUE(archive.holds("j", "visit", hour_slot(), recorded));
  // The same size with other bytes is not the recorded file.
  ManifestFile other_content = recorded;
  other_content.sha256 = sha256_hex("0123456780");
  EXPECT_FALSE(archive.holds("j", "visit", hour_slot(), other_content));

  ManifestFile other_size = recorded;
  other_size.bytes = 11;
  EXPECT_FALSE(archive.holds("j", "visit", hour_slot(), other_size));
  ManifestFile missing = recorded;
  missing.name = "b.csv.gz";
  EXPECT_FALSE(archive.holds("j", "visit", hour_slot(), missing));
  EXPECT_FALSE(archive.holds("j", "page", hour_slot(), recorded));  // no such partition
  ManifestFile unsafe = recorded;
  unsafe.name = "../hour=03/a.csv.gz";
  EXPECT_FALSE(archive.holds("j", "visit", hour_slot(), unsafe));

  // A symlink to a file of the right size is not the file.
  const fs::path partition = archive.partition_dir("j", "visit", hour_slot());
  write_file(temp.path() / "elsewhere", "0123456789");
  fs::create_symlink(temp.path() / "elsewhere", partition / "link.csv.gz");
  ManifestFile linked = recorded;
  linked.name = "link.csv.gz";
  EXPECT_FALSE(archive.holds("j", "visit", hour_slot(), linked));

  // Nor is a file reached through a symlinked partition folder.
  fs::create_directories(archive.root() / "k/visit/dt=2026-11-22");
  fs::create_directory_symlink(partition, archive.root() / "k/visit/dt=2026-11-22/hour=03");
  EXPECT_FALSE(archive.holds("k", "visit", hour_slot(), recorded));
}

TEST(ArchiveHolds, AFileChangedInPlaceAfterACheckIsReadAgain) {
  // holds() remembers the sha256 of what it read, so a retried slot does not read its
  // parts at every pass; bytes rewritten in place with the size and mtime kept must
  // still be seen (the memo goes by ctime too).
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  const fs::path path =
      archive.publish(archive.stage_bytes("0123456789"), "j", "visit", hour_slot(), "a.csv.gz");
  const ManifestFile recorded{.name = "a.csv.gz", .bytes = 10, .sha256 = sha256_hex("0123456789")};
  ASSERT_TRUE(archive.holds("j", "visit", hour_slot(), recorded));
  ASSERT_TRUE(archive.holds("j", "visit", hour_slot(), recorded));  // from the memo

  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  {
    std::fstream file{path, std::ios::in | std::ios::out | std::ios::binary};
    file.seekp(3);
    file.put('X');
  }
  const timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  EXPECT_FALSE(archive.holds("j", "visit", hour_slot(), recorded));
}

TEST(ManifestBuilder, NamesThePartitionAndKeepsTheFilesInOrder) {
  const std::vector<ManifestFile> files{{"b.csv.gz", 2, std::string(64, 'b')},
                                        {"a.csv.gz", 1, std::string(64, 'a')}};
  const Instant at = *parse_utc("2026-11-21T20:45:07Z");
  EXPECT_EQ(make_manifest("shop-hourly", "visit", hour_slot(), at, files),
            sample_manifest(hour_slot(), files));
  const Manifest day = make_manifest("shop-daily", "page", day_slot(), at, {});
  EXPECT_EQ(day.slot, "2026-11-22");
  EXPECT_EQ(day.export_date, day_slot().export_date());
  EXPECT_TRUE(day.files.empty());
}

// --- partitions ----------------------------------------------------------------------

TEST(ArchivePartition, CompleteWritesManifestThenSuccess) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  archive.publish(archive.stage_bytes("0123456789"), "shop-hourly", "visit", hour_slot(),
                  "a.csv.gz");
  const Manifest manifest = sample_manifest(
      hour_slot(), {{.name = "a.csv.gz", .bytes = 10, .sha256 = std::string(64, 'a')}});

  archive.complete_partition(manifest, hour_slot());
  const fs::path partition = archive.partition_dir("shop-hourly", "visit", hour_slot());
  EXPECT_TRUE(archive.is_complete("shop-hourly", "visit", hour_slot()));
  ASSERT_TRUE(fs::is_regular_file(partition / "_SUCCESS"));
  EXPECT_EQ(fs::file_size(partition / "_SUCCESS"), 0u);
  const auto parsed = parse_manifest(read_file(partition / "_manifest.json"));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, manifest);
  EXPECT_EQ(archive.read_manifest("shop-hourly", "visit", hour_slot()), manifest);
  EXPECT_EQ(entries(archive.staging_dir()), 0u);
  EXPECT_EQ(entries(partition), 3u);  // a.csv.gz, _manifest.json, _SUCCESS
}

TEST(ArchivePartition, CompleteRemovesPartsTheManifestDoesNotList) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  for (const char* name : {"old.csv.gz", "new.csv.gz"}) {
    archive.publish(archive.stage_bytes(name), "shop-hourly", "visit", hour_slot(), name);
  }
  const fs::path partition = archive.partition_dir("shop-hourly", "visit", hour_slot());
  fs::create_directory(partition / "someone-elses-folder");

  // A later answer of the API names only new.csv.gz: old.csv.gz would be read twice.
  archive.complete_partition(
      sample_manifest(hour_slot(),
                      {{.name = "new.csv.gz", .bytes = 10, .sha256 = std::string(64, 'b')}}),
      hour_slot());
  EXPECT_FALSE(fs::exists(partition / "old.csv.gz"));
  EXPECT_EQ(read_file(partition / "new.csv.gz"), "new.csv.gz");
  EXPECT_TRUE(fs::is_directory(partition / "someone-elses-folder"));
  EXPECT_TRUE(fs::exists(partition / "_SUCCESS"));
}

TEST(ArchivePartition, EmptyDataTypeStillGetsAPartition) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  Manifest manifest = sample_manifest(day_slot(), {});
  manifest.job = "shop-daily";
  manifest.data_type = "ads_track_click";
  EXPECT_FALSE(archive.is_complete("shop-daily", "ads_track_click", day_slot()));

  archive.complete_partition(manifest, day_slot());
  const fs::path partition = temp.path() / "archive/shop-daily/ads_track_click/dt=2026-11-22";
  EXPECT_TRUE(fs::is_regular_file(partition / "_SUCCESS"));
  EXPECT_TRUE(archive.is_complete("shop-daily", "ads_track_click", day_slot()));
  const auto read = archive.read_manifest("shop-daily", "ads_track_click", day_slot());
  ASSERT_TRUE(read.has_value());
  EXPECT_TRUE(read->files.empty());
  EXPECT_EQ(read->slot, "2026-11-22");
  EXPECT_EQ(read->export_date, "202611220000");
}

TEST(ArchivePartition, ReopenRemovesOnlyTheMarker) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  archive.reopen_partition("j", "visit", hour_slot());  // nothing there yet: no error
  const Manifest manifest = sample_manifest(hour_slot(), {});
  archive.complete_partition(manifest, hour_slot());
  ASSERT_TRUE(archive.is_complete(manifest.job, "visit", hour_slot()));

  archive.reopen_partition(manifest.job, "visit", hour_slot());
  EXPECT_FALSE(archive.is_complete(manifest.job, "visit", hour_slot()));
  EXPECT_EQ(archive.read_manifest(manifest.job, "visit", hour_slot()), manifest);
  archive.reopen_partition(manifest.job, "visit", hour_slot());  // twice is fine

  archive.complete_partition(manifest, hour_slot());
  EXPECT_TRUE(archive.is_complete(manifest.job, "visit", hour_slot()));
}

TEST(ArchivePartition, SymlinkedMarkerDoesNotCount) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  const fs::path partition = archive.partition_dir("j", "visit", hour_slot());
  fs::create_directories(partition);
  write_file(temp.path() / "elsewhere", "");
  fs::create_symlink(temp.path() / "elsewhere", partition / "_SUCCESS");
  EXPECT_FALSE(archive.is_complete("j", "visit", hour_slot()));
  fs::create_symlink(temp.path() / "elsewhere", partition / "_manifest.json");
  EXPECT_FALSE(archive.read_manifest("j", "visit", hour_slot()).has_value());
}

// Publication order: _SUCCESS only after the manifest is in place. A real fault stops the
// manifest (a folder in the way of its rename: EISDIR), and no marker may appear.
TEST(ArchivePartition, NoSuccessMarkerWhenTheManifestCannotBePublished) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  const Manifest manifest = sample_manifest(hour_slot(), {{"a.csv.gz", 3, std::string(64, 'a')}});
  const fs::path partition = archive.partition_dir(manifest.job, "visit", hour_slot());
  fs::create_directories(partition / "_manifest.json");
  write_file(partition / "_manifest.json" / "in-the-way", "x");
  write_file(partition / "a.csv.gz", "abc");

  try {
    archive.complete_partition(manifest, hour_slot());
    ADD_FAILURE() << "the manifest was published over a folder";
  } catch (const ArchiveError& error) {
    EXPECT_NE(std::string{error.what()}.find("_manifest.json"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(fs::exists(partition / "_SUCCESS")) << "_SUCCESS published without its manifest";
  EXPECT_FALSE(archive.is_complete(manifest.job, "visit", hour_slot()));
  EXPECT_TRUE(fs::is_directory(partition / "_manifest.json"));
  for (const auto& entry : fs::directory_iterator{archive.staging_dir()}) {
    EXPECT_FALSE(entry.path().extension() == ".tmp") << "left in staging: " << entry.path();
  }

  // Once the way is clear, both appear.
  fs::remove_all(partition / "_manifest.json");
  archive.complete_partition(manifest, hour_slot());
  EXPECT_TRUE(archive.is_complete(manifest.job, "visit", hour_slot()));
  EXPECT_EQ(archive.read_manifest(manifest.job, "visit", hour_slot()), manifest);
}

TEST(ArchivePartition, CompleteDoesNotWriteThroughPlantedMarkerSymlinks) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  const Manifest manifest = sample_manifest(hour_slot(), {});
  const fs::path partition = archive.partition_dir(manifest.job, "visit", hour_slot());
  fs::create_directories(partition);
  const fs::path victim = temp.path() / "victim";
  write_file(victim, "precious");
  fs::create_symlink(victim, partition / "_manifest.json");
  fs::create_symlink(victim, partition / "_SUCCESS");

  archive.complete_partition(manifest, hour_slot());
  EXPECT_EQ(read_file(victim), "precious");
  EXPECT_TRUE(archive.is_complete(manifest.job, "visit", hour_slot()));
  EXPECT_EQ(archive.read_manifest(manifest.job, "visit", hour_slot()), manifest);
}

// --- manifest JSON -------------------------------------------------------------------

TEST(ManifestJson, RoundTripsWithStableKeyOrder) {
  const Manifest manifest = sample_manifest(
      hour_slot(), {{.name = "20191212_渠道.csv.gz", .bytes = 67108864, .sha256 = "ab"},
                    {.name = "b \"quoted\".csv.gz", .bytes = 18446744073709551615u, .sha256 = ""}});
  const std::string json = to_json(manifest);
  EXPECT_EQ(parse_manifest(json), manifest);
  EXPECT_EQ(to_json(manifest), json);  // deterministic

  std::size_t last = 0;
  for (const char* key : {"\"job\"", "\"data_type\"", "\"slot\"", "\"export_date\"",
                          "\"archived_at\"", "\"files\"", "\"name\"", "\"bytes\"", "\"sha256\""}) {
    const std::size_t at = json.find(key);
    ASSERT_NE(at, std::string::npos) << key;
    EXPECT_GT(at, last) << key;
    last = at;
  }
  EXPECT_NE(json.find("\"archived_at\": \"2026-11-21T20:45:07Z\""), std::string::npos) << json;
  EXPECT_NE(json.find("渠道"), std::string::npos) << json;  // UTF-8 kept as is
}

// A local manifest has no sink fields, and its text is what it always was: the exact
// bytes, so archives written before sinks existed and after compare equal.
TEST(ManifestJson, LocalManifestHasNoSinkFields) {
  const Manifest manifest = sample_manifest(
      hour_slot(), {{.name = "a.csv.gz", .bytes = 1, .sha256 = std::string(64, 'f')}});
  EXPECT_EQ(to_json(manifest),
            "{\n"
            "  \"job\": \"shop-hourly\",\n"
            "  \"data_type\": \"visit\",\n"
            "  \"slot\": \"2026-11-22T03\",\n"
            "  \"export_date\": \"202611220300\",\n"
            "  \"archived_at\": \"2026-11-21T20:45:07Z\",\n"
            "  \"rows\": null,\n"
            "  \"rows_note\": \"not counted\",\n"
            "  \"files\": [\n"
            "    {\"name\": \"a.csv.gz\", \"bytes\": 1, \"sha256\": \"" +
                std::string(64, 'f') +
                "\"}\n"
                "  ]\n"
                "}\n");
}

// A sink's copy (sink/sink.hpp) records the checksum checked on the remote and each
// object's remote hash; both round-trip, and a wrong type is refused like other fields.
TEST(ManifestJson, RemoteFieldsRoundTripWhenSet) {
  Manifest manifest = sample_manifest(
      hour_slot(), {{.name = "a.csv.gz", .bytes = 1, .sha256 = std::string(64, 'f')},
                    {.name = "b.csv.gz", .bytes = 2, .sha256 = std::string(64, 'e')}});
  manifest.remote_checksum = "md5";
  manifest.files[0].remote_hash = std::string(32, '0');
  manifest.files[1].remote_hash = std::string(32, '1');
  const std::string json = to_json(manifest);
  EXPECT_NE(json.find("\"remote_checksum\": \"md5\",\n  \"files\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"sha256\": \"" + std::string(64, 'f') + "\", \"remote_hash\": \"" +
                      std::string(32, '0') + "\"}"),
            std::string::npos)
      << json;
  EXPECT_EQ(parse_manifest(json), manifest);

  manifest.remote_checksum = "none";  // verified by size only: no hash per file
  manifest.files[0].remote_hash.clear();
  manifest.files[1].remote_hash.clear();
  EXPECT_EQ(parse_manifest(to_json(manifest)), manifest);

  std::string wrong = json;
  wrong.replace(wrong.find("\"md5\""), 5, "5");
  EXPECT_FALSE(parse_manifest(wrong).has_value()) << wrong;
  wrong = json;
  wrong.replace(wrong.find("\"" + std::string(32, '0') + "\""), 34, "[]");
  EXPECT_FALSE(parse_manifest(wrong).has_value()) << wrong;
}

// The counter keeps a header's raw bytes; the manifest (JSON, so UTF-8) writes each
// byte that starts no valid sequence as U+FFFD, so that parse_manifest reads it back.
TEST(ManifestJson, InvalidUtf8ColumnsAreWrittenAsReplacementCharacters) {
  const Manifest manifest = sample_manifest(
      day_slot(), {{.name = "a.csv.gz",
                    .bytes = 1,
                    .sha256 = "aa",
                    .rows = 1,
                    .columns = {"\xff\xfe", "\xc3", "ok", "\xe4\xb8\xad\xed\xa0\x80"}}});
  const auto parsed = parse_manifest(to_json(manifest));
  ASSERT_TRUE(parsed.has_value()) << to_json(manifest);
  ASSERT_EQ(parsed->files.size(), 1u);
  const std::string fffd = "\xef\xbf\xbd";
  EXPECT_EQ(
      parsed->files[0].columns,
      (std::vector<std::string>{fffd + fffd, fffd, "ok", "\xe4\xb8\xad" + fffd + fffd + fffd}));
}

// Rows (issue 16): each file's rows, columns and (split) rows_by_hour, and the total at
// the top; a partition with an uncounted file has a null total and says why.
TEST(ManifestJson, RowsRoundTripWithTheTotal) {
  std::vector<std::uint64_t> hours(24, 0);
  hours[3] = 5;
  hours[23] = 1;
  Manifest manifest = sample_manifest(
      day_slot(),
      {{.name = "a.csv.gz", .bytes = 1, .sha256 = "aa", .rows = 7, .columns = {"time", "a \"b\""}},
       {.name = "b.csv.gz",
        .bytes = 2,
        .sha256 = "bb",
        .rows = 6,
        .columns = {"time"},
        .rows_by_hour = hours}});
  std::string json = to_json(manifest);
  EXPECT_NE(json.find("\"archived_at\": \"2026-11-21T20:45:07Z\",\n  \"rows\": 13,\n  \"files\""),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"sha256\": \"aa\", \"rows\": 7, \"columns\": [\"time\", \"a \\\"b\\\"\"]}"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"rows_by_hour\": [0, 0, 0, 5, 0"), std::string::npos) << json;
  EXPECT_EQ(json.find("rows_note"), std::string::npos) << json;
  EXPECT_EQ(parse_manifest(json), manifest);
  EXPECT_EQ(total_rows(manifest), 13u);

  manifest.files[1].rows.reset();
  manifest.files[1].columns.clear();
  manifest.files[1].rows_by_hour.clear();
  manifest.rows_note = std::string{kRowsNotCountedSize};
  json = to_json(manifest);
  EXPECT_NE(json.find("\"rows\": null,\n  \"rows_note\": \"not counted: verify is size\",\n"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("{\"name\": \"b.csv.gz\", \"bytes\": 2, \"sha256\": \"bb\"}"),
            std::string::npos)
      << json;
  EXPECT_EQ(parse_manifest(json), manifest);
  EXPECT_EQ(total_rows(manifest), std::nullopt);

  EXPECT_EQ(total_rows(sample_manifest(day_slot(), {})), 0u);  // nothing to count
  const std::string empty = to_json(sample_manifest(day_slot(), {}));
  EXPECT_NE(empty.find("\"rows\": 0,"), std::string::npos) << empty;

  // Wrong shapes are refused like other fields.
  const std::string good = to_json(sample_manifest(day_slot(), {{.name = "a.csv.gz",
                                                                 .bytes = 1,
                                                                 .sha256 = "aa",
                                                                 .rows = 2,
                                                                 .columns = {"x"},
                                                                 .rows_by_hour = hours}}));
  ASSERT_TRUE(parse_manifest(good).has_value());
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"\"rows\": 2,\n", "\"rows\": -2,\n"},  // the total
           {"\"rows\": 2,\n", "\"rows\": \"2\",\n"},
           {"\"rows\": 2, ", "\"rows\": -2, "},  // a file's
           {"\"rows\": 2, ", "\"rows\": \"2\", "},
           {"[\"x\"]", "[1]"},
           {"[\"x\"]", "\"x\""},
           {"[0, 0, 0, 5", "[0, 0, 5"},
           {"[0, 0, 0, 5", "[0, 0, -1, 5"}}) {
    std::string wrong = good;
    wrong.replace(wrong.find(from), from.size(), to);
    EXPECT_FALSE(parse_manifest(wrong).has_value()) << wrong;
  }
}

// A manifest written before rows were counted (no "rows" anywhere) is still valid: its
// files are simply not counted.
TEST(ManifestJson, ManifestWithoutRowsStaysValid) {
  const std::string old_text =
      "{\n  \"job\": \"j\",\n  \"data_type\": \"visit\",\n  \"slot\": \"2026-11-22T03\",\n"
      "  \"export_date\": \"202611220300\",\n  \"archived_at\": \"2026-11-21T20:45:07Z\",\n"
      "  \"files\": [\n    {\"name\": \"a.csv.gz\", \"bytes\": 1, \"sha256\": \"ff\"}\n  ]\n}\n";
  const auto parsed = parse_manifest(old_text);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->files.at(0).rows, std::nullopt);
  EXPECT_TRUE(parsed->files.at(0).columns.empty());
  EXPECT_EQ(total_rows(*parsed), std::nullopt);
}

TEST(ManifestJson, EmptyFileListRoundTrips) {
  const Manifest manifest = sample_manifest(day_slot(), {});
  EXPECT_EQ(parse_manifest(to_json(manifest)), manifest);
}

TEST(ManifestJson, MalformedTextsAreRejected) {
  const std::string good = to_json(sample_manifest(
      hour_slot(), {{.name = "a.csv.gz", .bytes = 1, .sha256 = std::string(64, 'f')}}));
  ASSERT_TRUE(parse_manifest(good).has_value());

  const auto replaced = [&](std::string_view from, std::string_view to) {
    std::string text = good;
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return text.replace(at, from.size(), to);
  };
  for (const std::string& bad : {
           std::string{""},
           std::string{"not json"},
           std::string{"[]"},
           good.substr(0, good.size() / 2),
           replaced("\"job\"", "\"jobs\""),
           replaced("\"shop-hourly\"", "7"),
           replaced("\"bytes\": 1", "\"bytes\": -1"),
           replaced("\"bytes\": 1", "\"bytes\": 1.5"),
           replaced("\"bytes\": 1", "\"bytes\": \"1\""),
           replaced("2026-11-21T20:45:07Z", "yesterday"),
           replaced("\"a.csv.gz\"", "\"../../etc/passwd\""),
           replaced("\"a.csv.gz\"", "\"_SUCCESS\""),
           replaced("\"files\": [", "\"files\": 1, \"other\": ["),
       }) {
    EXPECT_FALSE(parse_manifest(bad).has_value()) << bad;
  }
}

// --- names ---------------------------------------------------------------------------

TEST(DataTypes, OnlyLettersDigitsUnderscoreAndInnerDashes) {
  // Types the vendor may add (adsTrackClick) become folders under their own names.
  for (const std::string_view good :
       {"visit", "custom_event", "ads_track_click", "a1", "_", "adsTrackClick", "Visit", "a-b"}) {
    EXPECT_TRUE(is_safe_data_type(good)) << good;
  }
  for (const std::string_view bad : std::initializer_list<std::string_view>{
           "", "../x", "a/b", ".", "..", "-a", ".a", "a b", "a.b", "a\\b", "渠道", "a\x1b",
           std::string_view{"a\0b", 3}}) {
    EXPECT_FALSE(is_safe_data_type(bad)) << bad;
  }
  EXPECT_TRUE(is_safe_data_type(std::string(64, 'a')));
  EXPECT_FALSE(is_safe_data_type(std::string(65, 'a')));
}

struct LinkCase {
  std::string url;
  std::string expected;
};

TEST(FileNameFromLink, Table) {
  const std::string base = "https://gta.growingio.com/buckets/b/";
  const LinkCase cases[] = {
      {base + "20191212-20191225_visit_0.csv.gz?sign=abc&expires=1577344409140",
       "20191212-20191225_visit_0.csv.gz"},
      {base + "20191212-20191225_%E6%B8%A0%E9%81%93.csv?sign=abc", "20191212-20191225_渠道.csv"},
      {base + "..%2F..%2Fetc%2Fpasswd", "part-_.._etc_passwd"},
      {base + "%2e%2e", "part-7.csv.gz"},
      {base + "%2E", "part-7.csv.gz"},
      {base + "..", "part-7.csv.gz"},
      {base + "a%00b.csv.gz", "a_b.csv.gz"},
      {base + "a%01%1F%7Fx%0A.csv", "a___x_.csv"},
      {base + "a%5Cb.csv.gz", "a_b.csv.gz"},
      {base + "file.csv.gz?sign=..%2F..%2Fx&n=/etc/passwd#frag/ment", "file.csv.gz"},
      {base + "_SUCCESS", "part-_SUCCESS"},
      {base + "_manifest.json", "part-_manifest.json"},
      {base + "_temporary.csv.gz", "part-_temporary.csv.gz"},
      {base + ".hidden.csv.gz", "hidden.csv.gz"},
      {base + "%20.%20._x.csv", "part-_x.csv"},
      {base + "%FF%FEab%C3.csv", "part-__ab_.csv"},
      {base + "x%C0%AFx", "x__x"},           // overlong '/'
      {base + "x%ED%A0%80x", "x___x"},       // UTF-16 surrogate
      {base + "x%E6%B8x", "x__x"},           // truncated sequence
      {base + "%F0%9F%98%80.csv", "😀.csv"},  // 4-byte sequence kept
      {"https://gta.growingio.com", "part-7.csv.gz"},
      {"https://gta.growingio.com/", "part-7.csv.gz"},
      {base, "part-7.csv.gz"},
      {"", "part-7.csv.gz"},
      {"https://exa mple.com/a.csv.gz", "part-7.csv.gz"},
      {base + "a%zz.csv.gz", "part-7.csv.gz"},
      {"/relative/path/b.csv.gz?x=1", "b.csv.gz"},
  };
  for (const LinkCase& c : cases) {
    const std::string name = file_name_from_link(c.url, 7);
    EXPECT_EQ(name, c.expected) << c.url;
    EXPECT_TRUE(is_safe_file_name(name)) << name;
  }
}

TEST(FileNameFromLink, LongNamesKeepTheExtensionAndWholeCharacters) {
  std::string chinese;
  for (int i = 0; i < 100; ++i) {
    chinese += "%E6%B8%A0";  // 渠, 3 bytes
  }
  const std::string name = file_name_from_link("https://h/" + chinese + ".csv.gz?s=1", 0);
  std::string expected;
  for (int i = 0; i < 64; ++i) {  // 64 * 3 + 7 = 199 <= 200 < 65 * 3 + 7
    expected += "渠";
  }
  expected += ".csv.gz";
  EXPECT_EQ(name, expected);
  EXPECT_TRUE(is_safe_file_name(name));

  const std::string ascii =
      file_name_from_link("https://h/" + std::string(300, 'a') + ".csv.gz", 0);
  EXPECT_EQ(ascii, std::string(193, 'a') + ".csv.gz");

  const std::string no_extension = file_name_from_link("https://h/" + std::string(300, 'b'), 0);
  EXPECT_EQ(no_extension, std::string(200, 'b'));

  const std::string exactly = std::string(193, 'c') + ".csv.gz";
  EXPECT_EQ(file_name_from_link("https://h/" + exactly, 0), exactly);
}

TEST(FileNamesForLinks, CollisionsGetNumberedBeforeTheExtension) {
  EXPECT_EQ(file_names_for_links({"https://a/x/f.csv.gz?sign=1", "https://b/y/f.csv.gz?sign=2",
                                  "https://c/f.csv.gz", "https://c/g.csv.gz"}),
            (std::vector<std::string>{"f.csv.gz", "f-2.csv.gz", "f-3.csv.gz", "g.csv.gz"}));
  // A renamed duplicate never takes a name another link has.
  EXPECT_EQ(
      file_names_for_links({"https://h/a.csv.gz", "https://h/a.csv.gz", "https://h/a-2.csv.gz"}),
      (std::vector<std::string>{"a.csv.gz", "a-3.csv.gz", "a-2.csv.gz"}));
  EXPECT_EQ(file_names_for_links({"https://h/data", "https://h/data"}),
            (std::vector<std::string>{"data", "data-2"}));
  EXPECT_EQ(file_names_for_links({"https://h/", "https://h/%2e%2e", "https://h/part-0.csv.gz"}),
            (std::vector<std::string>{"part-0.csv.gz", "part-1.csv.gz", "part-0-2.csv.gz"}));
  EXPECT_TRUE(file_names_for_links({}).empty());

  const std::string long_name = "https://h/" + std::string(300, 'z') + ".csv.gz";
  const auto names = file_names_for_links({long_name, long_name, long_name});
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), 3u);
  for (const std::string& name : names) {
    EXPECT_TRUE(is_safe_file_name(name)) << name;
  }
  EXPECT_EQ(names[1], std::string(191, 'z') + "-2.csv.gz");
}

TEST(FileNamesForLinks, HostileLinksNeverLeaveThePartition) {
  // Every way a link could try to name something outside its partition or hide among
  // the archive's own files, published for real: all files end up in the partition,
  // under distinct safe names, and nothing else appears anywhere.
  const std::vector<std::string> links = {
      "https://h/b/..%2F..%2F..%2Fescape.csv.gz?sign=1",
      "https://h/b/%2Fetc%2Fpasswd",
      "https://h/b/..",
      "https://h/b/%2e%2e%2f",
      "https://h/b/a%00b.csv.gz",
      "https://h/b/a%01b.csv.gz",  // the same name as the one above once sanitized
      "https://h/b/a%0Ab.csv.gz",
      "https://h/b/a%1Bb.csv.gz",
      "https://h/b/_SUCCESS",
      "https://h/b/_manifest.json",
      "https://h/b/.staging",
      "https://h/b/" + std::string(5000, 'L') + ".csv.gz",
      "https://h/b/" + std::string(5000, 'L') + ".csv.gz",
      "https://h/b/C:%5Cwindows%5Cx.csv",
      "https://h/b/%C0%AE%C0%AE%C0%AF",  // overlong "../"
  };
  const auto names = file_names_for_links(links);
  ASSERT_EQ(names.size(), links.size());
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());

  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  for (std::size_t i = 0; i < names.size(); ++i) {
    EXPECT_TRUE(is_safe_file_name(names[i])) << names[i];
    EXPECT_NE(names[i], kSuccessName);
    EXPECT_NE(names[i], kManifestName);
    EXPECT_LE(names[i].size(), kMaxFileNameBytes);
    archive.publish(archive.stage_bytes(std::to_string(i)), "j", "visit", hour_slot(), names[i]);
  }
  const fs::path partition = archive.partition_dir("j", "visit", hour_slot());
  EXPECT_EQ(entries(partition), names.size());
  EXPECT_EQ(entries(archive.staging_dir()), 0u);
  EXPECT_FALSE(archive.is_complete("j", "visit", hour_slot()));
  std::size_t files = 0;
  for (const auto& entry : fs::recursive_directory_iterator{temp.path()}) {
    if (!entry.is_directory()) {
      ++files;
      EXPECT_EQ(entry.path().parent_path(), partition) << entry.path();
    }
  }
  EXPECT_EQ(files, names.size());
}

// --- modes -----------------------------------------------------------------------------

// The process umask, narrowed or widened for one test.
class ProcessUmask {
 public:
  explicit ProcessUmask(mode_t mask) : previous_(::umask(mask)) {}
  ~ProcessUmask() { ::umask(previous_); }
  ProcessUmask(const ProcessUmask&) = delete;
  ProcessUmask& operator=(const ProcessUmask&) = delete;

 private:
  mode_t previous_;
};

// Publishes one part and completes its partition under archive_umask, with the process
// umask set to `process_umask`; checks every file and folder the archive made.
void expect_modes(unsigned archive_umask, mode_t process_umask, unsigned file_mode,
                  unsigned folder_mode) {
  SCOPED_TRACE(::testing::Message() << std::oct << "archive umask " << archive_umask
                                    << ", process umask " << process_umask);
  TempDir temp;
  const ProcessUmask scoped{process_umask};
  const Archive archive{temp.path() / "new" / "archive", archive_umask};
  // Staged as the downloader does, with a mode of its own (0600 here).
  StagedFile staged = StagedFile::create(archive.staging_dir(), "download", 0600);
  staged.write("x");
  const fs::path published =
      archive.publish(std::move(staged), "j", "visit", hour_slot(), "a.csv.gz");
  Manifest manifest = sample_manifest(hour_slot(), {{"a.csv.gz", 1, std::string(64, '0')}});
  manifest.job = "j";
  archive.complete_partition(manifest, hour_slot());

  EXPECT_EQ(mode_of(published), file_mode);
  EXPECT_EQ(mode_of(published.parent_path() / kManifestName), file_mode);
  EXPECT_EQ(mode_of(published.parent_path() / kSuccessName), file_mode);
  EXPECT_EQ(mode_of(temp.path() / "new"), folder_mode);
  EXPECT_EQ(mode_of(archive.root()), folder_mode);
  EXPECT_EQ(mode_of(archive.staging_dir()), folder_mode);
  for (fs::path folder = published.parent_path(); folder != archive.root();
       folder = folder.parent_path()) {
    EXPECT_EQ(mode_of(folder), folder_mode) << folder;
  }
}

TEST(ArchiveModes, FilesAre0640AndFoldersAre0750ByDefault) {
  expect_modes(kDefaultUmask, 0022, 0640, 0750);
  // The process umask neither widens nor narrows what the archive asks for.
  expect_modes(kDefaultUmask, 0077, 0640, 0750);
  expect_modes(kDefaultUmask, 0000, 0640, 0750);
}

TEST(ArchiveModes, TheUmaskIsConfigurable) {
  expect_modes(0077, 0022, 0600, 0700);
  expect_modes(0022, 0077, 0644, 0755);
  expect_modes(0007, 0022, 0660, 0770);
}

TEST(ArchiveModes, AUmaskThatLocksOutTheOwnerIsRefused) {
  TempDir temp;
  EXPECT_THROW(Archive(temp.path() / "a", 0200), ArchiveError);
  EXPECT_THROW(Archive(temp.path() / "b", 0100), ArchiveError);
  EXPECT_THROW(Archive(temp.path() / "c", 01000), ArchiveError);
  EXPECT_FALSE(fs::exists(temp.path() / "a"));
}

TEST(ArchivePublish, AStagedSymlinkIsRefusedAndItsTargetUntouched) {
  TempDir temp;
  const Archive archive{temp.path() / "archive"};
  const fs::path victim = temp.path() / "victim";
  write_file(victim, "precious");
  fs::permissions(victim, fs::perms::owner_read | fs::perms::owner_write);
  // The staged file swapped for a symlink after it was written.
  StagedFile staged = archive.stage_bytes("x");
  fs::remove(staged.path());
  fs::create_symlink(victim, staged.path());
  EXPECT_THROW(archive.publish(std::move(staged), "j", "visit", hour_slot(), "a.csv.gz"),
               ArchiveError);
  EXPECT_EQ(mode_of(victim), 0600u);
  EXPECT_EQ(read_file(victim), "precious");
  EXPECT_FALSE(fs::exists(archive.partition_dir("j", "visit", hour_slot()) / "a.csv.gz"));
}

// --- scrub -----------------------------------------------------------------------------

std::string sha256_of(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    static constexpr char kHex[] = "0123456789abcdef";
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xf];
  }
  return hex;
}

// --- issue 15: the local copy of a slot landed on a sink ------------------------------

TEST(LocalCopy, SlotPartitionsListsEachWithItsManifestAndCompleteness) {
  TempDir dir;
  Archive archive{dir.path() / "archive"};
  const Slot slot = hour_slot();
  EXPECT_TRUE(archive.slot_partitions("j", slot).empty());
  archive.publish(archive.stage_bytes("data"), "j", "visit", slot, "a.csv.gz");
  const Manifest manifest =
      make_manifest("j", "visit", slot, Instant{}, {{"a.csv.gz", 4, sha256_hex("data")}});
  archive.complete_partition(manifest, slot);
  archive.publish(archive.stage_bytes("half"), "j", "page", slot, "b.csv.gz");  // not complete
  archive.publish(archive.stage_bytes("other hour"), "j", "visit", hour_slot("2026-11-22T04"),
                  "c.csv.gz");
  const std::vector<LocalPartition> partitions = archive.slot_partitions("j", slot);
  ASSERT_EQ(partitions.size(), 2u);
  EXPECT_EQ(partitions[0].data_type, "page");
  EXPECT_FALSE(partitions[0].complete);
  EXPECT_FALSE(partitions[0].manifest);
  EXPECT_EQ(partitions[1].data_type, "visit");
  EXPECT_TRUE(partitions[1].complete);
  EXPECT_EQ(partitions[1].manifest, manifest);
  EXPECT_EQ(partitions[1].dir, archive.partition_dir("j", "visit", slot));
}

TEST(LocalCopy, RemovePartitionTakesItsFilesAndEmptyFoldersOnly) {
  TempDir dir;
  Archive archive{dir.path() / "archive"};
  const Slot slot = hour_slot();
  const Slot next = hour_slot("2026-11-22T04");
  archive.publish(archive.stage_bytes("12345"), "j", "visit", slot, "a.csv.gz");
  archive.complete_partition(
      make_manifest("j", "visit", slot, Instant{}, {{"a.csv.gz", 5, sha256_hex("12345")}}), slot);
  archive.publish(archive.stage_bytes("xy"), "j", "visit", next, "b.csv.gz");
  // A symlink inside is removed as a link: its target stays.
  write_file(dir.path() / "outside", "keep me");
  fs::create_symlink(dir.path() / "outside", archive.partition_dir("j", "visit", slot) / "link");

  const std::uint64_t manifest_bytes =
      fs::file_size(archive.partition_dir("j", "visit", slot) / "_manifest.json");
  EXPECT_EQ(archive.remove_partition("j", "visit", slot), 5 + manifest_bytes);
  EXPECT_FALSE(fs::exists(archive.partition_dir("j", "visit", slot)));
  EXPECT_EQ(read_file(dir.path() / "outside"), "keep me");
  // The day's folder still holds hour 04; once that goes, the day goes too.
  EXPECT_TRUE(fs::exists(archive.partition_dir("j", "visit", next)));
  EXPECT_EQ(archive.remove_partition("j", "visit", next), 2u);
  EXPECT_FALSE(fs::exists(archive.partition_dir("j", "visit", next).parent_path()));
  EXPECT_TRUE(fs::exists(dir.path() / "archive" / "j" / "visit"));
  // Nothing there: nothing to do.
  EXPECT_EQ(archive.remove_partition("j", "visit", slot), 0u);
  EXPECT_EQ(archive.remove_partition("nojob", "visit", slot), 0u);
}

TEST(LocalCopy, RemovePartitionNeverFollowsASymlinkOnTheWay) {
  TempDir dir;
  Archive archive{dir.path() / "archive"};
  const Slot slot = day_slot();
  fs::create_directories(dir.path() / "elsewhere" / "dt=2026-11-22");
  write_file(dir.path() / "elsewhere" / "dt=2026-11-22" / "precious", "x");
  fs::create_directories(dir.path() / "archive" / "j");
  fs::create_symlink(dir.path() / "elsewhere", dir.path() / "archive" / "j" / "visit");
  EXPECT_THROW(archive.remove_partition("j", "visit", slot), ArchiveError);
  EXPECT_TRUE(fs::exists(dir.path() / "elsewhere" / "dt=2026-11-22" / "precious"));
  // A folder inside is not the archive's: it stays, and so does the partition.
  archive.publish(archive.stage_bytes("x"), "k", "visit", slot, "a.csv.gz");
  fs::create_directories(archive.partition_dir("k", "visit", slot) / "sub");
  EXPECT_EQ(archive.remove_partition("k", "visit", slot), 1u);
  EXPECT_TRUE(fs::exists(archive.partition_dir("k", "visit", slot) / "sub"));
  EXPECT_FALSE(fs::exists(archive.partition_dir("k", "visit", slot) / "a.csv.gz"));
}

class ScrubTest : public ::testing::Test {
 protected:
  ScrubTest() : archive_(temp_.path() / "archive") {}

  // Archives `parts` (name -> content) into one partition the way the daemon does.
  void archive(const std::string& data_type,
               const std::vector<std::pair<std::string, std::string>>& parts) {
    std::vector<ManifestFile> files;
    for (const auto& [name, content] : parts) {
      archive_.publish(archive_.stage_bytes(content), "shop-hourly", data_type, slot_, name);
      files.push_back({.name = name, .bytes = content.size(), .sha256 = sha256_of(content)});
    }
    Manifest manifest = sample_manifest(slot_, std::move(files));
    manifest.data_type = data_type;
    archive_.complete_partition(manifest, slot_);
  }

  PartitionScrub scrub(const std::string& data_type = "visit", VerifyMode mode = VerifyMode::gzip) {
    return scrub_partition(archive_.root(), "shop-hourly", data_type, slot_, mode);
  }
  fs::path dir(const std::string& data_type = "visit") const {
    return archive_.partition_dir("shop-hourly", data_type, slot_);
  }

  TempDir temp_;
  Archive archive_;
  Slot slot_ = hour_slot();
  const std::string part_a_ = gzip_member(std::string(100'000, 'a') + "\nvisit,1\n");
  const std::string part_b_ = gzip_member("user,event\nu1,e1\n");
};

TEST_F(ScrubTest, IntactPartitionIsClean) {
  archive("visit", {{"a.csv.gz", part_a_}, {"b.csv.gz", part_b_}});
  const PartitionScrub result = scrub();
  EXPECT_TRUE(result.intact()) << result.damage.front().problem;
  EXPECT_EQ(result.files, 2u);
  EXPECT_EQ(result.bytes, part_a_.size() + part_b_.size());
  EXPECT_EQ(result.path, dir());
}

TEST_F(ScrubTest, EmptyPartitionIsClean) {
  archive("page", {});
  EXPECT_TRUE(scrub("page").intact());
}

TEST_F(ScrubTest, WrongSizeIsDamage) {
  archive("visit", {{"a.csv.gz", part_a_}, {"b.csv.gz", part_b_}});
  write_file(dir() / "b.csv.gz", part_b_ + "x");
  const PartitionScrub result = scrub();
  ASSERT_EQ(result.damage.size(), 1u);
  EXPECT_EQ(result.damage[0].file, "b.csv.gz");
  EXPECT_EQ(result.damage[0].problem, "size " + std::to_string(part_b_.size() + 1) +
                                          " bytes, manifest says " +
                                          std::to_string(part_b_.size()));
}

TEST_F(ScrubTest, SameSizeCorruptionIsFoundBySha256EvenInSizeMode) {
  archive("visit", {{"a.csv.gz", part_a_}});
  std::string corrupt = part_a_;
  corrupt[corrupt.size() / 2] ^= 0x55;
  write_file(dir() / "a.csv.gz", corrupt);
  for (const VerifyMode mode : {VerifyMode::gzip, VerifyMode::size}) {
    const PartitionScrub result = scrub("visit", mode);
    ASSERT_EQ(result.damage.size(), 1u);
    EXPECT_EQ(result.damage[0].file, "a.csv.gz");
    EXPECT_TRUE(result.damage[0].problem.starts_with("sha256 ")) << result.damage[0].problem;
  }
}

TEST_F(ScrubTest, BrokenGzipWithMatchingManifestIsFoundInGzipModeOnly) {
  // A part that was never valid gzip but matches its manifest (e.g. archived in size
  // mode, or a manifest rewritten by hand): only gzip mode can tell.
  const std::string truncated = part_a_.substr(0, part_a_.size() - 20);
  const std::string garbage = "this is not gzip at all";
  archive("visit", {{"t.csv.gz", truncated}, {"g.csv.gz", garbage}});
  const PartitionScrub result = scrub("visit", VerifyMode::gzip);
  ASSERT_EQ(result.damage.size(), 2u);
  EXPECT_EQ(result.damage[0].file, "t.csv.gz");
  EXPECT_EQ(result.damage[0].problem, "gzip stream ends early (truncated)");
  EXPECT_EQ(result.damage[1].file, "g.csv.gz");
  EXPECT_TRUE(result.damage[1].problem.starts_with("not a valid gzip stream near byte "))
      << result.damage[1].problem;
  EXPECT_TRUE(scrub("visit", VerifyMode::size).intact());
}

TEST_F(ScrubTest, ConcatenatedGzipMembersAreValid) {
  archive("visit", {{"m.csv.gz", part_a_ + part_b_}});
  EXPECT_TRUE(scrub().intact());
}

TEST_F(ScrubTest, MissingFileIsDamage) {
  archive("visit", {{"a.csv.gz", part_a_}, {"b.csv.gz", part_b_}});
  fs::remove(dir() / "a.csv.gz");
  const PartitionScrub result = scrub();
  ASSERT_EQ(result.damage.size(), 1u);
  EXPECT_EQ(result.damage[0], (Damage{"a.csv.gz", "missing"}));
}

TEST_F(ScrubTest, SymlinkPlantedInPlaceOfAPartIsDamageAndNotFollowed) {
  archive("visit", {{"a.csv.gz", part_a_}});
  // The symlink points at a file with exactly the right bytes: following it would pass.
  const fs::path elsewhere = temp_.path() / "elsewhere.csv.gz";
  write_file(elsewhere, part_a_);
  fs::remove(dir() / "a.csv.gz");
  fs::create_symlink(elsewhere, dir() / "a.csv.gz");
  const PartitionScrub result = scrub();
  ASSERT_EQ(result.damage.size(), 1u);
  EXPECT_EQ(result.damage[0], (Damage{"a.csv.gz", "a symlink, not a regular file"}));
}

TEST_F(ScrubTest, MissingManifestOrMarkerIsDamageOfThePartition) {
  archive("visit", {{"a.csv.gz", part_a_}});
  fs::remove(dir() / "_SUCCESS");
  EXPECT_EQ(scrub().damage, (std::vector<Damage>{{"", "_SUCCESS missing"}}));
  fs::remove(dir() / "_manifest.json");
  EXPECT_EQ(scrub().damage,
            (std::vector<Damage>{{"", "_SUCCESS missing"}, {"", "_manifest.json missing"}}));
}

TEST_F(ScrubTest, UnparseableOrForeignManifestIsDamage) {
  archive("visit", {{"a.csv.gz", part_a_}});
  write_file(dir() / "_manifest.json", "{not json");
  EXPECT_EQ(scrub().damage,
            (std::vector<Damage>{{"", "_manifest.json does not parse as a manifest"}}));

  // A manifest copied from another partition does not describe this one.
  archive("page", {{"a.csv.gz", part_a_}});
  fs::copy_file(dir("page") / "_manifest.json", dir() / "_manifest.json",
                fs::copy_options::overwrite_existing);
  const PartitionScrub result = scrub();
  ASSERT_EQ(result.damage.size(), 1u);
  EXPECT_EQ(result.damage[0].problem,
            "_manifest.json describes shop-hourly/page/2026-11-22T03, not this partition");
}

TEST_F(ScrubTest, MissingPartitionAndSymlinkedFolderAreDamage) {
  PartitionScrub result = scrub();
  ASSERT_EQ(result.damage.size(), 1u);
  EXPECT_EQ(result.damage[0].file, "");
  EXPECT_TRUE(result.damage[0].problem.starts_with("partition folder missing"))
      << result.damage[0].problem;

  // A folder of the path swapped for a symlink to an intact copy is refused.
  archive("visit", {{"a.csv.gz", part_a_}});
  const fs::path hour_folder = dir();
  const fs::path copy = temp_.path() / "copy";
  fs::rename(hour_folder, copy);
  fs::create_directory_symlink(copy, hour_folder);
  result = scrub();
  ASSERT_EQ(result.damage.size(), 1u);
  EXPECT_EQ(result.damage[0].problem, hour_folder.string() + " is a symlink or not a folder");
}

TEST_F(ScrubTest, UnlistedFilesAreDamage) {
  archive("visit", {{"a.csv.gz", part_a_}});
  write_file(dir() / "extra.csv.gz", part_b_);
  const PartitionScrub result = scrub();
  ASSERT_EQ(result.damage.size(), 1u);
  EXPECT_EQ(result.damage[0].file, "extra.csv.gz");
}

TEST_F(ScrubTest, PartitionsOnDiskListsTheSlotsFolders) {
  EXPECT_TRUE(partitions_on_disk(archive_.root(), "shop-hourly", slot_).empty());
  archive("visit", {{"a.csv.gz", part_a_}});
  archive("page", {});
  // Another slot's partition is not this slot's.
  const Slot other = hour_slot("2026-11-22T04");
  archive_.complete_partition({.job = "shop-hourly",
                               .data_type = "action",
                               .slot = other.name(),
                               .export_date = other.export_date(),
                               .archived_at = *parse_utc("2026-11-21T20:45:07Z"),
                               .files = {}},
                              other);
  EXPECT_EQ(partitions_on_disk(archive_.root(), "shop-hourly", slot_),
            (std::vector<std::string>{"page", "visit"}));
  EXPECT_TRUE(partitions_on_disk(archive_.root(), "nobody", slot_).empty());
}

TEST_F(ScrubTest, RemoveSuccessMarkerWithoutTheStagingLock) {
  archive("visit", {{"a.csv.gz", part_a_}});
  // The daemon's Archive (archive_) holds the staging lock: this must work beside it.
  ASSERT_TRUE(archive_.exclusive());
  remove_success_marker(archive_.root(), "shop-hourly", "visit", slot_);
  EXPECT_FALSE(fs::exists(dir() / "_SUCCESS"));
  EXPECT_TRUE(fs::exists(dir() / "a.csv.gz"));
  EXPECT_TRUE(fs::exists(dir() / "_manifest.json"));
  remove_success_marker(archive_.root(), "shop-hourly", "visit", slot_);         // no marker
  remove_success_marker(archive_.root(), "shop-hourly", "nothing-here", slot_);  // no folder
  // Still exclusive: nothing took or released the daemon's lock.
  EXPECT_TRUE(Archive{archive_.root()}.exclusive() == false);
}

TEST_F(ScrubTest, ReadsLargePartsInBoundedBlocks) {
  // 24 MiB of incompressible-ish data: read back in blocks, hashed and inflated.
  std::string big;
  big.reserve(24 << 20);
  std::uint32_t x = 12345;
  while (big.size() < (24u << 20)) {
    x = x * 1664525 + 1013904223;
    big += static_cast<char>('a' + (x >> 24) % 26);
  }
  archive("visit", {{"big.csv.gz", gzip_member(big)}});
  const PartitionScrub result = scrub();
  EXPECT_TRUE(result.intact());
}

// --- gzip checking, with every inflater this build has --------------------------------

class GzipCheck : public ::testing::TestWithParam<Inflater> {
 protected:
  // Feeds `data` in pieces of `piece` bytes: the problem found, or "" and whether the
  // stream ended exactly at the end of a member.
  std::pair<std::string, bool> check(std::string_view data, std::size_t piece = 1 << 20) {
    GzipChecker checker{GetParam()};
    for (std::size_t at = 0; at < data.size(); at += piece) {
      const std::size_t size = std::min(piece, data.size() - at);
      if (auto problem = checker.feed(data.data() + at, size, at)) {
        return {*problem, false};
      }
    }
    return {"", checker.complete()};
  }

  // About 3 MiB of CSV-like text (deflate blocks of every kind, a long history).
  static std::string rows(int seed) {
    std::string text;
    std::uint32_t x = static_cast<std::uint32_t>(seed);
    for (int i = 0; i < 60'000; ++i) {
      x = x * 1664525 + 1013904223;
      text += "ai,u" + std::to_string(x % 5000) + ",s" + std::to_string(x >> 20) +
              ",1700000000000,page,/product/" + std::to_string(x % 977) + "\n";
    }
    return text;
  }
};

std::vector<Inflater> inflaters() {
  std::vector<Inflater> out{Inflater::zlib};
  if (available(Inflater::isal)) {
    out.push_back(Inflater::isal);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Inflaters, GzipCheck, ::testing::ValuesIn(inflaters()),
                         [](const auto& param) { return std::string{to_string(param.param)}; });

TEST(Inflater, TheBestOneIsAvailableAndZlibAlwaysIs) {
  EXPECT_TRUE(available(Inflater::zlib));
  EXPECT_TRUE(available(best_inflater()));
  if (!available(Inflater::isal)) {
    EXPECT_THROW(GzipChecker{Inflater::isal}, std::invalid_argument);
  }
}

TEST_P(GzipCheck, AWholeMemberIsComplete) {
  const std::string gz = gzip_member(rows(1));
  EXPECT_EQ(check(gz), std::make_pair(std::string{}, true));
  EXPECT_EQ(check(gzip_member("")), std::make_pair(std::string{}, true));
}

TEST_P(GzipCheck, ConcatenatedMembersAreCompleteHoweverTheBytesAreSplit) {
  const std::string gz =
      gzip_member(rows(1)) + gzip_member("x") + gzip_member(rows(2)) + gzip_member("");
  for (const std::size_t piece :
       {std::size_t{1}, std::size_t{7}, std::size_t{4096}, std::size_t{65'537}, gz.size()}) {
    EXPECT_EQ(check(gz, piece), std::make_pair(std::string{}, true)) << "pieces of " << piece;
  }
}

TEST_P(GzipCheck, ACutStreamIsIncompleteWhereverItIsCut) {
  const std::string gz = gzip_member(rows(3)) + gzip_member(rows(4));
  const std::size_t first = gzip_member(rows(3)).size();
  for (const std::size_t cut : {std::size_t{0}, std::size_t{5}, std::size_t{11}, first / 2,
                                first - 8, first - 1, first + 3, gz.size() - 4, gz.size() - 1}) {
    EXPECT_EQ(check(std::string_view{gz}.substr(0, cut)), std::make_pair(std::string{}, false))
        << "cut at " << cut;
  }
}

TEST_P(GzipCheck, AWrongCrcOrLengthIsFound) {
  const std::string gz = gzip_member(rows(5));
  for (const std::size_t from_end :
       {std::size_t{8}, std::size_t{5}, std::size_t{4}, std::size_t{1}}) {
    std::string bad = gz;
    bad[bad.size() - from_end] = static_cast<char>(bad[bad.size() - from_end] ^ 0x40);
    const auto [problem, complete] = check(bad);
    EXPECT_NE(problem.find("not a valid gzip stream near byte"), std::string::npos)
        << "byte " << from_end << " from the end: " << problem;
    // The trailer's own check (CRC-32 or length) said so, at the trailer: zlib says
    // "incorrect data check" or "incorrect length check", igzip the first for both.
    EXPECT_NE(problem.find(from_end > 4 ? "incorrect data check" : "incorrect"), std::string::npos)
        << "byte " << from_end << " from the end: " << problem;
    const std::size_t at = problem.find("near byte ");
    ASSERT_NE(at, std::string::npos) << problem;
    EXPECT_GE(std::stoull(problem.substr(at + 10)), gz.size() - 8) << problem;
    EXPECT_FALSE(complete);
  }
}

TEST_P(GzipCheck, DamagedDeflateDataIsFound) {
  const std::string gz = gzip_member(rows(6));
  std::string bad = gz;
  for (std::size_t at = 100; at < bad.size() - 100; at += 997) {
    bad[at] = static_cast<char>(bad[at] ^ 0x5a);
  }
  const auto [problem, complete] = check(bad);
  EXPECT_NE(problem.find("not a valid gzip stream near byte"), std::string::npos) << problem;
  EXPECT_FALSE(complete);
}

TEST_P(GzipCheck, ReservedHeaderFlagsAreRefused) {
  // RFC 1952: a decompressor must refuse a member whose reserved FLG bits are set.
  const std::string good = gzip_member("visit,1\n");
  for (const std::size_t piece : {std::size_t{1}, std::size_t{3}, good.size()}) {
    for (const int bit : {0x20, 0x40, 0x80}) {
      std::string bad = good + good;
      bad[good.size() + 3] = static_cast<char>(bad[good.size() + 3] | bit);
      const auto [problem, complete] = check(bad, piece);
      EXPECT_NE(problem.find("header flags"), std::string::npos)
          << "bit " << bit << ", pieces of " << piece << ": " << problem;
    }
  }
}

TEST_P(GzipCheck, BytesAfterAMemberMustBeAnotherMember) {
  const std::string gz = gzip_member(rows(7));
  for (const std::string& tail :
       {std::string{"garbage!"}, std::string(512, '\0'), std::string{"\x1f\x8b\x07"}}) {
    const auto [problem, complete] = check(gz + tail + std::string(64, 'x'));
    EXPECT_NE(problem, "") << "after " << tail.size() << " bytes";
    EXPECT_FALSE(complete);
  }
  EXPECT_NE(check("plain text, not gzip at all").first, "");
}

// --- identity (issue 14, item 6) ------------------------------------------------------

TEST(ArchiveIdentity, CreatedOnceAndReadBack) {
  TempDir temp;
  EXPECT_EQ(read_identity(temp.path() / "missing"), std::nullopt);
  EXPECT_EQ(read_identity(temp.path()), std::nullopt);
  const std::string id = create_identity(temp.path(), 0027);
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(read_identity(temp.path()), id);
  // Never replaced: a second create returns the id already there.
  EXPECT_EQ(create_identity(temp.path(), 0027), id);
  const auto path = temp.path() / kIdentityName;
  EXPECT_EQ(std::filesystem::status(path).permissions(), std::filesystem::perms::owner_read |
                                                             std::filesystem::perms::owner_write |
                                                             std::filesystem::perms::group_read);
  // Nothing else left behind (the temporary name is gone).
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator{temp.path()},
                          std::filesystem::directory_iterator{}),
            1);
  TempDir other;
  EXPECT_NE(create_identity(other.path(), 0027), id);
}

TEST(ArchiveIdentity, RefusesASymlinkOrAFileWithoutAnId) {
  TempDir temp;
  std::ofstream{temp.path() / "elsewhere"} << "id=0123456789abcdef0123456789abcdef\n";
  std::filesystem::create_symlink(temp.path() / "elsewhere", temp.path() / kIdentityName);
  EXPECT_THROW(read_identity(temp.path()), ArchiveError);
  std::filesystem::remove(temp.path() / kIdentityName);
  std::ofstream{temp.path() / kIdentityName} << "id=not-an-id\n";
  try {
    read_identity(temp.path());
    FAIL() << "a file without an id was read";
  } catch (const ArchiveError& error) {
    EXPECT_NE(std::string{error.what()}.find("holds no id"), std::string::npos) << error.what();
  }
}

// --- rows (csv_rows.hpp) --------------------------------------------------------------

// A counter on the scan the CPU picks, or on the one for plain x86-64: every test checks
// both (on a CPU without AVX2 they are the same).
CsvRowCounter make_counter(const std::optional<std::string>& split, bool portable = false) {
  CsvRowCounter counter = split ? CsvRowCounter{*split} : CsvRowCounter{};
  if (portable) {
    counter.use_portable_scan();
  }
  return counter;
}

CsvRows count_whole(std::string_view csv, std::optional<std::string> split = std::nullopt,
                    bool portable = false) {
  CsvRowCounter counter = make_counter(split, portable);
  counter.feed(csv);
  return counter.finish();
}

// The counts must not depend on how the bytes are cut: byte by byte, and at every 2-way
// split (a quote, an escape, a CRLF straddling two feeds), both scans (split or not),
// on both scans of the CPU.
void expect_any_split(std::string_view csv, const CsvRows& expected,
                      std::optional<std::string> split = std::nullopt) {
  for (const bool portable : {false, true}) {
    EXPECT_EQ(count_whole(csv, split, portable), expected) << csv;
    {
      CsvRowCounter counter = make_counter(split, portable);
      for (const char byte : csv) {
        counter.feed(&byte, 1);
      }
      EXPECT_EQ(counter.finish(), expected) << "byte by byte: " << csv;
    }
    for (std::size_t cut = 0; cut <= csv.size(); ++cut) {
      CsvRowCounter counter = make_counter(split, portable);
      counter.feed(csv.substr(0, cut));
      counter.feed(csv.substr(cut));
      EXPECT_EQ(counter.finish(), expected) << "cut at " << cut << ": " << csv;
    }
  }
}

CsvRows rows(std::uint64_t count, std::vector<std::string> columns) {
  return {.rows = count, .columns = std::move(columns), .rows_by_hour = {}, .unhoured = 0};
}

TEST(CsvRows, CountsRecordsNotTheHeader) {
  expect_any_split("a,b\n1,2\n3,4\n", rows(2, {"a", "b"}));
  expect_any_split("a,b\n1,2\n3,4", rows(2, {"a", "b"}));  // no newline at the end
  expect_any_split("", rows(0, {}));
  expect_any_split("a,b", rows(0, {"a", "b"}));  // a header only
  expect_any_split("a,b\n", rows(0, {"a", "b"}));
  expect_any_split("a,b\n\n1,2\n\n\n", rows(1, {"a", "b"}));  // blank lines are no records
  expect_any_split(",\n,\n", rows(1, {"", ""}));              // empty fields are
}

TEST(CsvRows, QuotedNewlinesAndSeparatorsStayInTheirRecord) {
  expect_any_split("id,text\n1,\"two\nlines, and a comma\"\n2,\"\"\n", rows(2, {"id", "text"}));
  expect_any_split("\"a\nb\",c\n1,2\n", rows(1, {"a\nb", "c"}));
  // A quote left open swallows the rest: one record, counted at the end.
  expect_any_split("h\n1,\"open\n2\n3\n", rows(1, {"h"}));
}

TEST(CsvRows, BackslashEscapesTheNextByteQuotedOrNot) {
  expect_any_split("h\n\"say \\\"hi\\\"\n still quoted\"\n2\n", rows(2, {"h"}));
  expect_any_split("h\nline\\\ncontinued\n2\n", rows(2, {"h"}));  // an escaped newline
  expect_any_split("h\n\\\\\n2\n", rows(2, {"h"}));               // an escaped backslash
  expect_any_split("a\\,b,c\n1\n", rows(1, {"a,b", "c"}));
  expect_any_split("h\n\\\"not quoted\n2\n", rows(2, {"h"}));
  expect_any_split("h\nx\\", rows(1, {"h"}));  // a last escape with nothing after it
}

TEST(CsvRows, CrlfAndInvalidUtf8) {
  expect_any_split("a,b\r\n1,2\r\n\r\n3,4\r\n", rows(2, {"a", "b"}));
  expect_any_split("a,b\r\n1,2\r", rows(1, {"a", "b"}));
  expect_any_split("a\r\n\r\r\n", rows(1, {"a"}));  // "\r\r" is not blank
  expect_any_split("\r\na\r\n1\r\n", rows(1, {"a"}));
  expect_any_split("\xff\xfe,\xc3\n\x80\xed\xa0\x80\n\xf8\n", rows(2, {"\xff\xfe", "\xc3"}));
}

TEST(CsvRows, LongInputsMatchByteByByte) {
  // Blocks of 64 bytes: records, quotes and escapes across block edges.
  std::string csv = "time,event,text\n";
  std::uint64_t expected = 0;
  for (int i = 0; i < 500; ++i) {
    csv += std::to_string(i) + ",e" + std::to_string(i % 7) + ",";
    csv += i % 3 == 0 ? "\"q,\n\\\"x\"" : (i % 5 == 0 ? "a\\\nb" : "plain");
    csv += i % 4 == 0 ? "\r\n" : "\n";
    csv += i % 9 == 0 ? "\n" : "";
    ++expected;
  }
  const CsvRows whole = count_whole(csv);
  EXPECT_EQ(whole, rows(expected, {"time", "event", "text"}));
  for (const bool portable : {false, true}) {
    for (const std::size_t piece : {1, 3, 63, 64, 65, 100, 4096}) {
      CsvRowCounter counter = make_counter(std::nullopt, portable);
      for (std::size_t at = 0; at < csv.size(); at += piece) {
        counter.feed(std::string_view{csv}.substr(at, piece));
      }
      EXPECT_EQ(counter.finish(), whole) << piece << (portable ? " portable" : "");
    }
    // The split scan counts the same records.
    EXPECT_EQ(count_whole(csv, "time", portable).rows, expected);
  }
}

TEST(CsvRows, SplitsByBeijingHourOfTheTimeColumn) {
  // 2026-11-22T00:00:00+08:00 is 1795276800000 ms; +1 h, +23 h 59 min.
  const std::string csv =
      "event,time,x\n"
      "a,1795276800000,1\n"  // hour 0
      "b,1795280400000,1\n"  // hour 1
      "c,1795280400999,\"\n\"\n"
      "d,\"1795363140000\"\r\n"  // hour 23, quoted
      "e,,1\n"                   // empty
      "f,-1795276800000,1\n"     // signed: not a plain number
      "g,12x,1\n"
      "h\n"                               // too few fields
      "i,99999999999999999999999999,1\n"  // too large
      "j,0,1";                            // the epoch: 08:00 in Beijing
  std::vector<std::uint64_t> hours(24, 0);
  hours[0] = 1;
  hours[1] = 2;
  hours[23] = 1;
  hours[8] = 1;
  const CsvRows expected{
      .rows = 10, .columns = {"event", "time", "x"}, .rows_by_hour = hours, .unhoured = 5};
  expect_any_split(csv, expected, "time");

  // The column absent from the header: every record is counted, none in an hour, and
  // no hours at all (no split is possible, so nothing may set a day against them).
  const CsvRows none = count_whole("a,b\n1,2\n3,4\n", "time");
  EXPECT_EQ(none.rows, 2u);
  EXPECT_EQ(none.unhoured, 2u);
  EXPECT_TRUE(none.rows_by_hour.empty());
  EXPECT_TRUE(count_whole("a,b\n").rows_by_hour.empty());  // not split: no hours
}

// A daily file's window is its Beijing date: an event timed on the day before or after
// (a device's clock) is a row of the file but in none of its hours.
TEST(CsvRows, TimesOutsideTheSplitWindowAreUnhoured) {
  // 2026-11-22 in Beijing: [1795276800000, 1795363200000) ms.
  const SplitWindow day{.start_ms = 1795276800000, .end_ms = 1795363200000};
  const std::string csv =
      "time\n"
      "1795276799999\n"   // 23:59:59.999 the day before
      "1795276800000\n"   // hour 0
      "1795363199999\n"   // hour 23
      "1795363200000\n"   // 00:00 the day after
      "1795280400000\n";  // hour 1
  CsvRowCounter counter{"time", day};
  counter.feed(csv);
  std::vector<std::uint64_t> hours(24, 0);
  hours[0] = 1;
  hours[1] = 1;
  hours[23] = 1;
  EXPECT_EQ(counter.finish(),
            (CsvRows{.rows = 5, .columns = {"time"}, .rows_by_hour = hours, .unhoured = 2}));
  // Without a window every time has an hour (the day before's 23:59 is hour 23).
  hours[23] = 2;
  hours[0] = 2;
  EXPECT_EQ(count_whole(csv, "time"),
            (CsvRows{.rows = 5, .columns = {"time"}, .rows_by_hour = hours, .unhoured = 0}));
}

// The header read again for a manifest stops after kMaxHeaderScanBytes inflated bytes:
// a part without a newline is not inflated whole on the caller's (the loop's) thread.
TEST(CsvRows, ReadingAHeaderAgainIsBounded) {
  TempDir temp;
  const fs::path good = temp.path() / "good.csv.gz";
  write_file(good, gzip_member("time,x\n1,2\n"));
  EXPECT_EQ(read_csv_header(good), (std::vector<std::string>{"time", "x"}));
  // A newline (here after a quote left open) only past the bound: no header, rather
  // than the names before it read from megabytes inflated on the caller's thread.
  const fs::path endless = temp.path() / "endless.csv.gz";
  write_file(endless,
             gzip_member("x,\"" + std::string(kMaxHeaderScanBytes + (2 << 20), 'a') + "\"\n1\n"));
  EXPECT_TRUE(read_csv_header(endless).empty());
}

// The counter rides on the gzip check: same bytes, split into members and feeds.
TEST(CsvRows, CountedFromTheGzipChecksInflatedBytes) {
  std::string csv = "a,b\n";
  for (int i = 0; i < 20000; ++i) {
    csv += std::to_string(i) + ",\"x\ny\"\n";
  }
  const std::string gzip = gzip_member(csv.substr(0, 1000)) + gzip_member(csv.substr(1000));
  for (const Inflater inflater : {Inflater::zlib, best_inflater()}) {
    CsvRowCounter counter;
    GzipChecker checker{inflater};
    checker.count_rows(&counter);
    for (std::size_t at = 0; at < gzip.size(); at += 777) {
      const std::size_t size = std::min<std::size_t>(777, gzip.size() - at);
      ASSERT_FALSE(checker.feed(gzip.data() + at, size, at).has_value());
    }
    ASSERT_TRUE(checker.complete());
    EXPECT_EQ(counter.finish(), rows(20000, {"a", "b"})) << to_string(inflater);
  }
}

}  // namespace
}  // namespace gio::archive
