#include "ops/hook_process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <iterator>
#include <map>
#include <thread>

#include "archive/archive.hpp"

namespace gio::ops {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
// After SIGKILL, how long the stop waits for the killed to be gone (their sockets
// closed) before the daemon exits.
constexpr std::chrono::seconds kKillWait{1};

// C1 controls (U+0080..U+009F: a terminal may read U+009B as an escape) and the Unicode
// line and paragraph separators, which some viewers break lines at.
bool unsafe_character(std::string_view sequence) {
  const auto byte = [&sequence](std::size_t i) { return static_cast<unsigned char>(sequence[i]); };
  if (sequence.size() == 2) {
    return byte(0) == 0xC2 && byte(1) < 0xA0;
  }
  return sequence.size() == 3 && byte(0) == 0xE2 && byte(1) == 0x80 &&
         (byte(2) == 0xA8 || byte(2) == 0xA9);
}

std::map<pid_t, std::chrono::seconds>& running_groups() {
  static std::map<pid_t, std::chrono::seconds> groups;
  return groups;
}

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

}  // namespace

std::vector<std::string> hook_environment(const HookVariables& variables, char* const* parent) {
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
  for (const auto& [name, value] : variables) {
    if (std::ranges::find(kHookVariableNames, name) != std::end(kHookVariableNames)) {
      environment.push_back(name + "=" + value);
    }
  }
  return environment;
}

std::string hook_output_text(std::string_view bytes) {
  if (bytes.ends_with('\n')) {
    bytes.remove_suffix(1);
  }
  std::string text;
  text.reserve(bytes.size());
  while (!bytes.empty()) {
    const std::size_t length = archive::utf8_sequence_length(bytes, 0);
    if (length == 0 || unsafe_character(bytes.substr(0, length))) {
      text += kReplacement;
      bytes.remove_prefix(std::max<std::size_t>(length, 1));
    } else {
      text += bytes.substr(0, length);
      bytes.remove_prefix(length);
    }
  }
  return text;
}

void HookOutput::add(std::string_view bytes) {
  total_ += bytes.size();
  if (kept_.size() < kMaxBytes) {
    kept_ += bytes.substr(0, kMaxBytes - kept_.size());
  }
}

int spawn_hook(std::string command, const HookVariables& variables, SpawnedHook& spawned) {
  std::vector<std::string> environment = hook_environment(variables, environ);
  std::vector<char*> envp;
  for (std::string& entry : environment) {
    envp.push_back(entry.data());
  }
  envp.push_back(nullptr);
  std::string shell = "/bin/sh";
  std::string dash_c = "-c";
  char* argv[] = {shell.data(), dash_c.data(), command.data(), nullptr};

  // Both ends close-on-exec: the child gets the write end only as its 1 and 2.
  int output[2];
  if (::pipe2(output, O_CLOEXEC) != 0) {
    return errno;
  }
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
  posix_spawn_file_actions_adddup2(&actions, output[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, output[1], STDERR_FILENO);
  // The safety net: a descriptor some library opened without O_CLOEXEC (or one opened
  // by another thread) still stays out of the hook.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  const int started =
      posix_spawn(&spawned.pid, shell.c_str(), &actions, &attributes, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(output[1]);
  if (started != 0) {
    ::close(output[0]);
    return started;
  }
  spawned.output = output[0];
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

RunningHooks::Entry::Entry(pid_t pgid, std::chrono::seconds timeout) : pgid_(pgid) {
  running_groups()[pgid] = timeout;
}

RunningHooks::Entry::~Entry() {
  running_groups().erase(pgid_);
}

std::size_t RunningHooks::end_all() {
  using Steady = std::chrono::steady_clock;
  struct Ending {
    pid_t pgid;
    Steady::time_point kill_at;
    bool killed = false;
  };
  const auto start = Steady::now();
  std::vector<Ending> ending;
  for (const auto& [pgid, timeout] : running_groups()) {
    ::kill(-pgid, SIGTERM);
    ending.push_back({pgid, start + std::min<Steady::duration>(kStopGrace, timeout)});
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
  running_groups().clear();
  return count;
}

}  // namespace gio::ops
