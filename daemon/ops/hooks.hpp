#pragma once

// Per-job hooks: a command run by /bin/sh when a slot is done, failed or at risk, with
// the slot's details in GIO_* environment variables and nothing of the daemon's (no
// secret, no descriptor). A hook never blocks the loop (the child is awaited through a
// pidfd, its output read as it comes), runs in a process group of its own that is
// killed whole when it outlives the job's hook_timeout or when the daemon stops, and its
// output (escaped, bounded) and failure are logged, never acted on.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "async/async.hpp"

namespace gio::ops {

using HookVariables = std::vector<std::pair<std::string, std::string>>;

class HookRunner {
 public:
  explicit HookRunner(boost::asio::any_io_executor executor);

  // Starts `command` (if not empty) in the background with the documented ones of
  // `variables` and the daemon's PATH, HOME and LANG as its whole environment; at most a
  // few hooks run at once, the rest wait their turn.
  void run(const std::string& command, std::chrono::seconds timeout, HookVariables variables);
  // Until every hook started has ended, children included (each is bounded by its
  // timeout): `run --once` waits for its hooks before the process exits.
  boost::asio::awaitable<void> wait();

 private:
  struct Hook {
    std::string command;
    std::chrono::seconds timeout;
    HookVariables variables;
  };
  boost::asio::awaitable<void> execute(Hook hook);

  boost::asio::any_io_executor executor_;
  async::Semaphore slots_;  // bounds the hooks running at once
  async::TaskGroup hooks_;  // every hook started, so that wait() can await them
};

// The daemon's stop (the loop has stopped): SIGTERM to the process group of every hook
// still running, whichever runner started it, a grace of min(5 s, its hook_timeout),
// then SIGKILL, so that nothing a hook started outlives the daemon or holds what it
// held. Blocks for at most that long; returns the number of hooks ended.
std::size_t end_running_hooks();

}  // namespace gio::ops
