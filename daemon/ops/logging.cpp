// The process-wide logger: one line per record on stderr, in the configured format,
// with journald's priority prefixes when stderr is the journal.

#include "ops/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <ctime>
#include <string>

namespace gio::ops {
namespace {

namespace json = boost::json;

// systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the stream it connected stdout and
// stderr to; only when stderr is still that stream does the journal read our lines.
bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) {
    return false;
  }
  unsigned long long device = 0;
  unsigned long long inode = 0;
  if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) {
    return false;
  }
  struct stat status {};
  return fstat(STDERR_FILENO, &status) == 0 && status.st_dev == device && status.st_ino == inode;
}

// syslog(3) priorities, which journald reads from a "<N>" line prefix.
char journal_priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return '7';
    case spdlog::level::info:
      return '6';
    case spdlog::level::warn:
      return '4';
    case spdlog::level::err:
      return '3';
    case spdlog::level::critical:
      return '2';
    default:
      return '6';
  }
}

std::string utc_timestamp(spdlog::log_clock::time_point time) {
  const auto since_epoch = time.time_since_epoch();
  const std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count() % 1000;
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char buffer[40];
  const std::size_t length = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &parts);
  std::snprintf(buffer + length, sizeof buffer - length, ".%03dZ", static_cast<int>(millis));
  return buffer;
}

// The key=value fields of an event line ("event=slot_done job=a reason=\"x y\"").
void add_event_fields(std::string_view message, json::object& record) {
  while (!message.empty()) {
    const auto equals = message.find('=');
    const auto space = message.find(' ');
    if (equals == std::string_view::npos || (space != std::string_view::npos && space < equals)) {
      return;  // free text after the fields
    }
    const std::string_view key = message.substr(0, equals);
    message.remove_prefix(equals + 1);
    std::string_view value;
    if (!message.empty() && message.front() == '"') {
      const auto close = message.find('"', 1);
      if (close == std::string_view::npos) {
        return;
      }
      value = message.substr(1, close - 1);
      message.remove_prefix(close + 1);
    } else {
      value = message.substr(0, message.find(' '));
      message.remove_prefix(value.size());
    }
    if (key != "time" && key != "level" && key != "message") {
      record[key] = value;
    }
    while (!message.empty() && message.front() == ' ') {
      message.remove_prefix(1);
    }
  }
}

class LineFormatter final : public spdlog::formatter {
 public:
  LineFormatter(bool journal, bool as_json) : journal_(journal), json_(as_json) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string_view message{msg.payload.data(), msg.payload.size()};
    std::string line;
    if (journal_) {
      line += '<';
      line += journal_priority(msg.level);
      line += '>';
    }
    if (json_) {
      json::object record{{"time", utc_timestamp(msg.time)},
                          {"level", spdlog::level::to_string_view(msg.level).data()},
                          {"message", message}};
      if (message.starts_with("event=")) {
        add_event_fields(message, record);
      }
      line += json::serialize(record);
    } else {
      if (!journal_) {  // the journal stamps every line itself
        line += utc_timestamp(msg.time);
        line += ' ';
        const auto level = spdlog::level::to_string_view(msg.level);
        line.append(level.data(), level.size());
        line += ' ';
      }
      line += message;
    }
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(journal_, json_);
  }

 private:
  bool journal_;
  bool json_;
};

}  // namespace

void configure_logging(const config::LogSettings& log) {
  // Called again on a reload: the logger stays, its format and level change.
  auto logger = spdlog::get("gio-exporter");
  if (!logger) {
    logger = spdlog::stderr_logger_mt("gio-exporter");
  }
  logger->set_formatter(std::make_unique<LineFormatter>(stderr_is_journal(), log.format == "json"));
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log.level));
  spdlog::flush_on(spdlog::level::info);
}

}  // namespace gio::ops
