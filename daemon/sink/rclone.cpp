#include "sink/rclone.hpp"

#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/this_coro.hpp>
#include <cctype>
#include <cstring>
#include <utility>

#include "process/child.hpp"

namespace gio::sink::detail {
namespace {

namespace asio = boost::asio;

// What is kept of stderr: its tail, where rclone's final verdict is.
constexpr std::size_t kErrorTail = 8 * 1024;
// A value of an on-the-fly backend string shorter than this is not redacted on its own
// ("s3", "true"): replacing it everywhere would garble the message, and it is no secret.
constexpr std::size_t kShortestSecret = 4;
// Grace for an rclone process at the daemon's stop (it only holds a connection).
constexpr std::chrono::seconds kStopGrace{2};

process::RunningGroups& running_rclones() {
  static process::RunningGroups groups;
  return groups;
}

// The parameter values of an on-the-fly backend or connection string
// (":s3,access_key_id=K,secret_access_key='S':bucket", "name,pass=\"x\":path"),
// unquoted, each as written too.
std::vector<std::string> parameter_values(std::string_view remote) {
  std::vector<std::string> values;
  std::size_t at = 0;
  while ((at = remote.find('=', at)) != std::string_view::npos) {
    ++at;
    if (at >= remote.size()) {
      break;
    }
    const char quote = remote[at];
    std::string value;
    std::size_t end = at;
    if (quote == '\'' || quote == '"') {
      // A quote inside a quoted value is doubled.
      for (end = at + 1; end < remote.size(); ++end) {
        if (remote[end] == quote) {
          if (end + 1 < remote.size() && remote[end + 1] == quote) {
            value += quote;
            ++end;
            continue;
          }
          break;
        }
        value += remote[end];
      }
      values.emplace_back(remote.substr(at, std::min(end + 1, remote.size()) - at));
    } else {
      end = remote.find_first_of(",:", at);
      value =
          std::string{remote.substr(at, end == std::string_view::npos ? remote.npos : end - at)};
    }
    values.push_back(std::move(value));
    at = end == std::string_view::npos ? remote.size() : end;
  }
  return values;
}

bool contains_any(std::string_view text, std::initializer_list<std::string_view> needles) {
  return std::ranges::any_of(needles, [text](std::string_view needle) {
    return std::ranges::search(text, needle, [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) ==
                    std::tolower(static_cast<unsigned char>(b));
           }).begin() != text.end();
  });
}

// Keeps the last kErrorTail bytes of what is added.
struct Tail {
  std::string text;
  void add(std::string_view bytes) {
    text += bytes;
    if (text.size() > 2 * kErrorTail) {
      text.erase(0, text.size() - kErrorTail);
    }
  }
};

}  // namespace

