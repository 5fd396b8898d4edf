// Sinks against real rclone: its local backend (":local:" on a temporary folder) and
// `rclone serve webdav` on loopback, read-write and read-only.

#include "sink/sink.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "archive/checksums.hpp"
#include "async/run.hpp"
#include "sink/rclone.hpp"
#include "support/temp_dir.hpp"

namespace gio::sink {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using gio::testing::TempDir;
using Kind = SinkError::Kind;

// A fake credential in the remote string: it must reach rclone (through the
// environment) and nothing else.
constexpr std::string_view kSecret = "s3cr3t-TOKEN-4711";

std::string read_file(const fs::path& path) {
  std::ifstream in{path, std::ios::binary};
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const fs::path& path, std::string_view content) {
  fs::create_directories(path.parent_path());
  std::ofstream{path, std::ios::binary} << content;
}

Slot hour_slot() {
  return *Slot::parse("2026-11-22T03", Granularity::hour);
}

template <class T>
T run(asio::io_context& io, asio::awaitable<T> task) {
  return async::run_to_end(io, std::move(task));
}

// A loopback port nobody listens on (bound, then released).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

bool listening(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return connected;
}

// `rclone serve webdav` of `root` on a loopback port, until destroyed.
class WebdavServer {
 public:
  WebdavServer(const fs::path& root, bool read_only) : port_(free_port()) {
    std::vector<std::string> words{
        "rclone", "serve", "webdav", "--addr", "127.0.0.1:" + std::to_string(port_), root.string()};
    if (read_only) {
      words.emplace_back("--read-only");
    }
    std::vector<char*> argv;
    for (std::string& word : words) {
      argv.push_back(word.data());
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    const int spawned = posix_spawnp(&pid_, "rclone", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
      throw std::runtime_error("cannot start rclone serve webdav");
    }
    for (int i = 0; i < 200 && !listening(port_); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
    if (!listening(port_)) {
      throw std::runtime_error("rclone serve webdav does not listen");
    }
  }
  ~WebdavServer() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  std::string remote(std::string_view extra = "") const {
    return ":webdav,url='http://127.0.0.1:" + std::to_string(port_) + "'" + std::string{extra} +
           ":";
  }

 private:
  int port_;
  pid_t pid_ = -1;
};

class SinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("rclone version >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "rclone is not installed (apt-get install rclone)";
    }
    remote_root_ = temp_.path() / "remote";
    fs::create_directories(remote_root_);
    partition_ = temp_.path() / "local" / "shop-hourly" / "visit" / "dt=2026-11-22" / "hour=03";
    add_part("part-0.csv.gz", std::string(100000, 'a'));
    add_part("part-1.csv.gz", "second part");
    add_part("渠道 2.csv.gz", std::string(70000, 'c'));  // UTF-8 and a space
  }

  void add_part(const std::string& name, const std::string& content) {
    write_file(partition_ / name, content);
    files_.push_back(
        {.name = name, .bytes = content.size(), .sha256 = archive::sha256_hex(content)});
  }

  archive::Manifest manifest() const {
    return archive::make_manifest("shop-hourly", "visit", hour_slot(),
                                  *parse_utc("2026-11-21T20:45:07Z"), files_);
  }

  // The local backend on remote_root_, with a fake secret among its options (the local
  // backend takes a description; rclone ignores it).
  config::Sink local_sink() const {
    return {.name = "lake",
            .rclone_remote =
                ":local,description='" + std::string{kSecret} + "':" + remote_root_.string(),
            .rclone_config = {},
            .keep_local = {},
            .place = {}};
  }

  Sink make_sink(config::Sink settings, fs::path rclone = "rclone") {
    return Sink{io_.get_executor(), std::move(settings), pool_, std::move(rclone)};
  }

  fs::path remote_partition() const {
    return remote_root_ / "shop-hourly" / "visit" / "dt=2026-11-22" / "hour=03";
  }

  // A wrapper for rclone that records each command line (as /proc shows it) and runs
  // `before` (shell) first: a failure injected at one step.
  fs::path wrapper(const std::string& before = "") {
    const fs::path script = temp_.path() / "rclone-wrapper";
    write_file(script, "#!/bin/sh\ntr '\\0' ' ' < /proc/$$/cmdline >> " +
                           (temp_.path() / "argv.log").string() + "\necho >> " +
                           (temp_.path() / "argv.log").string() + "\n" +
                           (temp_.path() / "env.log").string().insert(0, "env > ") + "\n" + before +
                           "\nexec rclone \"$@\"\n");
    fs::permissions(script, fs::perms::owner_all);
    return script;
  }

