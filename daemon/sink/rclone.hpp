#pragma once

// One rclone command as a child process (process/child): the sink's remote reaches it
// only through its environment, as the alias remote "giosink:", and what it prints on
// stderr comes back redacted and bounded. sink.cpp turns the steps of landing into
// commands; this file knows how to run one and what its failure means.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "sink/sink.hpp"

namespace gio::sink::detail {

// The name of the alias remote rclone gets through RCLONE_CONFIG_GIOSINK_*.
inline constexpr std::string_view kAlias = "giosink";

struct RcloneResult {
  int exit_code = 0;  // -1: killed (timeout or signal), or never started
  bool timed_out = false;
  bool not_started = false;  // spawning failed (`error` says why)
  std::string output;        // stdout (bounded by the caller's max_output)
  bool output_truncated = false;
  std::string error;   // the last error line of stderr, redacted, bounded
  std::string errors;  // the tail of stderr, redacted (for classification)

  bool ok() const { return exit_code == 0 && !timed_out && !not_started; }
};

class Rclone {
 public:
  Rclone(const config::Sink& settings, std::filesystem::path program);

  // The child's whole environment: PATH, HOME, LANG of the daemon's, then the alias
  // remote (RCLONE_CONFIG_GIOSINK_TYPE=alias, RCLONE_CONFIG_GIOSINK_REMOTE=<remote>) and
  // RCLONE_CONFIG when the sink names a config file.
  std::vector<std::string> environment() const;
  // The argv rclone gets (after the program): `arguments` then the flags every command
  // takes (quiet, bounded retries and timeouts, no password prompt). Never the remote.
  std::vector<std::string> argv(std::vector<std::string> arguments) const;

  boost::asio::awaitable<RcloneResult> run(std::vector<std::string> arguments,
                                           std::chrono::seconds timeout,
                                           std::size_t max_output = 64 * 1024) const;

  // `text` with the remote string, and each value of an on-the-fly backend string
  // (":webdav,url='http://h',pass=x:"), replaced by the sink's name.
  std::string redact(std::string_view text) const;

 private:
  const config::Sink& settings_;
  std::filesystem::path program_;
  std::vector<std::string> secrets_;  // longest first
};

// Sink::end_all: SIGTERM to the group of every rclone still running, SIGKILL after a
// short grace. Blocks; returns how many it ended.
std::size_t end_all_rclones();

// "giosink:<path>" for a path relative to the remote.
std::string remote_path(std::string_view relative);

// What a failed command means, from rclone's messages first (they say more than its exit
// codes: rclone exits 1 both for a refused connection and for a bad remote string), then
// from its documented exit codes (5 temporary, 7 fatal, 8 transfer limit).
SinkError::Kind classify(const RcloneResult& result);

// The last line of rclone's stderr that says something (not a NOTICE), without its
// timestamp and level, at most `max` bytes.
std::string last_error_line(std::string_view errors, std::size_t max = 300);

}  // namespace gio::sink::detail
