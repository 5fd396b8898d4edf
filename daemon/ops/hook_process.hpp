#pragma once

// The process side of hooks (hooks.cpp runs them on the loop): what a hook process gets
// (a clean environment, /dev/null, one output pipe, no other descriptor: process/child)
// and how its output becomes log text.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ops/hooks.hpp"
#include "process/child.hpp"

namespace gio::ops {

// The variables a hook may get from its runner (documented in man 5 gio-exporter.yaml);
// anything else a caller passes is dropped.
inline constexpr std::string_view kHookVariableNames[] = {
    "GIO_EVENT",   "GIO_JOB",     "GIO_SLOT",         "GIO_SLOT_START",
    "GIO_LOST_AT", "GIO_FILES",   "GIO_BYTES",        "GIO_ARCHIVE_DIR",
    "GIO_REASON",  "GIO_STATE",   "GIO_SECONDS_LEFT", "GIO_DATA_TYPE",
    "GIO_ADDED",   "GIO_REMOVED", "GIO_REORDERED",    "GIO_COLUMNS"};
// The hook's whole environment ("NAME=value" entries): PATH, HOME and LANG as `parent`
// (an environ-style array) has them (process::inherited_environment), then the
// documented ones of `variables`.
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

// Starts `/bin/sh -c command` with hook_environment() as process::spawn starts a child,
// stdout and stderr into one pipe. Returns an errno value, 0 when `spawned` is filled.
int spawn_hook(std::string command, const HookVariables& variables, process::Spawned& spawned);

}  // namespace gio::ops
