#include "slot/slot.hpp"

#include <charconv>
#include <cstdio>

namespace gio {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::sys_days;
using std::chrono::year_month_day;

std::chrono::seconds length(Granularity granularity) {
  return granularity == Granularity::hour ? std::chrono::seconds{hours{1}}
                                          : std::chrono::seconds{days{1}};
}

// Reads exactly `width` decimal digits at `pos`.
std::optional<int> digits(std::string_view text, std::size_t pos, std::size_t width) {
  if (pos + width > text.size()) {
    return std::nullopt;
  }
  int value = 0;
  for (std::size_t i = pos; i < pos + width; ++i) {
    if (text[i] < '0' || text[i] > '9') {
      return std::nullopt;
    }
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

struct BeijingFields {
  year_month_day date;
  int hour;
  int minute;
  int second;
};

BeijingFields beijing_fields(Instant instant) {
  const auto local = instant + kBeijingOffset;
  const auto day = std::chrono::floor<days>(local);
  const std::chrono::hh_mm_ss time{local - day};
  return {year_month_day{day}, static_cast<int>(time.hours().count()),
          static_cast<int>(time.minutes().count()), static_cast<int>(time.seconds().count())};
}

std::string format_date(const year_month_day& date) {
  char text[32];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()));
  return text;
}

}  // namespace

std::string_view to_string(Granularity granularity) {
  return granularity == Granularity::hour ? "hour" : "day";
}

std::optional<Granularity> parse_granularity(std::string_view text) {
  if (text == "hour") {
    return Granularity::hour;
  }
  if (text == "day") {
    return Granularity::day;
  }
  return std::nullopt;
}

Slot Slot::containing(Instant instant, Granularity granularity) {
  // Floor in Beijing time, then convert back to UTC.
  const auto local = instant + kBeijingOffset;
  const auto start =
      granularity == Granularity::hour
          ? std::chrono::floor<hours>(local)
          : std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::floor<days>(local));
  return Slot{granularity, start - kBeijingOffset};
}

std::optional<Slot> Slot::parse(std::string_view name, Granularity granularity) {
  const std::size_t expected = granularity == Granularity::hour ? 13 : 10;
  if (name.size() != expected || name[4] != '-' || name[7] != '-') {
    return std::nullopt;
  }
  const auto year = digits(name, 0, 4);
  const auto month = digits(name, 5, 2);
  const auto day = digits(name, 8, 2);
  if (!year || !month || !day) {
    return std::nullopt;
  }
  const year_month_day date{std::chrono::year{*year},
                            std::chrono::month{static_cast<unsigned>(*month)},
                            std::chrono::day{static_cast<unsigned>(*day)}};
  if (!date.ok()) {
    return std::nullopt;
  }
  int hour = 0;
  if (granularity == Granularity::hour) {
    const auto parsed = digits(name, 11, 2);
    if (name[10] != 'T' || !parsed || *parsed > 23) {
      return std::nullopt;
    }
    hour = *parsed;
  }
  const Instant local =
      std::chrono::time_point_cast<std::chrono::seconds>(sys_days{date}) + hours{hour};
  return Slot{granularity, local - kBeijingOffset};
}

Instant Slot::end() const {
  return start_ + length(granularity_);
}
Slot Slot::next() const {
  return Slot{granularity_, end()};
}
Slot Slot::previous() const {
  return Slot{granularity_, start_ - length(granularity_)};
}

std::string Slot::name() const {
  return granularity_ == Granularity::hour ? date() + "T" + hour() : date();
}

std::string Slot::export_date() const {
  const auto fields = beijing_fields(start_);
  char text[32];
  std::snprintf(text, sizeof text, "%04d%02u%02u%02d00", static_cast<int>(fields.date.year()),
                static_cast<unsigned>(fields.date.month()),
                static_cast<unsigned>(fields.date.day()), fields.hour);
  return text;
}

std::string Slot::date() const {
  return format_date(beijing_fields(start_).date);
}

std::string Slot::hour() const {
  if (granularity_ == Granularity::day) {
    return "";
  }
  char text[16];
  std::snprintf(text, sizeof text, "%02d", beijing_fields(start_).hour);
  return text;
}

std::string format_utc(Instant instant) {
  const auto day = std::chrono::floor<days>(instant);
  const std::chrono::hh_mm_ss time{instant - day};
  char text[32];
  std::snprintf(text, sizeof text, "%sT%02d:%02d:%02dZ", format_date(year_month_day{day}).c_str(),
                static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
                static_cast<int>(time.seconds().count()));
  return text;
}

std::optional<Instant> parse_utc(std::string_view text) {
  // 2026-11-22T03:04:05Z
  if (text.size() != 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':' || text[19] != 'Z') {
    return std::nullopt;
  }
  const auto year = digits(text, 0, 4);
  const auto month = digits(text, 5, 2);
  const auto day = digits(text, 8, 2);
  const auto hour = digits(text, 11, 2);
  const auto minute = digits(text, 14, 2);
  const auto second = digits(text, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second || *hour > 23 || *minute > 59 ||
      *second > 59) {
    return std::nullopt;
  }
  const year_month_day date{std::chrono::year{*year},
                            std::chrono::month{static_cast<unsigned>(*month)},
                            std::chrono::day{static_cast<unsigned>(*day)}};
  if (!date.ok()) {
    return std::nullopt;
  }
  return std::chrono::time_point_cast<std::chrono::seconds>(sys_days{date}) + hours{*hour} +
         std::chrono::minutes{*minute} + std::chrono::seconds{*second};
}

Instant SystemClock::now() const {
  return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
}

OffsetClock::OffsetClock(Instant start) : offset_(start - SystemClock{}.now()) {}

Instant OffsetClock::now() const {
  return SystemClock{}.now() + offset_;
}

}  // namespace gio