  TempDir temp_;
  asio::io_context io_;
  asio::thread_pool pool_{2};
  fs::path remote_root_, partition_;
  std::vector<archive::ManifestFile> files_;
};

TEST_F(SinkTest, LandsAPartitionByteForByteWithItsManifestAndSuccess) {
  Sink sink = make_sink(local_sink());
  const Landed landed = run(io_, sink.land(partition_, manifest(), hour_slot()));
  EXPECT_EQ(landed.checked, Checksum::md5);
  EXPECT_EQ(landed.uploaded, files_.size() + 2);  // the parts, _manifest.json, _SUCCESS

  const fs::path remote = remote_partition();
  for (const archive::ManifestFile& file : files_) {
    EXPECT_EQ(read_file(remote / file.name), read_file(partition_ / file.name)) << file.name;
  }
  ASSERT_TRUE(fs::is_regular_file(remote / "_SUCCESS"));
  EXPECT_EQ(fs::file_size(remote / "_SUCCESS"), 0u);
  const auto landed_manifest = archive::parse_manifest(read_file(remote / "_manifest.json"));
  ASSERT_TRUE(landed_manifest.has_value());
  EXPECT_EQ(landed_manifest->remote_checksum, "md5");
  for (const archive::ManifestFile& file : landed_manifest->files) {
    archive::Digest md5{"md5"};
    const std::string content = read_file(partition_ / file.name);
    md5.update(content.data(), content.size());
    EXPECT_EQ(file.remote_hash, md5.hex()) << file.name;
  }
  archive::Manifest expected = manifest();
  expected.remote_checksum = "md5";
  for (std::size_t i = 0; i < expected.files.size(); ++i) {
    expected.files[i].remote_hash = landed_manifest->files[i].remote_hash;
  }
  EXPECT_EQ(*landed_manifest, expected);
  EXPECT_EQ(run(io_, sink.remote_manifest("shop-hourly", "visit", hour_slot())), expected);
  EXPECT_TRUE(run(io_, sink.check(manifest(), hour_slot())).empty());
}

TEST_F(SinkTest, LandingAgainUploadsNothingAndKeepsSuccess) {
  Sink sink = make_sink(local_sink());
  run(io_, sink.land(partition_, manifest(), hour_slot()));
  const auto marked_at = fs::last_write_time(remote_partition() / "_SUCCESS");
  std::this_thread::sleep_for(std::chrono::milliseconds{20});
  const Landed again = run(io_, sink.land(partition_, manifest(), hour_slot()));
  EXPECT_EQ(again.uploaded, 0u);
  EXPECT_EQ(again.uploaded_bytes, 0u);
  EXPECT_EQ(again.checked, Checksum::md5);
  EXPECT_EQ(fs::last_write_time(remote_partition() / "_SUCCESS"), marked_at);
}

TEST_F(SinkTest, AStaleObjectIsRemovedAndOnlyMissingPartsAreCopied) {
  Sink sink = make_sink(local_sink());
  run(io_, sink.land(partition_, manifest(), hour_slot()));
  write_file(remote_partition() / "old-answer.csv.gz", "from an earlier answer");
  fs::remove(remote_partition() / "part-1.csv.gz");
  fs::create_directories(remote_partition() / "someone-elses-folder");

  const std::vector<Mismatch> found = run(io_, sink.check(manifest(), hour_slot()));
  EXPECT_EQ(found, (std::vector<Mismatch>{{"part-1.csv.gz", "missing"},
                                          {"old-answer.csv.gz", "not in the manifest"}}));

  const Landed landed = run(io_, sink.land(partition_, manifest(), hour_slot()));
  EXPECT_EQ(landed.uploaded, 2u);  // part-1 and _SUCCESS (the manifest is unchanged)
  EXPECT_EQ(landed.uploaded_bytes, std::string{"second part"}.size());
  EXPECT_FALSE(fs::exists(remote_partition() / "old-answer.csv.gz"));
  EXPECT_TRUE(fs::is_directory(remote_partition() / "someone-elses-folder"));
  EXPECT_TRUE(run(io_, sink.check(manifest(), hour_slot())).empty());
}

TEST_F(SinkTest, ACorruptedRemoteObjectIsFoundByCheckAndRepairedByLanding) {
  Sink sink = make_sink(local_sink());
  run(io_, sink.land(partition_, manifest(), hour_slot()));
  std::string corrupted = read_file(remote_partition() / "part-0.csv.gz");
  corrupted[5000] = 'X';  // same size
  write_file(remote_partition() / "part-0.csv.gz", corrupted);
  write_file(remote_partition() / "part-1.csv.gz", "short");

  const std::vector<Mismatch> found = run(io_, sink.check(manifest(), hour_slot()));
  EXPECT_EQ(found, (std::vector<Mismatch>{{"part-0.csv.gz", "md5 differs"},
                                          {"part-1.csv.gz", "size 5 != 11"}}));
  fs::remove(remote_partition() / "_SUCCESS");
  EXPECT_EQ(run(io_, sink.check(manifest(), hour_slot())).back(),
            (Mismatch{"_SUCCESS", "no _SUCCESS"}));

  const Landed landed = run(io_, sink.land(partition_, manifest(), hour_slot()));
  EXPECT_EQ(landed.uploaded, 3u);
  EXPECT_EQ(read_file(remote_partition() / "part-0.csv.gz"),
            read_file(partition_ / "part-0.csv.gz"));
  EXPECT_TRUE(run(io_, sink.check(manifest(), hour_slot())).empty());
}

// A new answer with another part: the old _SUCCESS goes before anything else changes,
// so a copy failing halfway leaves a partition without one.
TEST_F(SinkTest, AFailedCopyLeavesNoSuccess) {
  {
    Sink sink = make_sink(local_sink());
    run(io_, sink.land(partition_, manifest(), hour_slot()));
  }
  add_part("part-3.csv.gz", "a later answer's part");
  Sink failing = make_sink(
      local_sink(),
      wrapper("case \"$*\" in copy*) echo '2026/12/01 21:33:41 ERROR : Failed to copy: 403 "
              "Forbidden' >&2; exit 7;; esac"));
  try {
    run(io_, failing.land(partition_, manifest(), hour_slot()));
    ADD_FAILURE() << "landed through a failing copy";
  } catch (const SinkError& error) {
    EXPECT_EQ(error.kind(), Kind::refused) << error.what();
    EXPECT_NE(std::string{error.what()}.find("403 Forbidden"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(fs::exists(remote_partition() / "_SUCCESS"));
  EXPECT_FALSE(fs::exists(remote_partition() / "part-3.csv.gz"));
}

// The manifest step fails: every part is there, but no _SUCCESS; landing again finishes.
TEST_F(SinkTest, SuccessComesLastAfterAFailedManifestUpload) {
  Sink failing =
      make_sink(local_sink(),
                wrapper("case \"$*\" in *_manifest.json*) echo 'ERROR : boom' >&2; exit 5;; esac"));
  try {
    run(io_, failing.land(partition_, manifest(), hour_slot()));
    ADD_FAILURE() << "landed through a failing manifest upload";
  } catch (const SinkError& error) {
    EXPECT_EQ(error.kind(), Kind::unavailable) << error.what();
  }
  for (const archive::ManifestFile& file : files_) {
    EXPECT_TRUE(fs::exists(remote_partition() / file.name)) << file.name;
  }
  EXPECT_FALSE(fs::exists(remote_partition() / "_manifest.json"));
  EXPECT_FALSE(fs::exists(remote_partition() / "_SUCCESS"));

  Sink sink = make_sink(local_sink());
  const Landed landed = run(io_, sink.land(partition_, manifest(), hour_slot()));
  EXPECT_EQ(landed.uploaded, 2u);  // _manifest.json and _SUCCESS: the parts were there
  EXPECT_TRUE(fs::exists(remote_partition() / "_SUCCESS"));
}

// The daemon's stop during the copy of a new answer's part: rclone's group is ended,
// the land fails, and the partition has no _SUCCESS (the old one went first).
TEST_F(SinkTest, EndAllStopsACopyInTheMiddle) {
  {
    Sink sink = make_sink(local_sink());
    run(io_, sink.land(partition_, manifest(), hour_slot()));
  }
  add_part("part-3.csv.gz", "a later answer's part");
  Sink slow = make_sink(local_sink(), wrapper("case \"$*\" in copy\\ *) sleep 30;; esac"));
  asio::steady_timer stop{io_, std::chrono::milliseconds{1500}};
  stop.async_wait([](boost::system::error_code) { Sink::end_all(); });
  const auto start = std::chrono::steady_clock::now();
  try {
    run(io_, slow.land(partition_, manifest(), hour_slot()));
    ADD_FAILURE() << "landed through a stop";
  } catch (const SinkError& error) {
    EXPECT_EQ(error.kind(), Kind::unavailable) << error.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds{15});
  EXPECT_FALSE(fs::exists(remote_partition() / "_SUCCESS"));
  EXPECT_TRUE(fs::exists(remote_partition() / "part-0.csv.gz"));  // the rest stays
}

// The commands of a first landing, in order: list, copy, list, the manifest, _SUCCESS.
TEST_F(SinkTest, StepsRunInTheProtocolsOrder) {
  Sink sink = make_sink(local_sink(), wrapper());
  run(io_, sink.land(partition_, manifest(), hour_slot()));
  std::istringstream lines{read_file(temp_.path() / "argv.log")};
  std::vector<std::string> steps;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words{line};
    std::string shell, script, command;
    words >> shell >> script >> command;
    if (command == "copyto") {
      command += line.find("_SUCCESS") != std::string::npos ? " _SUCCESS" : " _manifest.json";
    }
    steps.push_back(command);
  }
  // The manifest is not listed again: copyto checks what it wrote (size, and the hash
  // where the backend has one).
  EXPECT_EQ(steps, (std::vector<std::string>{"lsjson", "copy", "lsjson", "copyto _manifest.json",
                                             "copyto _SUCCESS"}));
}

// Parts that waited for a permit are pre-uploaded together: one rclone process for them
// all (a UTF-8 name with a space among them), and the landing then copies none of them.
TEST_F(SinkTest, PreuploadOfSeveralPartsIsOneRcloneProcess) {
  Sink sink = make_sink(local_sink(), wrapper());
  std::vector<fs::path> files;
  for (const archive::ManifestFile& file : files_) {
    files.push_back(partition_ / file.name);
  }
  run(io_, sink.preupload(files, "shop-hourly", "visit", hour_slot()));
  for (const archive::ManifestFile& file : files_) {
    EXPECT_EQ(read_file(remote_partition() / file.name), read_file(partition_ / file.name))
        << file.name;
  }
  EXPECT_FALSE(fs::exists(remote_partition() / "_SUCCESS"));
  const std::string commands = read_file(temp_.path() / "argv.log");
  EXPECT_EQ(std::ranges::count(commands, '\n'), 1) << commands;
  EXPECT_NE(commands.find(" copy "), std::string::npos) << commands;

  const Landed landed = run(io_, sink.land(partition_, manifest(), hour_slot()));
  EXPECT_EQ(landed.uploaded, 2u);  // _manifest.json and _SUCCESS: the parts were there
  EXPECT_TRUE(run(io_, sink.check(manifest(), hour_slot())).empty());
}

TEST_F(SinkTest, LandsOnWebdavWithoutChecksumsAndAgainUploadsNothing) {
  const WebdavServer server{remote_root_, false};
  Sink sink = make_sink({.name = "dav",
                         .rclone_remote = server.remote(),
                         .rclone_config = {},
                         .keep_local = {},
                         .place = {}});
  const Landed landed = run(io_, sink.land(partition_, manifest(), hour_slot()));
  EXPECT_EQ(landed.checked, Checksum::none);  // rclone's own WebDAV server gives no hashes
  for (const archive::ManifestFile& file : files_) {
    EXPECT_EQ(read_file(remote_partition() / file.name), read_file(partition_ / file.name));
  }
  EXPECT_TRUE(fs::exists(remote_partition() / "_SUCCESS"));
  EXPECT_EQ(run(io_, sink.land(partition_, manifest(), hour_slot())).uploaded, 0u);
  EXPECT_TRUE(run(io_, sink.check(manifest(), hour_slot())).empty());
}

TEST_F(SinkTest, AReadOnlyRemoteRefusesWithTheSinkAndPartitionNamedAndNoSecret) {
  const WebdavServer server{remote_root_, true};
  for (const bool folder_exists : {false, true}) {
    if (folder_exists) {
      fs::create_directories(remote_partition());
    }
    const std::string extra = ",user='" + std::string{kSecret} + "'";
    Sink sink = make_sink({.name = "lake",
                           .rclone_remote = server.remote(extra),
                           .rclone_config = {},
                           .keep_local = {},
                           .place = {}});
    try {
      run(io_, sink.land(partition_, manifest(), hour_slot()));
      ADD_FAILURE() << "a read-only remote took the partition";
    } catch (const SinkError& error) {
      const std::string message = error.what();
      EXPECT_EQ(error.kind(), Kind::refused) << message;
      EXPECT_NE(message.find("sink lake"), std::string::npos) << message;
      EXPECT_NE(message.find("shop-hourly/visit/dt=2026-11-22/hour=03"), std::string::npos)
          << message;
      EXPECT_EQ(message.find(kSecret), std::string::npos) << message;
      EXPECT_EQ(message.find("webdav,url"), std::string::npos) << message;
    }
    EXPECT_FALSE(fs::exists(remote_partition() / "_SUCCESS"));
  }
}

TEST_F(SinkTest, ADownRemoteIsUnavailable) {
  const std::string down = ":webdav,url='http://127.0.0.1:" + std::to_string(free_port()) +
                           "',user='" + std::string{kSecret} + "':";
  Sink sink = make_sink(
      {.name = "lake", .rclone_remote = down, .rclone_config = {}, .keep_local = {}, .place = {}});
  for (const bool probing : {false, true}) {
    try {
      if (probing) {
        run(io_, sink.probe());
      } else {
        run(io_, sink.land(partition_, manifest(), hour_slot()));
      }
      ADD_FAILURE() << "reached a remote that is down";
    } catch (const SinkError& error) {
      EXPECT_EQ(error.kind(), Kind::unavailable) << error.what();
      EXPECT_EQ(std::string{error.what()}.find(kSecret), std::string::npos) << error.what();
      EXPECT_NE(std::string{error.what()}.find("connection refused"), std::string::npos)
          << error.what();
    }
  }
}

TEST_F(SinkTest, ProbeListsOrSaysWhyNot) {
  EXPECT_TRUE(run(io_, make_sink(local_sink()).probe()));
  config::Sink missing_root = local_sink();
  missing_root.rclone_remote += "/not-yet";  // created by the first upload
  EXPECT_FALSE(run(io_, make_sink(missing_root).probe()));

  const auto kind_of = [this](config::Sink settings, fs::path rclone) {
    try {
      run(io_, make_sink(std::move(settings), std::move(rclone)).probe());
    } catch (const SinkError& error) {
      EXPECT_EQ(std::string{error.what()}.find(kSecret), std::string::npos) << error.what();
      return std::optional<Kind>{error.kind()};
    }
    return std::optional<Kind>{};
  };
  config::Sink unknown = local_sink();
  unknown.rclone_remote = ":nosuchbackend,x='" + std::string{kSecret} + "':";
  EXPECT_EQ(kind_of(unknown, "rclone"), Kind::setup);
  EXPECT_EQ(kind_of(local_sink(), temp_.path() / "no-rclone-here"), Kind::setup);
}

// The remote reaches rclone through its environment only: the command lines of every
// rclone run (as /proc shows them) never hold it.
TEST_F(SinkTest, TheRemoteIsInTheEnvironmentNeverInArgv) {
  Sink sink = make_sink(local_sink(), wrapper());
  run(io_, sink.land(partition_, manifest(), hour_slot()));
  run(io_, sink.check(manifest(), hour_slot()));
  const std::string argv = read_file(temp_.path() / "argv.log");
  EXPECT_NE(argv.find("lsjson"), std::string::npos) << argv;
  EXPECT_NE(argv.find("giosink:shop-hourly/visit/dt=2026-11-22/hour=03"), std::string::npos);
  EXPECT_EQ(argv.find(kSecret), std::string::npos) << argv;
  EXPECT_EQ(argv.find(remote_root_.string()), std::string::npos) << argv;

  // The whole environment: PATH, HOME, LANG and the alias; no other variable.
  ::setenv("GIO_TEST_TOKEN", "should-not-pass", 1);
  run(io_, sink.check(manifest(), hour_slot()));
  ::unsetenv("GIO_TEST_TOKEN");
  const std::string environment = read_file(temp_.path() / "env.log");
  EXPECT_NE(environment.find("RCLONE_CONFIG_GIOSINK_TYPE=alias"), std::string::npos);
  EXPECT_NE(environment.find("RCLONE_CONFIG_GIOSINK_REMOTE=" + local_sink().rclone_remote),
            std::string::npos);
  EXPECT_EQ(environment.find("GIO_TEST_TOKEN"), std::string::npos) << environment;

  const config::Sink settings = local_sink();
  const detail::Rclone rclone{settings, "rclone"};
  for (const std::string& word : rclone.argv({"lsjson", detail::remote_path("a/b")})) {
    EXPECT_EQ(word.find(kSecret), std::string::npos) << word;
  }
}

TEST(SinkPaths, PartitionPathIsTheArchiveLayout) {
  EXPECT_EQ(partition_path("shop-hourly", "visit", hour_slot()),
            "shop-hourly/visit/dt=2026-11-22/hour=03");
  EXPECT_EQ(partition_path("shop-daily", "page", *Slot::parse("2026-11-22", Granularity::day)),
            "shop-daily/page/dt=2026-11-22");
}

TEST(SinkChecksums, Md5BeforeSha1BeforeNone) {
  EXPECT_EQ(checksum_of({.name = "a", .bytes = 1, .hashes = {{"sha1", "x"}, {"md5", "y"}}}),
            Checksum::md5);
  EXPECT_EQ(checksum_of({.name = "a", .bytes = 1, .hashes = {{"sha1", "x"}}}), Checksum::sha1);
  EXPECT_EQ(checksum_of({.name = "a", .bytes = 1, .hashes = {}}), Checksum::none);
  EXPECT_EQ(to_string(Checksum::sha1), "sha1");
}

TEST(SinkRclone, FailuresAreClassifiedByMessageThenExitCode) {
  const auto kind = [](int exit_code, std::string errors) {
    detail::RcloneResult result;
    result.exit_code = exit_code;
    result.errors = std::move(errors);
    return detail::classify(result);
  };
  EXPECT_EQ(kind(1, "Failed to create file system for \"giosink:\": didn't find backend called"),
            Kind::setup);
  EXPECT_EQ(kind(1, "Propfind \"http://h/p\": dial tcp 127.0.0.1:1: connect: connection refused"),
            Kind::unavailable);
  EXPECT_EQ(kind(1, "Failed to deletefile: Method Not Allowed: 405 Method Not Allowed"),
            Kind::refused);
  EXPECT_EQ(kind(7, "AccessDenied: Access Denied\n\tstatus code: 403"), Kind::refused);
  EXPECT_EQ(kind(5, "something transient"), Kind::unavailable);
  EXPECT_EQ(kind(7, "something fatal"), Kind::refused);
  EXPECT_EQ(kind(8, "max transfer reached"), Kind::refused);
  EXPECT_EQ(kind(2, "502 Bad Gateway"), Kind::unavailable);
  // rclone serve webdav --read-only refuses a new folder so.
  EXPECT_EQ(kind(1, "Update mkParentDir failed: Conflict: 409 Conflict"), Kind::refused);
  detail::RcloneResult timed_out;
  timed_out.timed_out = true;
  EXPECT_EQ(detail::classify(timed_out), Kind::unavailable);
  detail::RcloneResult not_started;
  not_started.not_started = true;
  EXPECT_EQ(detail::classify(not_started), Kind::setup);
}

TEST(SinkRclone, TheLastErrorLineIsKeptWithoutTimestampOrNotices) {
  EXPECT_EQ(detail::last_error_line("2026/12/01 21:33:41 ERROR : a.txt: Failed to copy: 404\n"
                                    "2026/12/01 21:33:41 Failed to copy: Not Found: 404 Not Found\n"
                                    "2026/12/01 21:33:42 NOTICE: Config file not found\n"),
            "Failed to copy: Not Found: 404 Not Found");
  EXPECT_EQ(detail::last_error_line(std::string(1000, 'x'), 10), std::string(10, 'x'));
  EXPECT_EQ(detail::last_error_line("a\x1b[31mb\n"), "a [31mb");
}

TEST(SinkRclone, RedactionReplacesTheRemoteAndItsValues) {
  const config::Sink settings{.name = "lake",
                              .rclone_remote =
                                  ":s3,access_key_id=AKIAEXAMPLE,secret_access_key='"
                                  "it''s-secret':bucket/prefix",
                              .rclone_config = {},
                              .keep_local = {},
                              .place = {}};
  const detail::Rclone rclone{settings, "rclone"};
  EXPECT_EQ(rclone.redact("at " + settings.rclone_remote + " key AKIAEXAMPLE and it's-secret"),
            "at lake key lake and lake");
}

}  // namespace
}  // namespace gio::sink
