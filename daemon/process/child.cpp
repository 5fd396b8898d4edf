#include "process/child.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <charconv>
#include <thread>

namespace gio::process {
namespace {

namespace asio = boost::asio;

// After SIGKILL, how long the stop waits for the killed to be gone (their sockets
// closed) before the daemon exits.
constexpr std::chrono::seconds kKillWait{1};
// How often the group of a child that has ended is looked at, until it is empty.
constexpr std::chrono::milliseconds kGroupPoll{100};

// The state and process group of /proc/<pid>/stat; false when it cannot be read (the
// process is gone).
bool read_stat(const char* pid, char& state, pid_t& group) {
  const std::string path = std::string{"/proc/"} + pid + "/stat";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  char buffer[512];
  const ssize_t got = ::read(fd, buffer, sizeof buffer);
  ::close(fd);
  if (got <= 0) {
    return false;
  }
  // "pid (comm) S ppid pgrp ...": the command name may hold spaces and ')'.
  const std::string_view text{buffer, static_cast<std::size_t>(got)};
  const auto close = text.rfind(')');
  if (close == std::string_view::npos || text.size() < close + 4) {
    return false;
  }
  state = text[close + 2];
  const auto ppid_end = text.find(' ', close + 4);
  if (ppid_end == std::string_view::npos) {
    return false;
  }
  const char* first = text.data() + ppid_end + 1;
  return std::from_chars(first, text.data() + text.size(), group).ec == std::errc{};
}

// The child's wait status; it has exited or was just killed, so this wait is short.
int reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// Reads a pipe to its end (every writer gone) or until cancelled.
asio::awaitable<void> read_all(asio::posix::stream_descriptor* pipe, const OutputSink& sink) {
  if (pipe == nullptr) {
    co_return;
  }
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    auto [error, got] =
        co_await pipe->async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
    if (got > 0 && sink) {
      sink({buffer.data(), got});
    }
    if (error) {
      co_return;
    }
  }
}

asio::awaitable<void> await_exit(asio::posix::stream_descriptor& pidfd) {
  co_await pidfd.async_wait(asio::posix::descriptor_base::wait_read,
                            asio::as_tuple(asio::use_awaitable));
}

}  // namespace

std::vector<std::string> inherited_environment(char* const* parent) {
  std::vector<std::string> environment;
  for (const std::string_view name : kInheritedVariables) {
    for (char* const* entry = parent; entry != nullptr && *entry != nullptr; ++entry) {
      const std::string_view text{*entry};
      if (text.size() > name.size() && text.starts_with(name) && text[name.size()] == '=') {
        environment.emplace_back(text);
        break;
      }
    }
  }
  return environment;
}

int spawn(const Command& command, Spawned& spawned) {
  std::vector<std::string> strings = command.environment;
  std::vector<char*> envp;
  for (std::string& entry : strings) {
    envp.push_back(entry.data());
  }
  envp.push_back(nullptr);
  std::vector<std::string> words{command.program};
  words.insert(words.end(), command.arguments.begin(), command.arguments.end());
  std::vector<char*> argv;
  for (std::string& word : words) {
    argv.push_back(word.data());
  }
  argv.push_back(nullptr);

  // Every end close-on-exec: the child gets the write ends only as its 1 and 2.
  int output[2];
  int errors[2] = {-1, -1};
  if (::pipe2(output, O_CLOEXEC) != 0) {
    return errno;
  }
  if (!command.merge_errors && ::pipe2(errors, O_CLOEXEC) != 0) {
    const int error = errno;
    ::close(output[0]);
    ::close(output[1]);
    return error;
  }
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attributes, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  sigset_t defaults;  // the daemon ignores SIGXFSZ and catches SIGTERM/SIGHUP: not the child
  sigfillset(&defaults);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, output[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, command.merge_errors ? output[1] : errors[1],
                                   STDERR_FILENO);
  // The safety net: a descriptor some library opened without O_CLOEXEC (or one opened
  // by another thread) still stays out of the child.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  const int started = posix_spawnp(&spawned.pid, command.program.c_str(), &actions, &attributes,
                                   argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(output[1]);
  if (errors[1] >= 0) {
    ::close(errors[1]);
  }
  if (started != 0) {
    ::close(output[0]);
    if (errors[0] >= 0) {
      ::close(errors[0]);
    }
    return started;
  }
  spawned.output = output[0];
  spawned.errors = errors[0];
  return 0;
}

