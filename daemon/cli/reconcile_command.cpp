// `reconcile`: the hourly against daily comparisons the daemon stored (reconcile/), per
// date and data type. Reads the state store read-only, as status and gaps do. The
// verdict is taken again under the tolerance configured now, so a changed
// reconcile_tolerance applies to the dates compared before it.

#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "cli/archive_binding.hpp"
#include "cli/commands.hpp"
#include "reconcile/reconciler.hpp"
#include "state/state_store.hpp"

namespace gio::cli {
namespace {

namespace json = boost::json;

// One stored row as the command shows it.
struct Row {
  state::Reconciliation stored;
  reconcile::TypeResult result;
  bool match = true;
  std::vector<int> hours;  // differing beyond the tolerance
};

std::string signed_text(std::int64_t value) {
  return (value > 0 ? "+" : "") + std::to_string(value);
}

double difference_percent(const reconcile::TypeResult& result) {
  if (result.daily_rows == 0) {
    return result.hourly_rows == 0 ? 0.0 : -100.0;
  }
  return std::round(static_cast<double>(result.late_rows()) * 10000.0 /
                    static_cast<double>(result.daily_rows)) /
         100.0;
}

std::string hour_name(int hour) {
  char name[4];
  std::snprintf(name, sizeof name, "%02d", hour);
  return name;
}

std::vector<Row> rows_of(state::StateStore& store, const reconcile::Pair& pair,
                         const std::string& from, const std::string& to) {
  std::vector<Row> rows;
  for (state::Reconciliation& stored : store.reconciliations(pair.hourly->name, from, to)) {
    auto result = reconcile::from_stored(stored);
    if (!result) {
      throw std::runtime_error("the state database holds unreadable hours for " +
                               pair.hourly->name + " " + stored.date + " " + stored.data_type);
    }
    const double tolerance = pair.tolerance_percent();
    Row row{.stored = std::move(stored),
            .result = *result,
            .match = reconcile::matches(*result, tolerance),
            .hours = reconcile::differing_hours(*result, tolerance)};
    rows.push_back(std::move(row));
  }
  return rows;
}

json::object row_json(const Row& row) {
  json::array hours;
  for (const int hour : row.hours) {
    const reconcile::HourRows& rows = row.result.hours[hour];
    hours.push_back(json::object{{"hour", hour},
                                 {"hourly_rows", rows.hourly},
                                 {"daily_rows", rows.daily},
                                 {"difference", static_cast<std::int64_t>(rows.daily) -
                                                    static_cast<std::int64_t>(rows.hourly)}});
  }
  return {{"date", row.stored.date},
          {"type", row.stored.data_type},
          {"hourly_rows", row.result.hourly_rows},
          {"daily_rows", row.result.daily_rows},
          {"difference", row.result.late_rows()},
          {"difference_percent", difference_percent(row.result)},
          {"verdict", row.match ? "match" : "mismatch"},
          {"hours", std::move(hours)},
          {"reconciled_at", format_utc(row.stored.reconciled_at)}};
}

void print_text(const reconcile::Pair& pair, const std::vector<Row>& rows) {
  char tolerance[32];
  std::snprintf(tolerance, sizeof tolerance, "%g%%", pair.tolerance_percent());
  std::cout << pair.hourly->name << " against " << pair.daily->name << " (tolerance " << tolerance
            << ")\n";
  if (rows.empty()) {
    std::cout << "  no date compared yet\n";
    return;
  }
  std::printf("  %-10s  %-20s  %12s  %12s  %10s  %-8s  %s\n", "DATE", "TYPE", "HOURLY", "DAILY",
              "DIFF", "VERDICT", "HOURS (daily - hourly)");
  for (const Row& row : rows) {
    std::string hours;
    for (const int hour : row.hours) {
      const reconcile::HourRows& counts = row.result.hours[hour];
      hours += (hours.empty() ? "" : " ") + hour_name(hour) + ":" +
               signed_text(static_cast<std::int64_t>(counts.daily) -
                           static_cast<std::int64_t>(counts.hourly));
    }
    std::printf("  %-10s  %-20s  %12llu  %12llu  %10s  %-8s  %s\n", row.stored.date.c_str(),
                row.stored.data_type.c_str(),
                static_cast<unsigned long long>(row.result.hourly_rows),
                static_cast<unsigned long long>(row.result.daily_rows),
                signed_text(row.result.late_rows()).c_str(), row.match ? "match" : "mismatch",
                hours.c_str());
  }
  std::fflush(stdout);
}

// --from/--to as dates (YYYY-MM-DD, Beijing); "" when not given.
std::optional<std::string> date_option(const std::optional<std::string>& text,
                                       std::string_view option) {
  if (!text) {
    return std::string{};
  }
  if (!Slot::parse(*text, Granularity::day)) {
    std::cerr << "gio-exporter: " << option << " must be a date such as 2026-11-22, not \"" << *text
              << "\"\n";
    return std::nullopt;
  }
  return *text;
}

}  // namespace

int reconcile_report(const config::Config& config, const config::Job* only_job,
                     const std::optional<std::string>& from_text,
                     const std::optional<std::string>& to_text, bool as_json) {
  const auto from = date_option(from_text, "--from");
  const auto to = date_option(to_text, "--to");
  if (!from || !to) {
    return 1;
  }
  std::vector<reconcile::Pair> pairs;
  if (only_job != nullptr) {
    pairs = reconcile::pairs_of(config, *only_job);
    if (pairs.empty()) {
      std::cerr << "gio-exporter: job \"" << only_job->name
                << "\" is not compared with another (reconcile_with pairs an hourly raw job "
                   "with a daily raw job)\n";
      return 1;
    }
  } else {
    pairs = reconcile::pairs(config);
  }
  state::StateStore store = open_for_reading(config);
  json::array out;
  int mismatches = 0;
  for (const reconcile::Pair& pair : pairs) {
    const std::vector<Row> rows = rows_of(store, pair, *from, to->empty() ? "9999-12-31" : *to);
    for (const Row& row : rows) {
      mismatches += row.match ? 0 : 1;
    }
    if (!as_json) {
      print_text(pair, rows);
      continue;
    }
    json::array dates;
    for (const Row& row : rows) {
      dates.push_back(row_json(row));
    }
    out.push_back(json::object{
        {"job", pair.hourly->name},
        {"daily_job", pair.daily->name},
        {"automatic", std::get<config::RawJob>(pair.hourly->settings).reconcile.automatic},
        {"tolerance_percent", pair.tolerance_percent()},
        {"dates", std::move(dates)}});
  }
  if (as_json) {
    std::cout << json::serialize(
                     json::object{{"pairs", std::move(out)}, {"mismatches", mismatches}})
              << "\n";
  } else if (pairs.empty()) {
    std::cout << "no hourly raw job is compared with a daily one (see reconcile_with)\n";
  }
  return mismatches > 0 ? 2 : 0;
}

}  // namespace gio::cli
