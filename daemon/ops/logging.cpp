// The process-wide logger: one line per record on stderr, in the configured format,
// with journald's priority prefixes when stderr is the journal.

#include "ops/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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
char journal_priority(Level level) {
  switch (level) {
    case Level::debug:
      return '7';
    case Level::info:
      return '6';
    case Level::warning:
      return '4';
    case Level::error:
      return '3';
    case Level::critical:
      return '2';
  }
  return '6';
}

std::string_view level_name(Level level) {
  switch (level) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warning:
      return "warning";
    case Level::error:
      return "error";
    case Level::critical:
      return "critical";
  }
  return "info";
}

Level from_spdlog(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return Level::debug;
    case spdlog::level::warn:
      return Level::warning;
    case spdlog::level::err:
      return Level::error;
    case spdlog::level::critical:
      return Level::critical;
    default:
      return Level::info;
  }
}

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::debug:
      return spdlog::level::debug;
    case Level::info:
      return spdlog::level::info;
    case Level::warning:
      return spdlog::level::warn;
    case Level::error:
      return spdlog::level::err;
    case Level::critical:
      return spdlog::level::critical;
  }
  return spdlog::level::info;
}

std::string utc_timestamp(std::chrono::system_clock::time_point time) {
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

bool reserved(std::string_view key) {
  return key == "ts" || key == "level" || key == "msg";
}

std::string text_of(const Field::Value& value) {
  return std::visit(config::Overloaded{
                        [](const std::string& text) { return logfmt_value(text); },
                        [](bool flag) { return std::string{flag ? "true" : "false"}; },
                        [](double number) { return fmt::format("{}", number); },
                        [](auto number) { return std::to_string(number); },
                    },
                    value);
}

json::value json_of(const Field::Value& value) {
  return std::visit([](const auto& held) { return json::value(held); }, value);
}

// The record being logged by log_event on this thread: its fields, which the
// formatter (run synchronously inside the spdlog call) writes with their types.
struct PendingEvent {
  std::string_view msg;
  const Fields* fields = nullptr;
};
thread_local PendingEvent t_pending;

class LineFormatter final : public spdlog::formatter {
 public:
  explicit LineFormatter(LineShape shape) : shape_(shape) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    static const Fields kNone;
    const bool event = t_pending.fields != nullptr;
    const std::string line =
        format_line(
            shape_, from_spdlog(msg.level), msg.time,
            event ? t_pending.msg : std::string_view{msg.payload.data(), msg.payload.size()},
            event ? *t_pending.fields : kNone) +
        '\n';
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(shape_);
  }

 private:
  LineShape shape_;
};

}  // namespace

std::string logfmt_value(std::string_view value) {
  const bool bare = !value.empty() && std::ranges::none_of(value, [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte <= ' ' || byte == 0x7f || c == '"' || c == '=' || c == '\\';
  });
  if (bare) {
    return std::string{value};
  }
  std::string quoted = "\"";
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        quoted += "\\\"";
        break;
      case '\\':
        quoted += "\\\\";
        break;
      case '\n':
        quoted += "\\n";
        break;
      case '\r':
        quoted += "\\r";
        break;
      case '\t':
        quoted += "\\t";
        break;
      default:
        if (byte < ' ' || byte == 0x7f) {
          quoted += fmt::format("\\u{:04x}", byte);
        } else {
          quoted += c;
        }
    }
  }
  quoted += '"';
  return quoted;
}

std::string format_line(LineShape shape, Level level, std::chrono::system_clock::time_point time,
                        std::string_view msg, const Fields& fields) {
  std::string line;
  if (shape.journal) {
    line += '<';
    line += journal_priority(level);
    line += '>';
  }
  if (shape.json) {
    json::object record{{"ts", utc_timestamp(time)}, {"level", level_name(level)}, {"msg", msg}};
    for (const Field& field : fields) {
      if (!reserved(field.key)) {
        record[field.key] = json_of(field.value);
      }
    }
    line += json::serialize(record);
    return line;
  }
  if (!shape.journal) {  // the journal stamps every line itself
    line += "ts=" + utc_timestamp(time) + ' ';
  }
  line += "level=";
  line += level_name(level);
  line += " msg=" + logfmt_value(msg);
  for (const Field& field : fields) {
    if (!reserved(field.key)) {
      line += ' ' + field.key + '=' + text_of(field.value);
    }
  }
  return line;
}

void log_event(Level level, std::string_view event, std::string_view msg, const Fields& fields) {
  Fields all;
  all.reserve(fields.size() + 1);
  all.emplace_back("event", event);
  all.insert(all.end(), fields.begin(), fields.end());
  t_pending = {.msg = msg, .fields = &all};
  try {
    // The payload is what a sink without our formatter would show.
    spdlog::log(to_spdlog(level), "{}", msg);
  } catch (...) {
    t_pending = {};
    throw;
  }
  t_pending = {};
}

void configure_logging(const config::LogSettings& log) {
  // Called again on a reload: the logger stays, its format and level change.
  auto logger = spdlog::get("gio-exporter");
  if (!logger) {
    logger = spdlog::stderr_logger_mt("gio-exporter");
  }
  logger->set_formatter(std::make_unique<LineFormatter>(
      LineShape{.journal = stderr_is_journal(), .json = log.format == "json"}));
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log.level));
  spdlog::flush_on(spdlog::level::info);
}

}  // namespace gio::ops
