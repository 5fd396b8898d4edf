// Child processes as hooks and rclone get them: a clean environment, separate or merged
// output, a timeout that ends the whole process group, and per-kind stop registries.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <thread>

#include "process/child.hpp"

namespace gio::process {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct Finished {
  Ended ended;
  std::string output, errors;
};

// `script` by /bin/sh with `environment`, awaited within `timeout`.
Finished run_shell(const std::string& script, std::vector<std::string> environment,
                   bool merge_errors, std::chrono::steady_clock::duration timeout = 10s) {
  asio::io_context io;
  Spawned child;
  const Command command{.program = "/bin/sh",
                        .arguments = {"-c", script},
                        .environment = std::move(environment),
                        .merge_errors = merge_errors};
  EXPECT_EQ(spawn(command, child), 0);
  asio::posix::stream_descriptor output{io, child.output};
  std::optional<asio::posix::stream_descriptor> errors;
  if (child.errors >= 0) {
    errors.emplace(io, child.errors);
  }
  Finished run;
  // The sinks outlive the coroutine, which holds them by reference.
  const OutputSink keep_output = [&run](std::string_view bytes) { run.output += bytes; };
  const OutputSink keep_errors = [&run](std::string_view bytes) { run.errors += bytes; };
  asio::co_spawn(
      io,
      await_end(child.pid, timeout, output, keep_output, errors ? &*errors : nullptr, keep_errors),
      [&run](std::exception_ptr error, Ended ended) {
        EXPECT_FALSE(error);
        run.ended = ended;
      });
  io.run();
  return run;
}

TEST(Process, TheChildGetsOnlyTheEnvironmentGiven) {
  ::setenv("GIO_PROCESS_TEST_SECRET", "no", 1);
  const Finished run = run_shell("env", {"ONLY=this"}, true);
  ::unsetenv("GIO_PROCESS_TEST_SECRET");
  EXPECT_EQ(run.ended.how, Ended::exited);
  EXPECT_NE(run.output.find("ONLY=this"), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("GIO_PROCESS_TEST_SECRET"), std::string::npos) << run.output;
}

TEST(Process, InheritedEnvironmentKeepsPathHomeAndLangOnly) {
  std::string path = "PATH=/bin", home = "HOME=/h", token = "GIO_TOKEN=x", lang = "LANG=C";
  char* parent[] = {token.data(), lang.data(), path.data(), home.data(), nullptr};
  EXPECT_EQ(inherited_environment(parent),
            (std::vector<std::string>{"PATH=/bin", "HOME=/h", "LANG=C"}));
}

TEST(Process, OutputAndErrorsApartOrMerged) {
  const Finished apart = run_shell("echo out; echo err >&2; exit 3", {}, false);
  EXPECT_EQ(apart.output, "out\n");
  EXPECT_EQ(apart.errors, "err\n");
  ASSERT_TRUE(WIFEXITED(apart.ended.status));
  EXPECT_EQ(WEXITSTATUS(apart.ended.status), 3);
  EXPECT_EQ(describe_status(apart.ended.status), "exit status 3");
  const Finished merged = run_shell("echo out; echo err >&2", {}, true);
  EXPECT_EQ(merged.output, "out\nerr\n");
}

// Past the timeout the whole group goes, a grandchild with its output elsewhere too.
TEST(Process, ATimeoutEndsTheWholeGroup) {
  const auto start = std::chrono::steady_clock::now();
  const Finished run = run_shell("sleep 60 >/dev/null 2>&1 & echo $!; sleep 60", {}, true, 1s);
  EXPECT_EQ(run.ended.how, Ended::timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  const pid_t grandchild = std::stoi(run.output);
  for (int i = 0; i < 100 && ::kill(grandchild, 0) == 0; ++i) {
    std::this_thread::sleep_for(20ms);  // reaped by init once killed
  }
  EXPECT_NE(::kill(grandchild, 0), 0);
}

TEST(Process, AMissingProgramIsENOENT) {
  Spawned child;
  EXPECT_EQ(spawn({.program = "/nonexistent/program",
                   .arguments = {},
                   .environment = {},
                   .merge_errors = true},
                  child),
            ENOENT);
}

// Each kind of child has its registry: ending one kind leaves the other running.
TEST(Process, RunningGroupsEndOnlyTheirOwn) {
  RunningGroups first, second;
  Spawned a, b;
  const Command sleeper{.program = "/bin/sh",
                        .arguments = {"-c", "sleep 60"},
                        .environment = {},
                        .merge_errors = true};
  ASSERT_EQ(spawn(sleeper, a), 0);
  ASSERT_EQ(spawn(sleeper, b), 0);
  {
    const RunningGroups::Entry in_first{first, a.pid, 1s};
    const RunningGroups::Entry in_second{second, b.pid, 1s};
    EXPECT_EQ(first.end_all(), 1u);
  }
  int status = 0;
  EXPECT_EQ(::waitpid(a.pid, &status, 0), a.pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(::waitpid(b.pid, &status, WNOHANG), 0);  // still running
  ::kill(-b.pid, SIGKILL);
  ::waitpid(b.pid, &status, 0);
  for (const int fd : {a.output, b.output}) {
    ::close(fd);
  }
}

}  // namespace
}  // namespace gio::process
