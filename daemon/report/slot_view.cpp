#include "report/slot_view.hpp"

#include <algorithm>
#include <map>
#include <tuple>

#include "scheduler/planner.hpp"
#include "scheduler/readiness.hpp"

namespace gio::report {
namespace {

namespace json = boost::json;

// The longest range one query may cover: a year of hourly cells is ~9k per job.
constexpr std::chrono::days kMaxRange{400};

std::size_t state_index(std::string_view state) {
  return static_cast<std::size_t>(std::find(kShownStates.begin(), kShownStates.end(), state) -
                                  kShownStates.begin());
}

Slot parse_date(const std::optional<std::string>& text, std::string_view parameter) {
  const auto day = Slot::parse(*text, Granularity::day);
  if (!day) {
    throw std::invalid_argument(std::string{parameter} + ": expected a Beijing date YYYY-MM-DD");
  }
  return *day;
}

Slot days_from(const Slot& day, std::chrono::days by) {
  return Slot::containing(day.start() + by, Granularity::day);
}

// What the store keeps of a slot's files, summed: per slot, or per chart of a slot.
struct FileSums {
  std::size_t files = 0;
  std::uint64_t bytes = 0;
  std::optional<std::uint64_t> rows{0};
};

void add_file(FileSums& sums, const state::ArchivedFile& file) {
  ++sums.files;
  sums.bytes += file.bytes;
  // One file without a count makes the slot's total unknown, not smaller.
  sums.rows = sums.rows && file.rows ? std::optional{*sums.rows + *file.rows} : std::nullopt;
}

// Why a slot without a row has none.
std::string no_row_reason(std::string_view state, bool in_window) {
  if (state == "lost") {
    return "the vendor dropped it before it was planned";
  }
  if (state == "unplanned") {
    return in_window ? "not planned yet: the daemon has not run since this slot became ready"
                     : "outside the job's backfill window: the daemon does not ask for it";
  }
  return "";
}

SlotView make_view(const config::Job& job, const Slot& slot, const state::SlotRecord* record,
                   Instant now, bool in_window, scheduler::PlannedFirstAsk& first_ask) {
  SlotView view;
  view.slot = slot.name();
  view.start = slot.start();
  view.state = shown_state(job, slot, record, now);
  view.lost_at = slot.lost_at();
  view.seconds_left = std::max<std::int64_t>(0, (view.lost_at - now).count());
  view.rows = std::nullopt;  // no file: nothing counted (set_sums sets it from the files)
  if (record != nullptr) {
    view.attempts = record->attempts;
    view.api_status = record->api_status;
    view.last_error = record->last_error;
    if (record->state != state::SlotState::done && record->state != state::SlotState::failed &&
        record->state != state::SlotState::lost) {
      view.next_at = record->next_at;
    }
  } else {
    view.last_error = no_row_reason(view.state, in_window);
    if (view.state == "not_ready") {
      view.next_at = first_ask(slot);  // as the scheduler will ask, not the fixed ready_at
    }
  }
  return view;
}

// Not archived, not lost, and the vendor drops it within kAtRisk (uploading slots are
// local already: never at risk). An unplanned slot outside the backfill window is not
// at risk: the daemon never asks for it unless `backfill` queues it, so warning about it
// would be noise (`gaps` does not list it either).
void mark_risk(SlotView& view, bool in_window) {
  const bool open = view.state == "waiting" || view.state == "downloading" ||
                    view.state == "failed" || (view.state == "unplanned" && in_window);
  view.at_risk = open && view.seconds_left < std::chrono::seconds{kAtRisk}.count();
}

void set_sums(SlotView& view, const FileSums& sums) {
  view.files = sums.files;
  view.bytes = sums.bytes;
  view.rows = sums.rows;
}

void sort_attention(std::vector<SlotView>& attention) {
  // Still savable first, least time left first; lost ones (nothing left to do) last.
  std::sort(attention.begin(), attention.end(), [](const SlotView& a, const SlotView& b) {
    return std::make_tuple(a.state == "lost", a.seconds_left, a.start, a.chart) <
           std::make_tuple(b.state == "lost", b.seconds_left, b.start, b.chart);
  });
}

json::value optional_instant(const std::optional<Instant>& instant) {
  return instant ? json::value(format_utc(*instant)) : json::value(nullptr);
}

std::string_view kind_of(const config::Job& job) {
  return std::visit(config::Overloaded{[](const config::RawJob&) { return "raw"; },
                                       [](const config::ChartJob&) { return "chart"; },
                                       [](const config::UserListJob&) { return "user_list"; }},
                    job.settings);
}

json::object job_json(const JobView& view) {
  json::object counts;
  for (std::size_t i = 0; i < kShownStates.size(); ++i) {
    counts[kShownStates[i]] = view.counts[i];
  }
  json::array attention;
  for (const SlotView& cell : view.attention) {
    attention.push_back(slot_json(cell));
  }
  json::array days;
  for (const DayView& day : view.days) {
    json::array cells;
    for (const SlotView& cell : day.cells) {
      cells.push_back(slot_json(cell));
    }
    days.push_back(json::object{{"date", day.date}, {"cells", std::move(cells)}});
  }
  const config::Job& job = *view.job;
  return json::object{
      {"job", job.name},
      {"kind", kind_of(job)},
      {"granularity", to_string(job.granularity)},
      {"sink", job.sink.empty() ? json::value(nullptr) : json::value(job.sink)},
      {"next_ask", json::object{{"at", format_utc(view.next.at)}, {"slot", view.next.slot}}},
      {"counts", std::move(counts)},
      {"attention", std::move(attention)},
      {"days", std::move(days)},
  };
}

}  // namespace

UnknownJob::UnknownJob(const std::string& job) : std::runtime_error("no job named " + job) {}

std::string_view shown_state(const config::Job& job, const Slot& slot,
                             const state::SlotRecord* record, Instant now) {
  if (record == nullptr) {
    if (scheduler::ready_at(job, slot) > now) {
      return "not_ready";
    }
    return slot.lost_at() <= now ? "lost" : "unplanned";
  }
  switch (record->state) {
    case state::SlotState::pending:
    case state::SlotState::waiting:
      return "waiting";
    case state::SlotState::downloading:
      return "downloading";
    case state::SlotState::uploading:
      return "uploading";
    case state::SlotState::done:
      return "done";
    case state::SlotState::failed:
      return "failed";
    case state::SlotState::lost:
      return "lost";
  }
  return "waiting";
}

NextAsk next_ask(const config::Job& job, state::StateStore& store, const state::JobSummary& summary,
                 Instant now) {
  const Slot upcoming = scheduler::next_to_become_ready(job, now);
  NextAsk next{scheduler::PlannedFirstAsk{store, job}(upcoming), upcoming.name()};
  if (summary.next_action && *summary.next_action < next.at) {
    next = {*summary.next_action, summary.next_action_slot.value_or("")};
  }
  return next;
}

DateRange date_range(const SlotQuery& query, Instant now) {
  const Slot today = Slot::containing(now, Granularity::day);
  const std::chrono::days span = kRetention - std::chrono::days{1};
  const Slot last = query.to     ? parse_date(query.to, "to")
                    : query.from ? std::min(days_from(parse_date(query.from, "from"), span), today)
                                 : today;
  const Slot first = query.from ? parse_date(query.from, "from") : days_from(last, -span);
  if (last < first) {
    throw std::invalid_argument("to: before from");
  }
  const std::chrono::days longest =
      query.within_retention ? kRetention + std::chrono::days{1} : kMaxRange;
  if (query.within_retention) {
    const Slot oldest = days_from(today, -kRetention);
    if (first < oldest) {
      throw std::invalid_argument((query.from ? "from" : "to") + std::string{": before "} +
                                  oldest.name() + " (" + std::to_string(kRetention.count()) +
                                  " days before today, the vendor's retention)");
    }
  }
  if (last.start() - first.start() >= longest) {
    throw std::invalid_argument("to: more than " + std::to_string(longest.count()) +
                                " days after from");
  }
  return {first, last};
}

JobView view_job(const config::Job& job, state::StateStore& store, Instant now,
                 const DateRange& range) {
  JobView view;
  view.job = &job;
  view.next = next_ask(job, store, store.summarize(job.name), now);
  const Instant from = range.first.start();
  const Instant to = range.last.end();
  std::map<std::string, state::SlotRecord, std::less<>> records;
  for (state::SlotRecord& record : store.slots(job.name, from, to)) {
    records.emplace(record.slot, std::move(record));
  }
  const Slot first = Slot::containing(from, job.granularity);
  const Slot last = Slot::containing(to - std::chrono::seconds{1}, job.granularity);
  // Per slot; per slot and data type too, for a chart job's cells.
  std::map<std::string, FileSums, std::less<>> by_slot;
  std::map<std::pair<std::string, std::string>, FileSums> by_chart;
  for (const state::ArchivedFile& file : store.files_between(job.name, first.name(), last.name())) {
    add_file(by_slot[file.slot], file);
    add_file(by_chart[{file.slot, file.data_type}], file);
  }
  // Only a downloading slot's row means anything (the contract of state/progress.cpp).
  const std::map<std::string, state::SlotProgress> progress = store.progress(job.name);
  const auto* chart = std::get_if<config::ChartJob>(&job.settings);
  const Instant window = scheduler::first_in_window(job, now).start();
  scheduler::PlannedFirstAsk first_ask{store, job};
  for (Slot slot = first; slot.start() < to; slot = slot.next()) {
    const auto found = records.find(slot.name());
    const state::SlotRecord* record = found == records.end() ? nullptr : &found->second;
    const bool in_window = slot.start() >= window;
    SlotView base = make_view(job, slot, record, now, in_window, first_ask);
    if (const auto done = progress.find(slot.name());
        base.state == "downloading" && done != progress.end()) {
      base.bytes_done = done->second.bytes_done;
      base.bytes_total = done->second.bytes_total;
    }
    std::vector<SlotView> cells;
    if (chart != nullptr) {
      for (const std::string& id : chart->charts) {
        SlotView cell = base;
        cell.chart = id;
        const auto sums = by_chart.find({slot.name(), id});
        if (sums != by_chart.end()) {
          set_sums(cell, sums->second);
          cell.state = "done";  // its file is recorded, whatever the slot's other charts do
        }
        cells.push_back(std::move(cell));
      }
    } else {
      if (const auto sums = by_slot.find(slot.name()); sums != by_slot.end()) {
        set_sums(base, sums->second);
      }
      cells.push_back(std::move(base));
    }
    if (view.days.empty() || view.days.back().date != slot.date()) {
      view.days.push_back({slot.date(), {}});
    }
    for (SlotView& cell : cells) {
      mark_risk(cell, in_window);
      ++view.counts[state_index(cell.state)];
      if (cell.at_risk || cell.state == "failed" || cell.state == "lost") {
        view.attention.push_back(cell);
      }
      view.days.back().cells.push_back(std::move(cell));
    }
  }
  sort_attention(view.attention);
  return view;
}

std::vector<JobView> view(const config::Config& config, state::StateStore& store, Instant now,
                          const SlotQuery& query) {
  if (query.job && config.find_job(*query.job) == nullptr) {
    throw UnknownJob(*query.job);
  }
  const DateRange range = date_range(query, now);
  std::vector<JobView> views;
  for (const config::Job& job : config.jobs) {
    if (!query.job || job.name == *query.job) {
      views.push_back(view_job(job, store, now, range));
    }
  }
  return views;
}

json::object slot_json(const SlotView& view) {
  json::object slot{{"slot", view.slot}, {"state", view.state}};
  if (view.chart) {
    slot["chart"] = *view.chart;
  }
  slot["attempts"] = view.attempts;
  slot["api_status"] = view.api_status;
  slot["last_error"] = view.last_error;
  slot["files"] = view.files;
  slot["bytes"] = view.bytes;
  slot["rows"] = view.rows ? json::value(*view.rows) : json::value(nullptr);
  if (view.bytes_done) {
    slot["bytes_done"] = *view.bytes_done;
    slot["bytes_total"] = view.bytes_total ? json::value(*view.bytes_total) : json::value(nullptr);
  }
  slot["next_at"] = optional_instant(view.next_at);
  slot["lost_at"] = format_utc(view.lost_at);
  slot["seconds_left"] = view.seconds_left;
  slot["at_risk"] = view.at_risk;
  return slot;
}

json::object slots_json(const config::Config& config, state::StateStore& store, Instant now,
                        const SlotQuery& query) {
  json::array jobs;
  for (const JobView& job : view(config, store, now, query)) {
    jobs.push_back(job_json(job));
  }
  return json::object{{"generated_at", format_utc(now)}, {"jobs", std::move(jobs)}};
}

}  // namespace gio::report