Rclone::Rclone(const config::Sink& settings, std::filesystem::path program)
    : settings_(settings), program_(std::move(program)) {
  if (!settings_.rclone_remote.empty()) {
    secrets_.push_back(settings_.rclone_remote);
  }
  for (std::string& value : parameter_values(settings_.rclone_remote)) {
    if (value.size() >= kShortestSecret) {
      secrets_.push_back(std::move(value));
    }
  }
  std::ranges::sort(secrets_,
                    [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::vector<std::string> Rclone::environment() const {
  std::vector<std::string> environment = process::inherited_environment(environ);
  environment.push_back("RCLONE_CONFIG_GIOSINK_TYPE=alias");
  environment.push_back("RCLONE_CONFIG_GIOSINK_REMOTE=" + settings_.rclone_remote);
  if (!settings_.rclone_config.empty()) {
    environment.push_back("RCLONE_CONFIG=" + settings_.rclone_config.string());
  }
  return environment;
}

std::vector<std::string> Rclone::argv(std::vector<std::string> arguments) const {
  // Quiet (errors only: no "config file not found" notice), no prompt (stdin is
  // /dev/null), and one attempt: the daemon retries a slot with its own back-off, so
  // rclone's three whole-command retries would only hide a down remote for longer.
  for (const char* flag : {"--log-level=ERROR", "--ask-password=false", "--retries=1",
                           "--low-level-retries=3", "--contimeout=15s", "--timeout=2m"}) {
    arguments.emplace_back(flag);
  }
  return arguments;
}

asio::awaitable<RcloneResult> Rclone::run(std::vector<std::string> arguments,
                                          std::chrono::seconds timeout,
                                          std::size_t max_output) const {
  RcloneResult result;
  // For the debug line: what ran, on which object (a giosink: path, never the remote).
  std::string what = arguments.empty() ? "" : arguments.front();
  if (arguments.size() > 1) {
    what += " " + arguments.back();
  }
  const auto started = std::chrono::steady_clock::now();
  const process::Command command{.program = program_.string(),
                                 .arguments = argv(std::move(arguments)),
                                 .environment = environment(),
                                 .merge_errors = false};
  process::Spawned child;
  if (const int error = process::spawn(command, child); error != 0) {
    result.not_started = true;
    result.exit_code = -1;
    result.error = "cannot start " + program_.string() + ": " + std::strerror(error);
    co_return result;
  }
  const auto executor = co_await asio::this_coro::executor;
  const process::RunningGroups::Entry running{running_rclones(), child.pid, kStopGrace};
  asio::posix::stream_descriptor output{executor, child.output};  // owns and closes them
  asio::posix::stream_descriptor errors{executor, child.errors};
  Tail tail;
  // Named, not temporaries in the co_await expression (GCC 12 destroys those twice).
  const process::OutputSink keep_output = [&result, max_output](std::string_view bytes) {
    if (result.output.size() + bytes.size() > max_output) {
      result.output_truncated = true;
      bytes = bytes.substr(0, max_output - std::min(max_output, result.output.size()));
    }
    result.output += bytes;
  };
  const process::OutputSink keep_errors = [&tail](std::string_view bytes) { tail.add(bytes); };
  const process::Ended ended =
      co_await process::await_end(child.pid, timeout, output, keep_output, &errors, keep_errors);
  result.errors = redact(tail.text);
  result.error = last_error_line(result.errors);
  if (ended.how == process::Ended::timed_out) {
    result.timed_out = true;
    result.exit_code = -1;
    result.error = "timed out after " + std::to_string(timeout.count()) + "s" +
                   (result.error.empty() ? "" : " (" + result.error + ")");
  } else if (ended.how == process::Ended::unwatchable) {
    result.exit_code = -1;
    result.error = std::string{"pidfd_open: "} + std::strerror(ended.error);
  } else if (WIFEXITED(ended.status)) {
    result.exit_code = WEXITSTATUS(ended.status);
  } else {
    result.exit_code = -1;
    if (result.error.empty()) {
      result.error = process::describe_status(ended.status);
    }
  }
  // The landing's cost is mostly these processes: each one's wall time, at debug.
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  spdlog::debug("rclone {}: exit {} after {} ms", redact(what), result.exit_code, took.count());
  co_return result;
}

std::string Rclone::redact(std::string_view text) const {
  std::string out{text};
  for (const std::string& secret : secrets_) {
    for (std::size_t at = out.find(secret); at != std::string::npos;
         at = out.find(secret, at + settings_.name.size())) {
      out.replace(at, secret.size(), settings_.name);
    }
  }
  return out;
}

std::size_t end_all_rclones() {
  return running_rclones().end_all();
}

std::string remote_path(std::string_view relative) {
  return std::string{kAlias} + ":" + std::string{relative};
}

SinkError::Kind classify(const RcloneResult& result) {
  using Kind = SinkError::Kind;
  if (result.not_started) {
    return Kind::setup;
  }
  if (result.timed_out) {
    return Kind::unavailable;
  }
  const std::string_view errors = result.errors;
  if (contains_any(errors, {"didn't find backend", "didn't find section", "unterminated quoted",
                            "failed to parse", "unknown flag", "couldn't decrypt",
                            "Failed to load config", "unknown backend", "Usage:"})) {
    return Kind::setup;
  }
  // Network first: "Failed to mkdir: ... connection refused" is a remote that is down.
  if (contains_any(errors, {"connection refused", "no such host", "i/o timeout", "connection reset",
                            "network is unreachable", "unexpected EOF", "500 Internal",
                            "502 Bad Gateway", "503 Service", "504 Gateway", "status code: 50",
                            "TLS handshake", "context deadline exceeded"})) {
    return Kind::unavailable;
  }
  if (contains_any(
          errors, {"403 Forbidden", "status code: 403", "401 Unauthorized", "status code: 401",
                   "AccessDenied", "Access Denied", "permission denied", "405 Method Not Allowed",
                   "read-only", "read only file system", "quota", "507 Insufficient",
                   "413 Request Entity", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                   "NoSuchBucket", "no space left", "Failed to copy: Not Found", "409 Conflict"})) {
    return Kind::refused;
  }
  switch (result.exit_code) {
    case 7:  // fatal: retrying does not help
    case 8:  // a transfer limit
      return Kind::refused;
    default:  // 5 temporary, 2 uncategorised, 6 less serious, 3/4 not found during a step
      return Kind::unavailable;
  }
}

std::string last_error_line(std::string_view errors, std::size_t max) {
  std::string line;
  std::size_t end = errors.size();
  while (end > 0) {
    const std::size_t start = errors.rfind('\n', end - 1);
    const std::size_t from = start == std::string_view::npos ? 0 : start + 1;
    std::string_view text = errors.substr(from, end - from);
    end = start == std::string_view::npos ? 0 : start;
    // "2026/12/01 21:33:41 ERROR : a.txt: Failed to copy: ..."
    if (text.size() > 20 && text[4] == '/' && text[7] == '/' && text[13] == ':') {
      text.remove_prefix(20);
    }
    if (text.starts_with("NOTICE") || text.find_first_not_of(" \t\r") == std::string_view::npos) {
      continue;
    }
    for (const std::string_view level : {"ERROR : ", "CRITICAL: ", "Fatal error: "}) {
      if (text.starts_with(level)) {
        text.remove_prefix(level.size());
      }
    }
    line = std::string{text.substr(0, max)};
    break;
  }
  // One field of one log line: no control characters.
  std::ranges::replace_if(
      line, [](char c) { return static_cast<unsigned char>(c) < 0x20; }, ' ');
  return line;
}

}  // namespace gio::sink::detail
