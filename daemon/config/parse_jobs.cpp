// The `jobs:` list: each job's common part (names, timing, hooks, verification), then
// the part of its kind (raw, chart or user list), each read by its own function.
// One file at ~500 lines because JobReader, private to it, holds the reporter and
// marks every one of those functions uses; the reconcile keys already live in
// parse_reconcile.cpp. When it grows further, the chart and user-list readers
// (read_chart_or_list and the readers it calls) go to their own file, with JobReader
// declared in parse_support.hpp.

#include "config/parse_support.hpp"

namespace gio::config::parsing {
namespace {

// The YAML's `kind:`; a user-list job is kind chart there, told apart by `resource`.
enum class KindName { raw, chart };

constexpr Choice<KindName> kKinds[] = {{"raw", KindName::raw}, {"chart", KindName::chart}};
constexpr Choice<ChartResource> kChartResources[] = {
    {"charts", ChartResource::charts},
    {"funnels", ChartResource::funnels},
    {"retentions", ChartResource::retentions},
    {"frequencies", ChartResource::frequencies},
    {"segmentations", ChartResource::segmentations},
    {"tags", ChartResource::tags}};
constexpr Choice<Granularity> kGranularities[] = {{"hour", Granularity::hour},
                                                  {"day", Granularity::day}};
constexpr Choice<archive::VerifyMode> kVerifyModes[] = {{"gzip", archive::VerifyMode::gzip},
                                                        {"size", archive::VerifyMode::size}};

}  // namespace

// Where a job names its project and its sink, for the checks against those lists, and
// where it pairs itself with a daily job (parse_reconcile.cpp).
struct JobMarks {
  std::optional<YAML::Mark> project, sink;
  ReconcileMarks reconcile;
};

namespace {

class JobReader {
 public:
  explicit JobReader(Reporter& reporter) : reporter_(reporter) {}

  // `earlier` are the jobs before this one (names must differ). `marks` is set to
  // where the job names its project and its sink, for the checks against those lists.
  Job read_job(const YAML::Node& node, const std::vector<Job>& earlier, JobMarks& marks);

 private:
  void read_names(const MapReader& map, const std::vector<Job>& earlier, Job& job,
                  std::optional<YAML::Mark>& project);
  void read_timing(const MapReader& map, Job& job);
  void read_hooks(const MapReader& map, Job& job);
  void read_link_expire(const MapReader& map, Job& job);
  JobSettings read_settings(const MapReader& map, std::optional<KindName> kind, Job& job);
  RawJob read_raw(const MapReader& map);
  JobSettings read_chart_or_list(const MapReader& map, Job& job);
  UserListJob read_user_list(const MapReader& map, ChartResource resource,
                             std::vector<std::string> lists, std::string parameters, Job& job);
  const Entry* resource_key(const MapReader& map, std::string_view key, bool belongs,
                            std::string_view only_for);
  std::optional<std::chrono::days> read_conversion_window(const Entry& entry);
  std::optional<std::string> read_range(const Entry& entry);
  std::optional<std::string> read_parameters(const Entry& entry);
  std::optional<Duration> read_interval(const Entry& entry);
  std::vector<std::string> read_data_types(const Entry& entry);
  std::vector<std::string> read_chart_ids(const Entry& entry);