bool group_alive(pid_t pgid) {
  if (::kill(-pgid, 0) != 0 && errno == ESRCH) {
    return false;
  }
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) {
    return true;  // cannot tell zombies apart: kill() said someone is there
  }
  bool alive = false;
  while (const dirent* entry = ::readdir(proc)) {
    char state = 0;
    pid_t group = 0;
    if (entry->d_name[0] >= '1' && entry->d_name[0] <= '9' &&
        read_stat(entry->d_name, state, group) && group == pgid && state != 'Z' && state != 'X') {
      alive = true;
      break;
    }
  }
  ::closedir(proc);
  return alive;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) {
    return "exit status " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return "killed by signal " + std::to_string(WTERMSIG(status));
  }
  return "status " + std::to_string(status);
}

asio::awaitable<Ended> await_end(pid_t pid, std::chrono::steady_clock::duration timeout,
                                 asio::posix::stream_descriptor& output,
                                 const OutputSink& on_output,
                                 asio::posix::stream_descriptor* errors,
                                 const OutputSink& on_errors) {
  const auto executor = co_await asio::this_coro::executor;
  // glibc 2.36's <sys/pidfd.h> lacks C linkage for C++; the system call is the same.
  // A pidfd is close-on-exec.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    // Without a pidfd the child cannot be awaited without blocking the loop.
    const int error = errno;
    ::kill(-pid, SIGKILL);
    reap(pid);
    co_return Ended{.how = Ended::unwatchable, .error = error};
  }
  asio::posix::stream_descriptor exited{executor, pidfd};  // owns and closes the pidfd
  asio::steady_timer deadline{executor, timeout};
  using namespace asio::experimental::awaitable_operators;
  const auto first = co_await (
      (read_all(&output, on_output) && read_all(errors, on_errors) && await_exit(exited)) ||
      deadline.async_wait(asio::as_tuple(asio::use_awaitable)));
  if (first.index() == 1) {
    ::kill(-pid, SIGKILL);
    reap(pid);
    co_return Ended{.how = Ended::timed_out};
  }
  Ended ended{.status = reap(pid)};
  asio::steady_timer poll{executor};
  while (group_alive(pid)) {
    const auto left = deadline.expiry() - asio::steady_timer::clock_type::now();
    if (left <= asio::steady_timer::duration::zero()) {
      ::kill(-pid, SIGKILL);
      ended.how = Ended::left_behind;
      break;
    }
    poll.expires_after(std::min<asio::steady_timer::duration>(left, kGroupPoll));
    co_await poll.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_return ended;
}

RunningGroups::Entry::Entry(RunningGroups& groups, pid_t pgid, std::chrono::seconds grace)
    : groups_(groups), pgid_(pgid) {
  groups_.groups_[pgid] = grace;
}

RunningGroups::Entry::~Entry() {
  groups_.groups_.erase(pgid_);
}

std::size_t RunningGroups::end_all() {
  using Steady = std::chrono::steady_clock;
  struct Ending {
    pid_t pgid;
    Steady::time_point kill_at;
    bool killed = false;
  };
  const auto start = Steady::now();
  std::vector<Ending> ending;
  for (const auto& [pgid, grace] : groups_) {
    ::kill(-pgid, SIGTERM);
    ending.push_back({pgid, start + std::min<Steady::duration>(kStopGrace, grace)});
  }
  const std::size_t count = ending.size();
  while (!ending.empty() && Steady::now() < start + kStopGrace + kKillWait) {
    std::erase_if(ending, [](Ending& group) {
      if (!group_alive(group.pgid)) {
        return true;
      }
      if (!group.killed && Steady::now() >= group.kill_at) {
        ::kill(-group.pgid, SIGKILL);
        group.killed = true;
      }
      return false;
    });
    if (!ending.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
  }
  groups_.clear();
  return count;
}

}  // namespace gio::process
