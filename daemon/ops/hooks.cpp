#include "ops/hooks.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <utility>

#include "ops/logging.hpp"

extern char** environ;

namespace gio::ops {
namespace {

namespace asio = boost::asio;

// Hooks are notifications (a chat message, a ticket): a few at once is plenty, and a
// burst of slots done cannot fork the machine to death.
constexpr int kMaxRunning = 4;

std::string describe_status(int status) {
  if (WIFEXITED(status)) {
    return "exit status " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return "killed by signal " + std::to_string(WTERMSIG(status));
  }
  return "status " + std::to_string(status);
}

// Starts `/bin/sh -c command` with `variables` added to the daemon's environment, in its
// own process group (so a timeout kills what the shell started too), stdin from
// /dev/null, stdout and stderr where the daemon's go (the journal). Returns
// posix_spawn's error number, 0 when `pid` is the child's.
int spawn_shell(std::string command, const HookVariables& variables, pid_t& pid) {
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    environment.emplace_back(*entry);
  }
  for (const auto& [name, value] : variables) {
    environment.push_back(name + "=" + value);
  }
  std::vector<char*> envp;
  for (std::string& entry : environment) {
    envp.push_back(entry.data());
  }
  envp.push_back(nullptr);
  std::string shell = "/bin/sh";
  std::string dash_c = "-c";
  char* argv[] = {shell.data(), dash_c.data(), command.data(), nullptr};

  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attributes, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  sigset_t defaults;  // the daemon ignores SIGXFSZ and catches SIGTERM/SIGHUP: not the hook
  sigfillset(&defaults);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  const int spawned = posix_spawn(&pid, shell.c_str(), &actions, &attributes, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  return spawned;
}

}  // namespace

HookRunner::HookRunner(asio::any_io_executor executor)
    : executor_(executor), slots_(executor, kMaxRunning), hooks_(executor) {}

void HookRunner::run(const std::string& command, std::chrono::seconds timeout,
                     HookVariables variables) {
  if (command.empty()) {
    return;
  }
  hooks_.spawn([this, hook = Hook{command, timeout,
                                  std::move(variables)}]() mutable -> asio::awaitable<void> {
    auto permit = co_await slots_.hold();
    co_await execute(std::move(hook));
  });
}

asio::awaitable<void> HookRunner::wait() {
  co_await hooks_.wait();
}

asio::awaitable<void> HookRunner::execute(Hook hook) {
  // hook=slot_done job=J slot=S: what the log lines about this hook name.
  Fields about;
  for (const auto& [name, value] : hook.variables) {
    if (name == "GIO_EVENT") {
      about.insert(about.begin(), Field{"hook", value});
    } else if (name == "GIO_JOB" || name == "GIO_SLOT") {
      about.emplace_back(name == "GIO_JOB" ? "job" : "slot", value);
    }
  }
  const auto failed = [&about](const std::string& reason) {
    Fields fields = about;
    fields.emplace_back("reason", reason);
    log_event(Level::warning, "hook_failed", "hook failed", fields);
  };
  pid_t pid = 0;
  if (const int spawned = spawn_shell(hook.command, hook.variables, pid); spawned != 0) {
    failed(std::string{"cannot start /bin/sh: "} + std::strerror(spawned));
    co_return;
  }

  // glibc 2.36's <sys/pidfd.h> lacks C linkage for C++; the system call is the same.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    // Without a pidfd the child cannot be awaited without blocking; it is reaped by
    // a blocking wait only after it was killed, which is immediate.
    failed(std::string{"pidfd_open: "} + std::strerror(errno));
    ::kill(-pid, SIGKILL);
    int ignored = 0;
    ::waitpid(pid, &ignored, 0);
    co_return;
  }
  asio::posix::stream_descriptor exited{executor_, pidfd};  // owns and closes the pidfd
  asio::steady_timer deadline{executor_, hook.timeout};
  using namespace asio::experimental::awaitable_operators;
  const auto first = co_await (exited.async_wait(asio::posix::descriptor_base::wait_read,
                                                 asio::as_tuple(asio::use_awaitable)) ||
                               deadline.async_wait(asio::as_tuple(asio::use_awaitable)));
  const bool timed_out = first.index() == 1;
  if (timed_out) {
    ::kill(-pid, SIGKILL);
  }
  int status = 0;
  // The child has exited, or was just killed and is about to: this wait is short.
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    failed("killed after " + std::to_string(hook.timeout.count()) + "s (hook_timeout)");
  } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    failed(describe_status(status));
  } else {
    log_event(Level::debug, "hook_finished", "hook finished", about);
  }
}

}  // namespace gio::ops
