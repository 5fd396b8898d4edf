#pragma once

// Hourly against daily (issue 16), the pure part: given the files rows of one Beijing
// date's 24 hourly slots and of its daily slot, per data type, the rows of the hours
// against the rows of the day, and the day's rows split by the hour of their event time
// against each hour's. No I/O: reconciler.hpp reads the state and acts on the result.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "state/state_store.hpp"

namespace gio::reconcile {

inline constexpr int kHours = 24;

struct HourRows {
  std::uint64_t hourly = 0;  // rows of the hour's own partition
  std::uint64_t daily = 0;   // rows of the day's partition whose event time is in the hour

  friend bool operator==(const HourRows&, const HourRows&) = default;
};

// One data type of one date.
struct TypeResult {
  std::string data_type;
  std::uint64_t hourly_rows = 0;  // the 24 hourly partitions together
  std::uint64_t daily_rows = 0;   // the daily partition
  std::array<HourRows, kHours> hours{};

  // Rows the day has and the hours do not (events that reached the vendor after the
  // hour's export was cut); negative when the hours have more.
  std::int64_t late_rows() const {
    return static_cast<std::int64_t>(daily_rows) - static_cast<std::int64_t>(hourly_rows);
  }
};

// A data type left out, and why (its files were not counted, say).
struct Skipped {
  std::string data_type;
  std::string reason;
};

struct Comparison {
  std::vector<TypeResult> types;  // by data type
  std::vector<Skipped> skipped;
};

// The data types a job fetches: its data_types; empty = all ('all').
struct Fetched {
  std::vector<std::string> types{};
  bool has(const std::string& type) const;
};

// hourly[h]: the files of the hourly slot of Beijing hour h; daily: those of the day.
// A type whose files are not all counted, or whose daily files are not split by hour,
// is skipped with its reason, as is a type only one of the two jobs fetches. Files of
// the same data_type and sha256 in one slot (duplicate parts) count once.
Comparison compare(const std::array<std::vector<state::ArchivedFile>, kHours>& hourly,
                   const std::vector<state::ArchivedFile>& daily,
                   const Fetched& hourly_fetches = {}, const Fetched& daily_fetches = {});

// Whether `hourly` is within `tolerance_percent` of `daily` (|daily - hourly| / daily).
// A day of 0 rows matches only hours of 0 rows.
bool within(std::uint64_t hourly, std::uint64_t daily, double tolerance_percent);
bool matches(const TypeResult& result, double tolerance_percent);

// The hours whose rows differ from the day's rows of that hour beyond the tolerance
// (of the day's rows of that hour), in hour order.
std::vector<int> differing_hours(const TypeResult& result, double tolerance_percent);
// Of those, the hours the day has more rows for (late events).
std::vector<int> short_hours(const TypeResult& result, double tolerance_percent);

// "03:5,07:2": each short hour (Beijing, two digits) and the day's extra rows for it;
// "" when none.
std::string format_short_hours(const TypeResult& result, double tolerance_percent);

// The `hours` column: JSON, per Beijing hour [hourly, daily], e.g. [[3,3],[3,5],...].
std::string hours_json(const TypeResult& result);
// Reads it back; nullopt when it is not 24 pairs of non-negative integers.
std::optional<std::array<HourRows, kHours>> parse_hours_json(std::string_view json);

// The stored row as a TypeResult (nullopt when its hours do not parse).
std::optional<TypeResult> from_stored(const state::Reconciliation& row);

}  // namespace gio::reconcile
