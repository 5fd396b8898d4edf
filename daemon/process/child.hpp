#pragma once

// Child processes the daemon starts (hooks, rclone): each in a process group of its
// own, with a clean environment, stdin from /dev/null, its output in pipes read on the
// loop without blocking it, every other descriptor closed, killed whole at a timeout or
// at the daemon's stop. ops/hooks and sink/ share this; each keeps its own policy (what
// the environment holds, how much output it keeps, what a failure means).

#include <sys/types.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace gio::process {

// What a child keeps of the daemon's own environment: never its secrets (token and key
// variables, CREDENTIALS_DIRECTORY), nor systemd's sockets (NOTIFY_SOCKET).
inline constexpr std::string_view kInheritedVariables[] = {"PATH", "HOME", "LANG"};

// PATH, HOME and LANG ("NAME=value") as `parent` (an environ-style array) has them.
std::vector<std::string> inherited_environment(char* const* parent);

struct Command {
  std::string program;                   // a path, or a name looked up on PATH
  std::vector<std::string> arguments;    // argv[1..]; argv[0] is `program`
  std::vector<std::string> environment;  // the child's whole environment
  bool merge_errors = true;              // stderr into stdout's pipe; else a pipe of its own
};

struct Spawned {
  pid_t pid = -1;   // also the id of the child's own process group
  int output = -1;  // the read end of its stdout (and stderr when merged); close-on-exec
  int errors = -1;  // the read end of its stderr when not merged
};

// Starts `command` in a process group of its own, with stdin from /dev/null, its output
// into pipes, every other descriptor closed (close_range, or a walk of /proc/self/fd:
// glibc's closefrom), no signal blocked and default handling of every signal. Returns an
// errno value (ENOENT: no such program), 0 when `spawned` is filled.
int spawn(const Command& command, Spawned& spawned);

// True while a process of group `pgid` is alive (zombies, which hold nothing, are not).
bool group_alive(pid_t pgid);

// How a child ended: its wait status, or why there is none.
struct Ended {
  enum How { exited, timed_out, left_behind, unwatchable } how = exited;
  int status = 0;  // exited, left_behind: the child's wait status
  int error = 0;   // unwatchable: pidfd_open's errno
};
// "exit status 3", "killed by signal 9".
std::string describe_status(int status);

using OutputSink = std::function<void(std::string_view)>;
// Waits, within `timeout`, for the child to exit and its pipes to end (every writer
// gone), passing what it prints to `on_output` (and `on_errors` when `errors` is not
// null) as it comes, so that a child never blocks on a full pipe; then for the rest of
// its process group (a grandchild left running is still the child's). Past the timeout
// the whole group is killed. Never blocks the loop: the child is awaited through a pidfd.
// The sinks are references, and no argument has a default: a caller names them before
// the co_await (GCC 12 destroys a temporary in a co_await expression twice).
boost::asio::awaitable<Ended> await_end(pid_t pid, std::chrono::steady_clock::duration timeout,
                                        boost::asio::posix::stream_descriptor& output,
                                        const OutputSink& on_output,
                                        boost::asio::posix::stream_descriptor* errors,
                                        const OutputSink& on_errors);

// The process groups of one kind of child (hooks, rclone) started and not yet ended, for
// the daemon's stop. Each kind has its own instance, so ending the hooks leaves rclone
// alone and the other way round.
class RunningGroups {
 public:
  // Registers `pgid` for its lifetime (the runner ends the group before it goes), with
  // the longest grace it gets at the stop before SIGKILL.
  class Entry {
   public:
    Entry(RunningGroups& groups, pid_t pgid, std::chrono::seconds grace);
    ~Entry();
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;

   private:
    RunningGroups& groups_;
    pid_t pgid_;
  };
  // SIGTERM to every group, up to min(kStopGrace, its grace) for it to end, then
  // SIGKILL. Blocks (it is the stop path, after the loop stopped); returns how many
  // groups it ended.
  std::size_t end_all();
  static constexpr std::chrono::seconds kStopGrace{5};

 private:
  std::map<pid_t, std::chrono::seconds> groups_;
};

}  // namespace gio::process
