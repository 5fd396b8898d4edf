// Hourly against daily (issue 16): the keys that pair an hourly raw job with its
// project's daily raw job, and the automatic pairing when a project has one of each.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include "config/parse_support.hpp"

namespace gio::config::parsing {
namespace {

enum class OnMismatch { report, refetch };
constexpr Choice<OnMismatch> kOnMismatch[] = {{"report", OnMismatch::report},
                                              {"refetch", OnMismatch::refetch}};

// "0.5", "0.5%" or "2 %": percent of the daily rows, 0 to kMaxReconcileTolerance.
std::optional<double> read_tolerance(const Entry& entry, Reporter& reporter) {
  const auto text = read_string(entry, reporter);
  if (!text) {
    return std::nullopt;
  }
  std::string number = trim(*text);
  if (!number.empty() && number.back() == '%') {
    number = trim(std::string_view{number}.substr(0, number.size() - 1));
  }
  double value = 0;
  const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
  // Written so that NaN fails too.
  if (error != std::errc{} || end != number.data() + number.size() || number.empty() ||
      !(value >= 0 && value <= kMaxReconcileTolerance)) {
    reporter.add(entry.value_mark(),
                 "'reconcile_tolerance' must be a percentage from 0 to 100 such as 0.5 or 0.5%, "
                 "not " +
                     in_quotes(*text));
    return std::nullopt;
  }
  return value;
}

bool is_raw(const Job& job) {
  return std::holds_alternative<RawJob>(job.settings);
}

// reconcile_with names a job that must be a daily raw job of the same project.
void check_named(const std::vector<Job>& jobs, const Job& hourly, const YAML::Mark& mark,
                 Reporter& reporter) {
  const std::string& name = std::get<RawJob>(hourly.settings).reconcile.daily_job;
  const Job* daily = nullptr;
  std::vector<std::string_view> names;
  for (const Job& job : jobs) {
    names.push_back(job.name);
    if (job.name == name) {
      daily = &job;
    }
  }
  if (daily == nullptr) {
    reporter.add(mark, "'reconcile_with' names no job: " + in_quotes(name) +
                           unknown_note(name, names, "it must be a daily raw job"));
  } else if (daily == &hourly) {
    reporter.add(mark, "'reconcile_with' must name another job (a daily raw job), not this one");
  } else if (!is_raw(*daily)) {
    reporter.add(mark, "'reconcile_with' names " + in_quotes(name) +
                           ", a chart job; it must be a daily raw job");
  } else if (daily->granularity != Granularity::day) {
    reporter.add(mark, "'reconcile_with' names " + in_quotes(name) +
                           ", an hourly job; it must be a daily raw job (granularity: day)");
  } else if (daily->project != hourly.project) {
    reporter.add(mark, "'reconcile_with' names " + in_quotes(name) + " of project " +
                           in_quotes(daily->project) + "; it must be of this job's project " +
                           in_quotes(hourly.project));
  }
}

// The project's one hourly and one daily raw job, when it has exactly one of each.
std::map<std::string, std::string> automatic_pairs(const std::vector<Job>& jobs) {
  struct Count {
    int hourly = 0, daily = 0;
    std::string daily_job;
  };
  std::map<std::string, Count> by_project;
  for (const Job& job : jobs) {
    if (!is_raw(job)) {
      continue;
    }
    Count& count = by_project[job.project];
    if (job.granularity == Granularity::hour) {
      ++count.hourly;
    } else {
      ++count.daily;
      count.daily_job = job.name;
    }
  }
  std::map<std::string, std::string> pairs;  // project -> daily job
  for (const auto& [project, count] : by_project) {
    if (count.hourly == 1 && count.daily == 1) {
      pairs[project] = count.daily_job;
    }
  }
  return pairs;
}

// A pair with a size-only job (verify: size counts no rows) can never be compared: said
// once here rather than as a reconcile_skipped every date.
void warn_size_only(const std::vector<Job>& jobs, const Job& hourly, const ReconcileMarks& mark,
                    Reporter& reporter) {
  const std::string& name = std::get<RawJob>(hourly.settings).reconcile.daily_job;
  const auto daily = std::find_if(jobs.begin(), jobs.end(), [&](const Job& job) {
    return job.name == name && is_raw(job) && job.granularity == Granularity::day;
  });
  if (daily == jobs.end()) {
    return;  // refused by check_named already
  }
  const Job* size_only = daily->verify == archive::VerifyMode::size   ? &*daily
                         : hourly.verify == archive::VerifyMode::size ? &hourly
                                                                      : nullptr;
  if (size_only != nullptr) {
    reporter.warn(mark.with.value_or(mark.any.value_or(YAML::Mark::null_mark())),
                  "job " + in_quotes(hourly.name) + " is compared with " + in_quotes(name) +
                      ", but " + in_quotes(size_only->name) +
                      " has 'verify: size', which counts no rows: its dates will be skipped, "
                      "not compared (use verify: gzip)");
  }
}

}  // namespace

ReconcileMarks read_reconcile(const MapReader& map, Reconcile& reconcile, Reporter& reporter) {
  ReconcileMarks marks;
  for (std::string_view key : keys::kReconcile) {
    if (const Entry* entry = map.find(key); entry != nullptr && !marks.any) {
      marks.any = entry->key.Mark();
    }
  }
  if (const Entry* entry = map.find("reconcile_with")) {
    if (auto name = read_string(*entry, reporter)) {
      reconcile.daily_job = *name;
      marks.with = entry->value_mark();
    }
  }
  if (const Entry* entry = map.find("reconcile_tolerance")) {
    reconcile.tolerance_percent =
        read_tolerance(*entry, reporter).value_or(kDefaultReconcileTolerance);
  }
  if (const Entry* entry = map.find("on_reconcile_mismatch")) {
    reconcile.refetch =
        read_choice<OnMismatch>(*entry, reporter, kOnMismatch) == OnMismatch::refetch;
  }
  return marks;
}

void pair_reconcile(std::vector<Job>& jobs, const std::vector<ReconcileMarks>& marks,
                    Reporter& reporter) {
  const auto pairs = automatic_pairs(jobs);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    Job& job = jobs[i];
    const ReconcileMarks& mark = marks[i];
    const bool hourly_raw = is_raw(job) && job.granularity == Granularity::hour;
    if (mark.any && !hourly_raw) {
      reporter.add(*mark.any, std::string{"the reconcile keys belong on the hourly raw job, "} +
                                  "which is compared with a daily one; this job is " +
                                  (mark.is_chart ? "a chart job" : "daily"));
      continue;
    }
    if (!hourly_raw) {
      continue;
    }
    Reconcile& reconcile = std::get<RawJob>(job.settings).reconcile;
    if (mark.with) {
      check_named(jobs, job, *mark.with, reporter);
      continue;
    }
    if (const auto pair = pairs.find(job.project); pair != pairs.end()) {
      reconcile.daily_job = pair->second;
      reconcile.automatic = true;
    } else if (mark.any) {
      reporter.add(*mark.any,
                   "this job reconciles with no daily job: name one with 'reconcile_with' "
                   "(automatic pairing needs exactly one hourly and one daily raw job in "
                   "the project)");
    }
  }
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (is_raw(jobs[i]) && jobs[i].granularity == Granularity::hour &&
        !std::get<RawJob>(jobs[i].settings).reconcile.daily_job.empty()) {
      warn_size_only(jobs, jobs[i], marks[i], reporter);
    }
  }
}

}  // namespace gio::config::parsing
