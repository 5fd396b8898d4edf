#include "ops/hooks.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
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
// How often the group of a hook whose shell has ended is looked at, until it is empty.
constexpr std::chrono::milliseconds kGroupPoll{100};

std::string describe_status(int status) {
  if (WIFEXITED(status)) {
    return "exit status " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return "killed by signal " + std::to_string(WTERMSIG(status));
  }
  return "status " + std::to_string(status);
}

// How a hook ended: its shell's wait status, or why there is none.
struct Ended {
  enum How { exited, timed_out, left_behind, unwatchable } how = exited;
  int status = 0;  // exited, left_behind: the shell's wait status
  int error = 0;   // unwatchable: pidfd_open's errno
};

// The shell's wait status; it has exited or was just killed, so this wait is short.
int reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// Reads the hook's output to its end (every writer gone) or until cancelled, keeping
// what the log shows: a hook never blocks on a full pipe, however much it prints.
asio::awaitable<void> read_output(asio::posix::stream_descriptor& pipe, HookOutput& printed) {
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    auto [error, got] =
        co_await pipe.async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
    printed.add({buffer.data(), got});
    if (error) {
      co_return;
    }
  }
}

asio::awaitable<void> await_exit(asio::posix::stream_descriptor& pidfd) {
  co_await pidfd.async_wait(asio::posix::descriptor_base::wait_read,
                            asio::as_tuple(asio::use_awaitable));
}

// Waits, within `timeout`, for the hook's shell to exit and its output to end, then for
// the rest of its process group (a child it left running with its output elsewhere is
// still the hook's); past the timeout the whole group is killed.
asio::awaitable<Ended> await_end(pid_t pid, std::chrono::seconds timeout,
                                 asio::posix::stream_descriptor& output, HookOutput& printed) {
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
  const auto first = co_await ((read_output(output, printed) && await_exit(exited)) ||
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
  SpawnedHook child;
  if (const int spawned = spawn_hook(hook.command, hook.variables, child); spawned != 0) {
    failed(std::string{"cannot start /bin/sh: "} + std::strerror(spawned));
    co_return;
  }
  const RunningHooks::Entry running{child.pid, hook.timeout};      // for the daemon's stop
  asio::posix::stream_descriptor output{executor_, child.output};  // owns and closes it
  HookOutput printed;
  const Ended ended = co_await await_end(child.pid, hook.timeout, output, printed);
  log_output(printed, about);
  if (ended.how == Ended::timed_out) {
    failed("killed after " + std::to_string(hook.timeout.count()) + "s (hook_timeout)");
  } else if (ended.how == Ended::left_behind) {
    failed("its processes outlived it and were killed after " +
           std::to_string(hook.timeout.count()) + "s (hook_timeout)");
  } else if (ended.how == Ended::unwatchable) {
    failed(std::string{"pidfd_open: "} + std::strerror(ended.error));
  } else if (!WIFEXITED(ended.status) || WEXITSTATUS(ended.status) != 0) {
    failed(describe_status(ended.status));
  } else {
    log_event(Level::debug, "hook_finished", "hook finished", about);
  }
}

std::size_t end_running_hooks() {
  return RunningHooks::end_all();
}

}  // namespace gio::ops
