#include "ops/hooks.hpp"

#include <sys/wait.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstring>
#include <utility>
#include <vector>

#include "ops/hook_process.hpp"
#include "ops/logging.hpp"

namespace gio::ops {
namespace {

namespace asio = boost::asio;

// Hooks are notifications (a chat message, a ticket): a few at once is plenty, and a
// burst of slots done cannot fork the machine to death.
constexpr int kMaxRunning = 4;

// The process groups of the hooks still running, for the daemon's stop: one set per
// process, whichever runner started them.
process::RunningGroups& running_hooks() {
  static process::RunningGroups groups;
  return groups;
}

// hook_output: the first HookOutput::kMaxBytes of what the hook printed, in one field,
// and how many bytes it printed in all.
void log_output(const HookOutput& printed, Fields fields) {
  if (printed.total() == 0) {
    return;
  }
  fields.emplace_back("output", printed.text());
  fields.emplace_back("bytes", printed.total());
  if (printed.dropped() > 0) {
    fields.emplace_back("dropped", printed.dropped());
  }
  log_event(Level::info, "hook_output", "hook output", fields);
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
  process::Spawned child;
  if (const int spawned = spawn_hook(hook.command, hook.variables, child); spawned != 0) {
    failed(std::string{"cannot start /bin/sh: "} + std::strerror(spawned));
    co_return;
  }
  // For the daemon's stop.
  const process::RunningGroups::Entry running{running_hooks(), child.pid, hook.timeout};
  asio::posix::stream_descriptor output{executor_, child.output};  // owns and closes it
  HookOutput printed;
  // The shell exits, its output ends, then the rest of its group (a child it left running
  // with its output elsewhere is still the hook's), all within hook_timeout.
  // Named, not a temporary in the co_await expression (GCC 12 destroys those twice).
  const process::OutputSink keep = [&printed](std::string_view bytes) { printed.add(bytes); };
  const process::OutputSink none;  // stderr shares stdout's pipe
  const process::Ended ended =
      co_await process::await_end(child.pid, hook.timeout, output, keep, nullptr, none);
  using process::Ended;
  log_output(printed, about);
  if (ended.how == Ended::timed_out) {
    failed("killed after " + std::to_string(hook.timeout.count()) + "s (hook_timeout)");
  } else if (ended.how == Ended::left_behind) {
    failed("its processes outlived it and were killed after " +
           std::to_string(hook.timeout.count()) + "s (hook_timeout)");
  } else if (ended.how == Ended::unwatchable) {
    failed(std::string{"pidfd_open: "} + std::strerror(ended.error));
  } else if (!WIFEXITED(ended.status) || WEXITSTATUS(ended.status) != 0) {
    failed(process::describe_status(ended.status));
  } else {
    log_event(Level::debug, "hook_finished", "hook finished", about);
  }
}

std::size_t end_running_hooks() {
  return running_hooks().end_all();
}

}  // namespace gio::ops
