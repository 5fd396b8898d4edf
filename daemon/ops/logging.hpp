#pragma once

// The process-wide logger: one line per record on stderr, in the configured format,
// with journald's priority prefixes when stderr is the journal.
//
// Text lines are logfmt: `ts=2026-11-22T03:41:07.123Z level=warning msg="..."` and then
// the event's fields (`event=slot_retry job=shop slot=2026-11-22T03 attempt=3 ...`).
// Under journald the `<N>` priority replaces nothing but the timestamp (the journal
// stamps lines). JSON lines carry the same keys, with numbers kept as numbers.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "config/config.hpp"

namespace gio::ops {

enum class Level { debug, info, warning, error, critical };

// One key=value of an event line; the value keeps its type into the JSON lines.
struct Field {
  using Value = std::variant<std::string, std::int64_t, std::uint64_t, double, bool>;

  Field(std::string_view name, std::string_view text) : key(name), value(std::string{text}) {}
  Field(std::string_view name, const std::string& text) : key(name), value(text) {}
  Field(std::string_view name, const char* text) : key(name), value(std::string{text}) {}
  Field(std::string_view name, bool flag) : key(name), value(flag) {}
  Field(std::string_view name, double number) : key(name), value(number) {}
  template <class Integer>
  requires(std::is_integral_v<Integer> && !std::is_same_v<Integer, bool> &&
           !std::is_same_v<Integer, char>) Field(std::string_view name, Integer number)
      : key(name) {
    if constexpr (std::is_signed_v<Integer>) {
      value = static_cast<std::int64_t>(number);
    } else {
      value = static_cast<std::uint64_t>(number);
    }
  }

  std::string key;
  Value value;
};
using Fields = std::vector<Field>;

// A logfmt value: bare when it can be, else quoted with `"`, `\` and control
// characters escaped, so that API-derived text can never forge a field or a line. The
// one escaping function of every text line.
std::string logfmt_value(std::string_view value);

// One whole line, without its newline: what the logger writes for a record.
struct LineShape {
  bool journal = false;  // `<N>` priority prefix, no timestamp
  bool json = false;
};
std::string format_line(LineShape shape, Level level, std::chrono::system_clock::time_point time,
                        std::string_view msg, const Fields& fields);

// Logs an event line: `msg=` is the human summary, `event=` the name people grep for,
// then the fields in the order given.
void log_event(Level level, std::string_view event, std::string_view msg, const Fields& fields);

// Sets up (or, on a reload, changes) the process-wide logger: the config's level and
// format, and journald's priority prefixes when stderr is the journal.
void configure_logging(const config::LogSettings& log);

}  // namespace gio::ops
