#pragma once

// Per-job hooks: a command run by /bin/sh when a slot is done, failed or at risk, with
// the slot's details in GIO_* environment variables. A hook never blocks the loop (the
// child is awaited through a pidfd), is killed (with its process group) when it
// outlives the job's hook_timeout, and its failure is logged, never acted on.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <exception>
#include <string>
#include <utility>
#include <vector>

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
  // Starts queued hooks while fewer than the limit run.
  void start_queued();
  boost::asio::awaitable<void> execute(Hook hook);

  boost::asio::any_io_executor executor_;
  // A queue and a count rather than scheduler/async.hpp's Semaphore and TaskGroup:
  // the scheduler is built on ops/, so ops/ cannot use what the scheduler owns.
  std::deque<Hook> queued_;
  int running_ = 0;
  boost::asio::steady_timer idle_;  // cancelled when the last hook ends: wakes wait()
  std::exception_ptr error_;        // the first a hook's coroutine threw; wait() rethrows it
};

}  // namespace gio::ops
