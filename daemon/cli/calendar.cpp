// `status --calendar`: report::slot_view drawn as text, one line per Beijing day (or per
// week of a daily job), one cell per slot (per chart and slot for a chart job), in 80
// columns. Every state has its own character, so the grid reads without colour too;
// colour only on a terminal (or when forced, for tests), never with NO_COLOR.

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>

#include "cli/archive_binding.hpp"
#include "cli/commands.hpp"
#include "report/format.hpp"
#include "report/slot_view.hpp"

namespace gio::cli {
namespace {

constexpr std::size_t kWidth = 80;
constexpr std::size_t kDaysPerRow = 7;  // a daily job: one line per week
// The failed and lost cells listed under a grid; the rest are counted (gaps lists them all).
constexpr std::size_t kListed = 12;

struct Look {
  char mark;
  std::string_view colour;  // ANSI SGR
  std::string_view meaning;
};

// By report::kShownStates.
constexpr std::array<Look, report::kShownStates.size()> kLooks = {{
    {'#', "32", "done"},
    {'~', "33", "waiting"},
    {'>', "36", "downloading"},
    {'^', "34", "uploading"},
    {'F', "1;31", "failed"},
    {'L', "35", "lost"},
    {'.', "90", "not ready"},
    {'?', "37", "unplanned"},  // neutral: only the at-risk ones are a problem
}};

const Look& look_of(std::string_view state) {
  const auto found = std::find(report::kShownStates.begin(), report::kShownStates.end(), state);
  return kLooks[static_cast<std::size_t>(found - report::kShownStates.begin())];
}

// GIO_EXPORTER_COLOR=1 forces colour (the golden tests), NO_COLOR (https://no-color.org)
// turns it off, otherwise colour only when stdout is a terminal.
bool use_colour() {
  const char* forced = std::getenv("GIO_EXPORTER_COLOR");
  if (forced != nullptr && *forced != '\0') {
    return std::string_view{forced} == "1";
  }
  const char* no_colour = std::getenv("NO_COLOR");
  if (no_colour != nullptr && *no_colour != '\0') {
    return false;
  }
  return ::isatty(STDOUT_FILENO) == 1;
}

// At most `width` bytes (so at most that many columns), cut on a UTF-8 boundary.
std::string fit(std::string line, std::size_t width = kWidth) {
  if (line.size() <= width) {
    return line;
  }
  std::size_t end = width - 3;
  while (end > 0 && (static_cast<unsigned char>(line[end]) & 0xC0) == 0x80) {
    --end;
  }
  return line.substr(0, end) + "...";
}

class Grid {
 public:
  explicit Grid(bool colour) : colour_(colour) {}

  std::string cell(std::string_view state) const {
    const Look& look = look_of(state);
    if (!colour_) {
      return std::string{look.mark};
    }
    return "\x1b[" + std::string{look.colour} + "m" + look.mark + "\x1b[0m";
  }

  std::string legend() const {
    std::string first = "legend:";
    std::string second = "       ";
    for (std::size_t i = 0; i < kLooks.size(); ++i) {
      std::string& line = i < 4 ? first : second;
      line += "  " + cell(report::kShownStates[i]) + " " + std::string{kLooks[i].meaning};
    }
    return first + "\n" + second + "\n";
  }