  Reporter& reporter_;
};

Job JobReader::read_job(const YAML::Node& node, const std::vector<Job>& earlier, JobMarks& marks) {
  Job job;
  if (!node.IsMap()) {
    reporter_.add(node.Mark(),
                  "a job must be a map with at least name and project, not " + describe(node));
    return job;
  }
  const MapReader map(node, "a job", keys::kJob, reporter_);
  read_names(map, earlier, job, marks.project);
  if (const Entry* entry = map.find("sink")) {
    if (auto name = read_string(*entry, reporter_)) {
      job.sink = *name;
      marks.sink = entry->value_mark();
    }
  }
  std::optional<KindName> kind = KindName::raw;
  if (const Entry* entry = map.find("kind")) {
    kind = read_choice<KindName>(*entry, reporter_, kKinds);
  }
  if (const Entry* entry = map.find("granularity")) {
    job.granularity =
        read_choice<Granularity>(*entry, reporter_, kGranularities).value_or(Granularity::hour);
  }
  if (const Entry* entry = map.find("verify")) {
    job.verify = read_choice<archive::VerifyMode>(*entry, reporter_, kVerifyModes)
                     .value_or(archive::VerifyMode::gzip);
  }
  read_timing(map, job);
  read_hooks(map, job);
  read_link_expire(map, job);
  job.settings = read_settings(map, kind, job);
  if (auto* raw = std::get_if<RawJob>(&job.settings)) {
    marks.reconcile = read_reconcile(map, raw->reconcile, reporter_);
  } else {
    Reconcile dropped;  // checked as values, then refused by pair_reconcile
    marks.reconcile = read_reconcile(map, dropped, reporter_);
    marks.reconcile.is_chart = true;
  }
  return job;
}

void JobReader::read_names(const MapReader& map, const std::vector<Job>& earlier, Job& job,
                           std::optional<YAML::Mark>& project) {
  if (const Entry* entry = map.find("name")) {
    if (auto name = read_string(*entry, reporter_)) {
      job.name = *name;
      if (!is_folder_name(*name)) {
        reporter_.add(entry->value_mark(),
                      "job name " + in_quotes(*name) + " must be 1 to " +
                          std::to_string(kMaxNameLength) +
                          " letters, digits, '.', '_' or '-', starting with a letter or digit "
                          "(it is the job's archive folder)");
      }
      for (const Job& other : earlier) {
        if (other.name == *name) {
          reporter_.add(entry->value_mark(), "duplicate job name " + in_quotes(*name));
          break;
        }
      }
    }
  } else {
    reporter_.add(map.mark(), "this job has no 'name'");
  }
  if (const Entry* entry = map.find("project")) {
    if (auto name = read_string(*entry, reporter_)) {
      job.project = *name;
      project = entry->value_mark();
    }
  } else {
    reporter_.add(map.mark(), "this job has no 'project'");
  }
}

// When slots are asked for, how often, and for how long. `granularity` is read already.
void JobReader::read_timing(const MapReader& map, Job& job) {
  job.ready_after =
      job.granularity == Granularity::hour ? kDefaultReadyAfterHour : kDefaultReadyAfterDay;
  if (const Entry* entry = map.find("ready_after")) {
    job.ready_after =
        read_duration(*entry, reporter_, Duration{0}, kMaxReadyAfter).value_or(job.ready_after);
  }
  const Entry* poll_entry = map.find("poll_every");
  std::optional<Duration> poll_every = job.poll_every;
  if (poll_entry) {
    poll_every = read_duration(*poll_entry, reporter_, kMinPollEvery, kMaxPollEvery);
    job.poll_every = poll_every.value_or(job.poll_every);
  }
  const Entry* give_up_entry = map.find("give_up_after");
  std::optional<Duration> give_up_after = job.give_up_after;
  if (give_up_entry) {
    give_up_after = read_duration(*give_up_entry, reporter_, kMinPollEvery, kMaxGiveUpAfter);
    job.give_up_after = give_up_after.value_or(job.give_up_after);
  }
  if (poll_every && give_up_after && *give_up_after < *poll_every) {
    const Entry* where = give_up_entry ? give_up_entry : poll_entry;
    reporter_.add(where->value_mark(), "'give_up_after' (" + format_duration(*give_up_after) +
                                           ") must be at least 'poll_every' (" +
                                           format_duration(*poll_every) + ")");
  }
  if (const Entry* entry = map.find("not_exists_grace")) {
    job.not_exists_grace = read_duration(*entry, reporter_, Duration{0}, kMaxNotExistsGrace)
                               .value_or(job.not_exists_grace);
  }
  if (const Entry* entry = map.find("backfill")) {
    job.backfill = read_duration(*entry, reporter_, kMinBackfill, kMaxBackfill,
                                 "the vendor keeps 15 days of data; a slot older than that "
                                 "can never be fetched")
                       .value_or(job.backfill);
  }
}

void JobReader::read_hooks(const MapReader& map, Job& job) {
  for (const auto& [key, command] : {std::pair{"on_slot_done", &job.hooks.on_slot_done},
                                     std::pair{"on_slot_failed", &job.hooks.on_slot_failed},
                                     std::pair{"on_slot_at_risk", &job.hooks.on_slot_at_risk},
                                     std::pair{"on_schema_change", &job.hooks.on_schema_change}}) {
    if (const Entry* entry = map.find(key)) {
      if (auto text = read_string(*entry, reporter_)) {
        if (text->empty() || text->find('\0') != std::string::npos) {
          reporter_.add(entry->value_mark(),
                        "'" + std::string{key} + "' must be a command line for /bin/sh");
        } else {
          *command = *text;
        }
      }
    }
  }
  if (const Entry* entry = map.find("hook_timeout")) {
    job.hooks.timeout = read_duration(*entry, reporter_, kMinHookTimeout, kMaxHookTimeout)
                            .value_or(job.hooks.timeout);
  }
}

void JobReader::read_link_expire(const MapReader& map, Job& job) {
  if (const Entry* entry = map.find("link_expire")) {
    if (auto expire = read_duration(*entry, reporter_, kMinLinkExpire, kMaxLinkExpire)) {
      if (expire->count() % 60 != 0) {
        reporter_.add(entry->value_mark(),
                      "'link_expire' must be whole minutes (the API takes minutes), not " +
                          format_duration(*expire));
      } else {
        job.link_expire = *expire;
      }
    }
  }
}

// The kind's own part. Problems come in the order they always did: each value where it
// is, then the keys that do not belong to the kind, then a missing `charts`.
JobSettings JobReader::read_settings(const MapReader& map, std::optional<KindName> kind, Job& job) {
  if (kind == KindName::raw) {
    return read_raw(map);
  }
  // A chart job, or one whose kind is wrong: then each value is still checked, but which
  // keys belong is not (the kind's own problem says enough).
  if (const Entry* entry = map.find("data_types")) {
    read_data_types(*entry);
  }
  JobSettings settings = read_chart_or_list(map, job);
  if (kind == KindName::chart) {
    if (const Entry* entry = map.find("data_types")) {
      reporter_.add(entry->key.Mark(),
                    "'data_types' is only for raw jobs; this job is a chart job");
    }
    if (!map.find("charts")) {
      reporter_.add(map.mark(), "a chart job needs 'charts', a list of chart ids");
    }
  }
  return settings;
}

RawJob JobReader::read_raw(const MapReader& map) {
  RawJob raw;
  if (const Entry* entry = map.find("data_types")) {
    raw.data_types = read_data_types(*entry);
  }
  // A chart job's list and interval are checked as such even here, then refused.
  if (const Entry* entry = map.find("charts")) {
    read_chart_ids(*entry);
  }
  if (const Entry* entry = map.find("interval")) {
    read_interval(*entry);
  }
  for (std::string_view key : keys::kChartOnly) {
    if (const Entry* entry = map.find(key)) {
      reporter_.add(entry->key.Mark(),
                    in_quotes(key) + " is only for chart jobs (kind: chart); this job is raw");
    }
  }
  return raw;
}

// kind: chart. `resource` says whether it is a chart (charts, funnels, retentions,
// frequencies) or a user list (segmentations, tags), and which extra query keys it takes.
JobSettings JobReader::read_chart_or_list(const MapReader& map, Job& job) {
  std::vector<std::string> ids;
  if (const Entry* entry = map.find("charts")) {
    ids = read_chart_ids(*entry);
  }
  std::optional<Duration> interval;
  if (const Entry* entry = map.find("interval")) {
    interval = read_interval(*entry);
  }
  // An unknown resource is its own problem; the keys below are then checked as values only.
  std::optional<ChartResource> resource = ChartResource::charts;
  if (const Entry* entry = map.find("resource")) {
    resource = read_choice<ChartResource>(*entry, reporter_, kChartResources);
  }
  const bool any = !resource;
  ChartJob chart;
  chart.resource = resource.value_or(ChartResource::charts);
  if (const Entry* entry = resource_key(map, "conversion_window",
                                        any || resource == ChartResource::funnels, "funnels")) {
    chart.conversion_window = read_conversion_window(*entry);
  }
  if (const Entry* entry =
          resource_key(map, "range", any || resource == ChartResource::retentions, "retentions")) {
    chart.range = read_range(*entry).value_or("");
  }
  std::string parameters;
  if (const Entry* entry = resource_key(map, "parameters", any || is_user_list(*resource),
                                        "segmentations or tags")) {
    parameters = read_parameters(*entry).value_or("");
  }
  if (resource && is_user_list(*resource)) {
    return read_user_list(map, *resource, std::move(ids), std::move(parameters), job);
  }
  chart.charts = std::move(ids);
  chart.interval = interval.value_or(chart.interval);
  return chart;
}

UserListJob JobReader::read_user_list(const MapReader& map, ChartResource resource,
                                      std::vector<std::string> lists, std::string parameters,
                                      Job& job) {
  // A user list is a snapshot taken when its slot is due: the API has no time range.
  if (const Entry* entry = map.find("interval")) {
    reporter_.add(entry->key.Mark(),
                  "'interval' is not used by user lists (resource: segmentations or tags)");
  }
  // The vendor does not say its user-list files are gzip: unless the job says
  // otherwise, they are checked by Content-Length and sha256 only.
  if (!map.find("verify")) {
    job.verify = archive::VerifyMode::size;
  }
  return {.resource = resource, .lists = std::move(lists), .parameters = std::move(parameters)};
}

// A key meant for another resource is an error rather than ignored: the user expects it
// to shape the result. Returns the entry to read when the key is there and belongs.
const Entry* JobReader::resource_key(const MapReader& map, std::string_view key, bool belongs,
                                     std::string_view only_for) {
  const Entry* entry = map.find(key);
  if (entry && !belongs) {
    reporter_.add(entry->key.Mark(),
                  in_quotes(key) + " is only for resource: " + std::string{only_for});
    return nullptr;
  }
  return entry;
}

std::optional<std::chrono::days> JobReader::read_conversion_window(const Entry& entry) {
  const auto window = read_duration(entry, reporter_, std::chrono::days{1}, kMaxConversionWindow);
  if (!window) {
    return std::nullopt;
  }
  if (window->count() % 86400 != 0) {
    reporter_.add(entry.value_mark(),
                  "'conversion_window' must be whole days (the API takes days), not " +
                      format_duration(*window));
    return std::nullopt;
  }
  return std::chrono::duration_cast<std::chrono::days>(*window);
}

std::optional<std::string> JobReader::read_range(const Entry& entry) {
  auto range = read_string(entry, reporter_);
  if (!range) {
    return std::nullopt;
  }
  // Passed into the query string as it is, so only characters that need no escaping.
  const bool plain =
      range->size() <= kMaxRangeLength && std::all_of(range->begin(), range->end(), [](char c) {
        return is_alnum(c) || c == '.' || c == '_' || c == '-' || c == ',';
      });
  if (!plain) {
    reporter_.add(entry.value_mark(), "'range' must be 1 to " + std::to_string(kMaxRangeLength) +
                                          " letters, digits, '.', '_', '-' or ',', not " +
                                          in_quotes(*range));
    return std::nullopt;
  }
  return range;
}

std::optional<std::string> JobReader::read_parameters(const Entry& entry) {
  auto parameters = read_string(entry, reporter_);
  if (!parameters) {
    return std::nullopt;
  }
  if (parameters->empty() || parameters->size() > kMaxParametersLength) {
    reporter_.add(entry.value_mark(),
                  "'parameters' must be 1 to " + std::to_string(kMaxParametersLength) + " bytes");
    return std::nullopt;
  }
  return parameters;  // percent-encoded when sent
}

std::optional<Duration> JobReader::read_interval(const Entry& entry) {
  const auto interval = read_duration(entry, reporter_, Duration{0}, Duration::max());
  if (!interval) {
    return std::nullopt;
  }
  if (std::find(std::begin(kChartIntervals), std::end(kChartIntervals), *interval) ==
      std::end(kChartIntervals)) {
    reporter_.add(entry.value_mark(),
                  "'interval' must be one of 1h, 1d, 7d, 30d (the chart API's intervals), not " +
                      entry.value.Scalar());
    return std::nullopt;
  }
  return interval;
}

// `all` or a list of known types; empty means all.
std::vector<std::string> JobReader::read_data_types(const Entry& entry) {
  std::vector<std::string> types;
  if (entry.value.IsScalar() && entry.value.Scalar() == "all") {
    return types;
  }
  if (!entry.value.IsSequence() || entry.value.size() == 0) {
    reporter_.add(
        entry.value_mark(),
        "'data_types' must be all or a non-empty list such as [visit, page], not " +
            (entry.value.IsScalar() ? in_quotes(entry.value.Scalar()) : describe(entry.value)));
    return types;
  }
  for (const YAML::Node& item : entry.value) {
    if (!item.IsScalar()) {
      reporter_.add(item.Mark(), "a data type must be a single name, not " + describe(item));
      continue;
    }
    const std::string& type = item.Scalar();
    if (std::find(std::begin(kDataTypes), std::end(kDataTypes), type) == std::end(kDataTypes)) {
      reporter_.add(item.Mark(), "unknown data type " + in_quotes(type) +
                                     unknown_note(type, kDataTypes, "known: " + join(kDataTypes)));
    } else if (std::find(types.begin(), types.end(), type) != types.end()) {
      reporter_.add(item.Mark(), "data type " + in_quotes(type) + " is listed twice");
    } else {
      types.push_back(type);
    }
  }
  return types;
}

// The `charts:` list: chart ids, or list ids for a user list.
std::vector<std::string> JobReader::read_chart_ids(const Entry& entry) {
  std::vector<std::string> ids;
  if (!entry.value.IsSequence() || entry.value.size() == 0) {
    reporter_.add(entry.value_mark(),
                  "'charts' must be a non-empty list of chart ids, not " + describe(entry.value));
    return ids;
  }
  for (const YAML::Node& item : entry.value) {
    // Chart ids become folder names in the archive.
    if (!item.IsScalar() || !is_folder_name(item.Scalar())) {
      reporter_.add(item.Mark(), "a chart id must be letters, digits, '.', '_' or '-', not " +
                                     (item.IsScalar() ? in_quotes(item.Scalar()) : describe(item)));
    } else if (std::find(ids.begin(), ids.end(), item.Scalar()) != ids.end()) {
      reporter_.add(item.Mark(), "chart " + in_quotes(item.Scalar()) + " is listed twice");
    } else {
      ids.push_back(item.Scalar());
    }
  }
  return ids;
}

}  // namespace

namespace {

// "unknown <what> 'name' (not in '<list>'; did you mean 'x'?)"
template <typename T>
void check_known(std::string_view what, std::string_view list, const std::string& name,
                 const YAML::Mark& mark, const std::vector<T>& known, Reporter& reporter) {
  std::vector<std::string_view> names;
  for (const T& item : known) {
    if (item.name == name) {
      return;
    }
    names.push_back(item.name);
  }
  std::string message =
      "unknown " + std::string{what} + " " + in_quotes(name) + " (not in " + in_quotes(list);
  if (const auto suggestion = nearest(name, names)) {
    message += "; did you mean " + in_quotes(*suggestion) + "?";
  }
  reporter.add(mark, message + ")");
}

}  // namespace

std::vector<Job> read_jobs(const Entry* entry, const YAML::Mark& root,
                           const std::optional<std::vector<Project>>& projects,
                           const std::optional<std::vector<Sink>>& sinks, Reporter& reporter) {
  std::vector<Job> jobs;
  if (entry == nullptr) {
    reporter.add(root, "'jobs' is missing; at least one job is needed");
    return jobs;
  }
  if (!entry->value.IsSequence() || entry->value.size() == 0) {
    reporter.add(entry->value_mark(),
                 "'jobs' must be a list of at least one job, not " + describe(entry->value));
    return jobs;
  }
  JobReader reader(reporter);
  std::vector<JobMarks> marks;
  for (const YAML::Node& node : entry->value) {
    JobMarks job_marks;
    Job job = reader.read_job(node, jobs, job_marks);
    jobs.push_back(std::move(job));
    marks.push_back(job_marks);
  }
  // Without a list to check against, every job would be "unknown ...": noise after the
  // real problem.
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (projects && marks[i].project) {
      check_known("project", "projects", jobs[i].project, *marks[i].project, *projects, reporter);
    }
    if (sinks && marks[i].sink) {
      check_known("sink", "sinks", jobs[i].sink, *marks[i].sink, *sinks, reporter);
    }
  }
  std::vector<ReconcileMarks> reconcile_marks;
  for (const JobMarks& job_marks : marks) {
    reconcile_marks.push_back(job_marks.reconcile);
  }
  pair_reconcile(jobs, reconcile_marks, reporter);
  return jobs;
}

}  // namespace gio::config::parsing
