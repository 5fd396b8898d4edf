#pragma once

// Slots: one period (hour or day) of one job, named by its start in Beijing time.
//
// Beijing time has been UTC+8 without daylight saving since 1991, so a fixed
// offset is exact for the whole retention window. Instants are UTC seconds
// (std::chrono::sys_seconds); Beijing time appears only in names.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gio {

using Instant = std::chrono::sys_seconds;

inline constexpr std::chrono::hours kBeijingOffset{8};
// The vendor keeps raw data for the last 15 days.
inline constexpr std::chrono::days kRetention{15};

enum class Granularity { hour, day };

std::string_view to_string(Granularity granularity);
std::optional<Granularity> parse_granularity(std::string_view text);

class Slot {
 public:
  // The slot of `granularity` that contains `instant`.
  static Slot containing(Instant instant, Granularity granularity);
  // Parses "2026-11-22T03" (hour) or "2026-11-22" (day); nullopt when the text
  // is not a valid name of that granularity.
  static std::optional<Slot> parse(std::string_view name, Granularity granularity);

  Granularity granularity() const { return granularity_; }
  Instant start() const { return start_; }
  Instant end() const;
  Slot next() const;
  Slot previous() const;
  // The instant after which the vendor no longer has this slot's data.
  Instant lost_at() const { return start_ + kRetention; }

  std::string name() const;         // 2026-11-22T03 or 2026-11-22
  std::string export_date() const;  // 202611220300: the API's yyyyMMddHHmm, Beijing time
  std::string date() const;         // 2026-11-22 (Beijing): the dt= partition value
  std::string hour() const;         // 03 (Beijing): the hour= partition value; "" for days

  friend bool operator==(const Slot&, const Slot&) = default;
  friend auto operator<=>(const Slot& a, const Slot& b) { return a.start_ <=> b.start_; }

 private:
  Slot(Granularity granularity, Instant start) : granularity_(granularity), start_(start) {}

  Granularity granularity_;
  Instant start_;
};

// Unix seconds, the form instants take in the state database.
inline std::int64_t to_unix(Instant instant) {
  return instant.time_since_epoch().count();
}
inline Instant from_unix(std::int64_t seconds) {
  return Instant{std::chrono::seconds{seconds}};
}

// "2026-11-22 03:04:05 UTC"-style text for logs and status output (UTC, ISO 8601).
std::string format_utc(Instant instant);
// Parses "2026-11-22T03:04:05Z" (UTC); nullopt when malformed.
std::optional<Instant> parse_utc(std::string_view text);

// Where "now" comes from; tests and `GIO_EXPORTER_NOW` substitute their own.
// now() is the wall clock, which can jump (an operator, a bad NTP server, a VM restored
// from a snapshot); steady() never jumps, so comparing how far each moved between two
// readings tells a jump from the passing of time (scheduler/clock_watch.hpp).
class Clock {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual Instant now() const = 0;
  virtual SteadyTime steady() const { return std::chrono::steady_clock::now(); }
};

class SystemClock final : public Clock {
 public:
  Instant now() const override;
};

// A clock that starts at a chosen instant and then runs at the real rate
// (used by end-to-end tests through GIO_EXPORTER_NOW).
class OffsetClock final : public Clock {
 public:
  explicit OffsetClock(Instant start);
  Instant now() const override;

 private:
  std::chrono::seconds offset_;
};

// A clock that only moves when told to (unit tests). advance() is time passing: both
// clocks move (a negative one cannot move the steady clock, so it is a jump back);
// set() and jump() move the wall clock alone, as a jump does.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Instant now) : now_(now) {}
  Instant now() const override { return now_; }
  SteadyTime steady() const override { return steady_; }
  void set(Instant now) { now_ = now; }
  void advance(std::chrono::seconds by) {
    now_ += by;
    steady_ += std::max(by, std::chrono::seconds{0});
  }
  void jump(std::chrono::seconds by) { now_ += by; }

 private:
  Instant now_;
  SteadyTime steady_ = std::chrono::steady_clock::now();
};

}  // namespace gio
