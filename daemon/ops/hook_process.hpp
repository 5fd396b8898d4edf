#pragma once

// The process side of hooks (hooks.cpp runs them on the loop): what a hook process gets
// (a clean environment, /dev/null, one output pipe, no other descriptor), how its output
// becomes log text, and the process groups of the hooks still running, which the
// daemon's stop ends.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ops/hooks.hpp"

namespace gio::ops {

// The variables a hook may get from its runner (documented in man 5 gio-exporter.yaml);
// anything else a caller passes is dropped.
inline constexpr std::string_view kHookVariableNames[] = {
    "GIO_EVENT", "GIO_JOB",         "GIO_SLOT",   "GIO_SLOT_START", "GIO_LOST_AT",     "GIO_FILES",
    "GIO_BYTES", "GIO_ARCHIVE_DIR", "GIO_REASON", "GIO_STATE",      "GIO_SECONDS_LEFT"};
// What a hook keeps of the daemon's own environment: never its secrets (token and key
// variables, CREDENTIALS_DIRECTORY), nor systemd's sockets (NOTIFY_SOCKET).
inline constexpr std::string_view kInheritedVariables[] = {"PATH", "HOME", "LANG"};

// The hook's whole environment ("NAME=value" entries): PATH, HOME and LANG as `parent`
// (an environ-style array) has them, then the documented ones of `variables`.
std::vector<std::string> hook_environment(const HookVariables& variables, char* const* parent);

// Hook output as log text: invalid UTF-8, C1 controls and line separators become U+FFFD
// (the log formatter escapes the C0 controls, newlines included), one trailing newline
// dropped. Whatever the hook prints, it stays inside one field of one log line.
std::string hook_output_text(std::string_view bytes);

// What the log shows of a hook's output: the first kMaxBytes, and how many there were.
class HookOutput {
 public:
  static constexpr std::size_t kMaxBytes = 4096;
  void add(std::string_view bytes);
  std::size_t total() const { return total_; }
  std::size_t dropped() const { return total_ - kept_.size(); }
  std::string text() const { return hook_output_text(kept_); }

 private:
  std::string kept_;
  std::size_t total_ = 0;
};

struct SpawnedHook {
  pid_t pid = -1;   // also the id of the hook's own process group
  int output = -1;  // the read end of its stdout and stderr (close-on-exec)
};
// Starts `/bin/sh -c command` in a process group of its own, with hook_environment(),
// stdin from /dev/null, stdout and stderr into one pipe, every other descriptor closed
// (close_range, or a walk of /proc/self/fd: glibc's closefrom), and default signal
// handling. Returns an errno value, 0 when `spawned` is filled.
int spawn_hook(std::string command, const HookVariables& variables, SpawnedHook& spawned);

// True while a process of group `pgid` is alive (zombies, which hold nothing, are not).
bool group_alive(pid_t pgid);

// The process groups of the hooks started and not yet ended, for the daemon's stop. One
// per process: the groups are the process's children, whatever started them.
class RunningHooks {
 public:
  // Registers `pgid` for its lifetime (the runner ends the group before it goes).
  class Entry {
   public:
    Entry(pid_t pgid, std::chrono::seconds timeout);
    ~Entry();
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;

   private:
    pid_t pgid_;
  };
  // SIGTERM to every group, up to min(kStopGrace, its hook_timeout) for it to end, then
  // SIGKILL. Blocks (it is the stop path, after the loop stopped); returns how many
  // groups it ended.
  static std::size_t end_all();
  static constexpr std::chrono::seconds kStopGrace{5};
};

}  // namespace gio::ops
