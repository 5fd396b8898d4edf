#include "config/config.hpp"

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <stdexcept>

namespace gio::config {

namespace {

// The absolute path with the symlinks of its existing parts resolved; as written (made
// absolute) when even that fails (a part that cannot be searched).
std::filesystem::path resolved(const std::filesystem::path& path) {
  std::error_code error;
  std::filesystem::path out = std::filesystem::weakly_canonical(path, error);
  if (error) {
    out = std::filesystem::absolute(path, error).lexically_normal();
  }
  if (!out.has_filename() && out.has_parent_path() && out != out.root_path()) {
    out = out.parent_path();  // "/a/b/" -> "/a/b"
  }
  return out;
}

}  // namespace

bool is_inside(const std::filesystem::path& path, const std::filesystem::path& folder) {
  const std::filesystem::path inner = resolved(path);
  const std::filesystem::path outer = resolved(folder);
  auto in = inner.begin();
  for (const std::filesystem::path& part : outer) {
    if (in == inner.end() || *in != part) {
      return false;
    }
    ++in;
  }
  return true;
}

std::string_view kind_name(const Job& job) {
  return std::visit(Overloaded{[](const RawJob&) { return std::string_view{"raw"}; },
                               [](const ChartJob&) { return std::string_view{"chart"}; },
                               [](const UserListJob&) { return std::string_view{"chart"}; }},
                    job.settings);
}

std::string_view to_string(ChartResource resource) {
  switch (resource) {
    case ChartResource::charts:
      return "charts";
    case ChartResource::funnels:
      return "funnels";
    case ChartResource::retentions:
      return "retentions";
    case ChartResource::frequencies:
      return "frequencies";
    case ChartResource::segmentations:
      return "segmentations";
    case ChartResource::tags:
      return "tags";
  }
  return "charts";
}

Secret::Secret(std::string value) : value_(std::move(value)) {}

const std::string& Secret::reveal() const {
  return value_;
}

bool Secret::empty() const {
  return value_.empty();
}

const Project& Config::project_of(const Job& job) const {
  for (const Project& project : projects) {
    if (project.name == job.project) {
      return project;
    }
  }
  // Loading guarantees the project exists; getting here means a hand-built Config.
  throw std::logic_error("job " + job.name + " names unknown project " + job.project);
}

const Job* Config::find_job(std::string_view name) const {
  for (const Job& job : jobs) {
    if (job.name == name) {
      return &job;
    }
  }
  return nullptr;
}

const Sink* Config::sink_of(const Job& job) const {
  for (const Sink& sink : sinks) {
    if (!job.sink.empty() && sink.name == job.sink) {
      return &sink;
    }
  }
  return nullptr;
}

std::string Problem::to_string() const {
  if (line == 0) {
    return file + ": " + message;
  }
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

std::optional<Duration> parse_duration(std::string_view text) {
  if (text == "0") {
    return Duration{0};
  }
  if (text.empty()) {
    return std::nullopt;
  }
  constexpr std::string_view kUnits = "dhms";
  constexpr std::int64_t kSeconds[] = {86400, 3600, 60, 1};
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  std::int64_t total = 0;
  std::size_t next_unit = 0;  // units must come largest first, each at most once
  std::size_t i = 0;
  while (i < text.size()) {
    std::int64_t number = 0;
    const std::size_t digits_start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      const int digit = text[i] - '0';
      if (number > (kMax - digit) / 10) {
        return std::nullopt;
      }
      number = number * 10 + digit;
      ++i;
    }
    if (i == digits_start || i == text.size()) {
      return std::nullopt;  // a unit without a number, or a number without a unit
    }
    const std::size_t unit = kUnits.find(text[i], next_unit);
    if (unit == std::string_view::npos) {
      return std::nullopt;
    }
    ++i;
    next_unit = unit + 1;
    if (number > (kMax - total) / kSeconds[unit]) {
      return std::nullopt;
    }
    total += number * kSeconds[unit];
  }
  return Duration{total};
}

std::string format_duration(Duration d) {
  std::int64_t left = d.count();
  if (left == 0) {
    return "0s";
  }
  std::string out;
  if (left < 0) {
    out = "-";
    left = -left;
  }
  constexpr std::pair<std::int64_t, char> kUnits[] = {
      {86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
  for (const auto& [seconds, unit] : kUnits) {
    if (left >= seconds) {
      out += std::to_string(left / seconds);
      out += unit;
      left %= seconds;
    }
  }
  return out;
}

std::filesystem::path default_config_path() {
  const char* from_env = std::getenv("GIO_EXPORTER_CONFIG");
  if (from_env != nullptr && *from_env != '\0') {
    return from_env;
  }
  return "/etc/gio-exporter/config.yaml";
}

namespace {

std::string plural(std::size_t n, std::string_view word) {
  std::string out = std::to_string(n) + " " + std::string(word);
  if (n != 1) {
    out += "s";
  }
  return out;
}

}  // namespace

std::string summary(const Config& config) {
  // Built only from names and settings: secrets have no way into this text.
  std::string out =
      plural(config.projects.size(), "project") + ", " + plural(config.jobs.size(), "job") + " (";
  for (std::size_t i = 0; i < config.jobs.size(); ++i) {
    const Job& job = config.jobs[i];
    if (i > 0) {
      out += ", ";
    }
    out += job.name + ": " + std::string(kind_name(job)) + " " +
           std::string(gio::to_string(job.granularity)) + " of " + job.project;
    if (!job.sink.empty()) {
      out += " to sink " + job.sink;
    }
  }
  out += ")";
  // A sink by its name and keep_local only: its remote string may hold credentials.
  if (!config.sinks.empty()) {
    out += ", " + plural(config.sinks.size(), "sink") + " (";
    for (std::size_t i = 0; i < config.sinks.size(); ++i) {
      out += (i > 0 ? ", " : "") + config.sinks[i].name + ": keep_local " +
             format_duration(config.sinks[i].keep_local);
    }
    out += ")";
  }
  out += "; state_db " + config.state_db.string() + ", archive_dir " + config.archive_dir.string();
  return out;
}

}  // namespace gio::config
