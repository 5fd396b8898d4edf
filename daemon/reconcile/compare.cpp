#include "reconcile/compare.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <utility>

namespace gio::reconcile {
namespace {

// Sums per type; `broken` keeps the first reason a type cannot be compared.
struct Tally {
  TypeResult result;
  std::optional<std::string> broken;
};

// A slot's files rows hold duplicate parts too (the same data_type and sha256 under
// another name: the manifest leaves them out as duplicate_part), so each content counts
// once per slot. Rows of part names from an earlier answer that the latest answer no
// longer lists are still counted: a known gap (the state does not tell them apart).
using Seen = std::set<std::pair<std::string, std::string>>;

// The tally `file` adds to, or nullptr when it adds nothing: a content already counted,
// or a file without a row count (its type's tally is then broken: `side` says which).
Tally* counted(std::map<std::string, Tally>& tallies, Seen& seen, const state::ArchivedFile& file,
               std::string_view side) {
  if (!file.sha256.empty() && !seen.emplace(file.data_type, file.sha256).second) {
    return nullptr;
  }
  Tally& tally = tallies[file.data_type];
  if (!file.rows) {
    tally.broken = tally.broken.value_or(std::string{side} + " file " + file.name +
                                         " has no row count (size-only job, or archived "
                                         "before rows were counted)");
    return nullptr;
  }
  return &tally;
}

void add_hourly(std::map<std::string, Tally>& tallies, int hour,
                const std::vector<state::ArchivedFile>& files) {
  Seen seen;
  for (const state::ArchivedFile& file : files) {
    if (Tally* tally = counted(tallies, seen, file, "hourly")) {
      tally->result.hourly_rows += *file.rows;
      tally->result.hours[hour].hourly += *file.rows;
    }
  }
}

void add_daily(std::map<std::string, Tally>& tallies,
               const std::vector<state::ArchivedFile>& files) {
  Seen seen;
  for (const state::ArchivedFile& file : files) {
    Tally* tally = counted(tallies, seen, file, "daily");
    if (tally == nullptr) {
      continue;
    }
    tally->result.daily_rows += *file.rows;
    if (*file.rows == 0) {
      continue;  // nothing to split
    }
    if (file.rows_by_hour.size() != kHours) {
      tally->broken = tally->broken.value_or("daily file " + file.name +
                                             " has no rows per hour (no `time` column?)");
      continue;
    }
    for (int hour = 0; hour < kHours; ++hour) {
      tally->result.hours[hour].daily += file.rows_by_hour[hour];
    }
  }
}

std::optional<std::uint64_t> as_count(const boost::json::value& value) {
  if (const auto* n = value.if_uint64()) {
    return *n;
  }
  if (const auto* n = value.if_int64(); n != nullptr && *n >= 0) {
    return static_cast<std::uint64_t>(*n);
  }
  return std::nullopt;
}

// A JSON array of 24 items, or nullopt.
std::optional<boost::json::array> hours_array(std::string_view json) {
  boost::system::error_code error;
  boost::json::value parsed = boost::json::parse(json, error);
  if (error || !parsed.is_array() || parsed.as_array().size() != kHours) {
    return std::nullopt;
  }
  return std::move(parsed.as_array());
}

}  // namespace

bool Fetched::has(const std::string& type) const {
  return types.empty() || std::find(types.begin(), types.end(), type) != types.end();
}

Comparison compare(const std::array<std::vector<state::ArchivedFile>, kHours>& hourly,
                   const std::vector<state::ArchivedFile>& daily, const Fetched& hourly_fetches,
                   const Fetched& daily_fetches) {
  std::map<std::string, Tally> tallies;
  for (int hour = 0; hour < kHours; ++hour) {
    add_hourly(tallies, hour, hourly[hour]);
  }
  add_daily(tallies, daily);
  Comparison comparison;
  for (auto& [type, tally] : tallies) {
    // A type one job does not fetch has nothing to be compared with: not a mismatch.
    if (!hourly_fetches.has(type)) {
      comparison.skipped.push_back(
          {type, "the hourly job does not fetch this type (data_types); only the daily does"});
    } else if (!daily_fetches.has(type)) {
      comparison.skipped.push_back(
          {type, "the daily job does not fetch this type (data_types); only the hourly does"});
    } else if (tally.broken) {
      comparison.skipped.push_back({type, *tally.broken});
    } else {
      tally.result.data_type = type;
      comparison.types.push_back(std::move(tally.result));
    }
  }
  return comparison;
}

bool within(std::uint64_t hourly, std::uint64_t daily, double tolerance_percent) {
  if (daily == 0) {
    return hourly == 0;
  }
  const double difference =
      std::fabs(static_cast<double>(daily) - static_cast<double>(hourly)) * 100.0;
  return difference <= tolerance_percent * static_cast<double>(daily);
}

bool matches(const TypeResult& result, double tolerance_percent) {
  return within(result.hourly_rows, result.daily_rows, tolerance_percent);
}

std::vector<int> differing_hours(const TypeResult& result, double tolerance_percent) {
  std::vector<int> hours;
  for (int hour = 0; hour < kHours; ++hour) {
    const HourRows& rows = result.hours[hour];
    if (!within(rows.hourly, rows.daily, tolerance_percent)) {
      hours.push_back(hour);
    }
  }
  return hours;
}

std::vector<int> short_hours(const TypeResult& result, double tolerance_percent) {
  std::vector<int> hours;
  for (const int hour : differing_hours(result, tolerance_percent)) {
    if (result.hours[hour].daily > result.hours[hour].hourly) {
      hours.push_back(hour);
    }
  }
  return hours;
}

std::string format_short_hours(const TypeResult& result, double tolerance_percent) {
  std::string out;
  for (const int hour : short_hours(result, tolerance_percent)) {
    char name[4];
    std::snprintf(name, sizeof name, "%02d", hour);
    out += (out.empty() ? "" : ",") + std::string{name} + ":" +
           std::to_string(result.hours[hour].daily - result.hours[hour].hourly);
  }
  return out;
}

std::string hours_json(const TypeResult& result) {
  boost::json::array hours;
  for (const HourRows& rows : result.hours) {
    hours.push_back(boost::json::array{rows.hourly, rows.daily});
  }
  return boost::json::serialize(hours);
}

std::optional<std::array<HourRows, kHours>> parse_hours_json(std::string_view json) {
  const auto array = hours_array(json);
  if (!array) {
    return std::nullopt;
  }
  std::array<HourRows, kHours> hours{};
  for (int hour = 0; hour < kHours; ++hour) {
    const auto* pair = (*array)[hour].if_array();
    if (pair == nullptr || pair->size() != 2) {
      return std::nullopt;
    }
    const auto hourly = as_count((*pair)[0]);
    const auto daily = as_count((*pair)[1]);
    if (!hourly || !daily) {
      return std::nullopt;
    }
    hours[hour] = {*hourly, *daily};
  }
  return hours;
}

std::optional<TypeResult> from_stored(const state::Reconciliation& row) {
  const auto hours = parse_hours_json(row.hours);
  if (!hours) {
    return std::nullopt;
  }
  return TypeResult{.data_type = row.data_type,
                    .hourly_rows = row.hourly_rows,
                    .daily_rows = row.daily_rows,
                    .hours = *hours};
}

}  // namespace gio::reconcile
