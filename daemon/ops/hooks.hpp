#pragma once

// Per-job hooks: a command run by /bin/sh when a slot is done, failed or at risk, with
// the slot's details in GIO_* environment variables. A hook never blocks the loop (the
// child is awaited through a pidfd), is killed (with its process group) when it
// outlives the job's hook_timeout, and its failure is logged, never acted on.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "async/async.hpp"

namespace gio::ops {

using HookVariables = std::vector<std::pair<std::string, std::string>>;

class HookRunner {
 public:
  explicit HookRunner(boost::asio::any_io_executor executor);

  // Starts `command` (if not empty) in the background with `variables` added to the
  // daemon's environment; at most a few hooks run at once, the rest wait their turn.
  void run(const std::string& command, std::chrono::seconds timeout, HookVariables variables);
  // Until every hook started has ended (each is bounded by its timeout): `run --once`
  // waits for its hooks before the process exits.
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

}  // namespace gio::ops