 private:
  bool colour_;
};

// The label in front of a row: the date, and the chart's number for a chart job.
std::string label(std::string_view date, std::size_t chart, std::size_t charts) {
  std::string text{date};
  if (charts > 1) {
    const std::string number = std::to_string(chart + 1);
    text += " " + std::string(std::to_string(charts).size() - number.size(), ' ') + number;
  }
  return text + " ";
}

std::size_t charts_of(const report::JobView& view) {
  const auto* chart = std::get_if<config::ChartJob>(&view.job->settings);
  return chart == nullptr ? 1 : std::max<std::size_t>(1, chart->charts.size());
}

// An hourly job: a ruler of hours, then a line per day (and chart).
void hourly_rows(const report::JobView& view, const Grid& grid, std::ostream& out) {
  const std::size_t charts = charts_of(view);
  const std::string pad(label("0000-00-00", 0, charts).size(), ' ');
  std::string ruler = pad;
  for (int hour = 0; hour < 24; hour += 3) {
    ruler += (hour < 10 ? "0" : "") + std::to_string(hour) + "    ";
  }
  out << ruler.substr(0, ruler.find_last_not_of(' ') + 1) << "  (Beijing hour)\n";
  for (const report::DayView& day : view.days) {
    for (std::size_t chart = 0; chart < charts; ++chart) {
      std::string line = label(day.date, chart, charts);
      for (std::size_t i = chart; i < day.cells.size(); i += charts) {
        line += grid.cell(day.cells[i].state) + " ";
      }
      out << line.substr(0, line.size() - 1) << "\n";
    }
  }
}

// A daily job: a line per week (and chart), the ruler giving each cell's day of month.
void daily_rows(const report::JobView& view, const Grid& grid, std::ostream& out) {
  const std::size_t charts = charts_of(view);
  const std::string pad(label("0000-00-00", 0, charts).size(), ' ');
  for (std::size_t first = 0; first < view.days.size(); first += kDaysPerRow) {
    const std::size_t last = std::min(first + kDaysPerRow, view.days.size());
    std::string ruler = pad;
    for (std::size_t day = first; day < last; ++day) {
      ruler += view.days[day].date.substr(8, 2) + " ";
    }
    out << ruler.substr(0, ruler.size() - 1) << "\n";
    for (std::size_t chart = 0; chart < charts; ++chart) {
      std::string line = label(view.days[first].date, chart, charts);
      for (std::size_t day = first; day < last; ++day) {
        const auto& cells = view.days[day].cells;
        line += grid.cell(chart < cells.size() ? cells[chart].state : "not_ready") + "  ";
      }
      out << line.substr(0, line.size() - 2) << "\n";
    }
  }
}

void job_header(const report::JobView& view, Instant now, std::ostream& out) {
  const config::Job& job = *view.job;
  out << fit("job " + job.name + " (" + std::string{to_string(job.granularity)} +
             (job.sink.empty() ? "" : ", sink " + job.sink) + ")")
      << "\n";
  const std::chrono::seconds in = std::max(view.next.at - now, std::chrono::seconds{0});
  out << fit("  next ask " + format_utc(view.next.at) + " (slot " + view.next.slot + ", in " +
             report::format_in(in) + ")")
      << "\n";
  std::string counts = " ";
  for (std::size_t i = 0; i < report::kShownStates.size(); ++i) {
    if (view.counts[i] > 0) {
      counts += " " + std::string{kLooks[i].meaning} + " " + std::to_string(view.counts[i]) + ",";
    }
  }
  out << fit(counts.substr(0, counts.size() - 1)) << "\n";
  const auto* chart = std::get_if<config::ChartJob>(&job.settings);
  if (chart != nullptr && chart->charts.size() > 1) {
    std::string names = "  charts:";
    for (std::size_t i = 0; i < chart->charts.size(); ++i) {
      names += " " + std::to_string(i + 1) + "=" + chart->charts[i];
    }
    out << fit(names) << "\n";
  }
}

// The failed and lost cells, most urgent first (the attention order), with why and how
// long the vendor still keeps them.
void problems(const report::JobView& view, const Grid& grid, std::ostream& out) {
  std::size_t shown = 0, more = 0;
  for (const report::SlotView& cell : view.attention) {
    if (cell.state != "failed" && cell.state != "lost") {
      continue;
    }
    if (shown == kListed) {
      ++more;
      continue;
    }
    ++shown;
    std::string text = " " + cell.slot + (cell.chart ? " " + *cell.chart : "") + " " +
                       std::string{cell.state} +
                       " left=" + report::format_left(std::chrono::seconds{cell.seconds_left}) +
                       (cell.last_error.empty() ? "" : ": " + cell.last_error);
    out << "  " << grid.cell(cell.state) << fit(text, kWidth - 3) << "\n";
  }
  if (more > 0) {
    out << "    ... and " << more << " more (gio-exporter gaps --job " << view.job->name << ")\n";
  }
}

}  // namespace

int calendar(const config::Config& config, const std::optional<std::string>& job, int days,
             bool as_json) {
  state::StateStore store = open_for_reading(config);
  const Instant now = command_clock().now();
  const Slot from = Slot::containing(now - std::chrono::days{days - 1}, Granularity::day);
  const report::SlotQuery query{
      .job = job, .from = from.name(), .to = Slot::containing(now, Granularity::day).name()};
  if (as_json) {
    std::cout << boost::json::serialize(report::slots_json(config, store, now, query)) << "\n";
    return 0;
  }
  const Grid grid{use_colour()};
  std::cout << grid.legend();
  for (const report::JobView& view : report::view(config, store, now, query)) {
    std::cout << "\n";
    job_header(view, now, std::cout);
    if (view.job->granularity == Granularity::hour) {
      hourly_rows(view, grid, std::cout);
    } else {
      daily_rows(view, grid, std::cout);
    }
    problems(view, grid, std::cout);
  }
  return 0;
}

}  // namespace gio::cli
