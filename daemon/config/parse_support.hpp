#pragma once

// What the parse_*.cpp files share, and nothing outside daemon/config/ includes: problem
// reporting, reading one YAML map against its allowed keys, the readers of one value, and
// the readers of the two lists (projects, jobs) that parse.cpp calls.
//
// Where a problem is shown: problems with a value are at the value; problems with a key
// itself (unknown, duplicate, not allowed for this kind of job, unsupported) are at the
// key; a required key that is missing is reported at its map. Every reader reports its
// own problem and carries on (it returns nullopt or the default), so one run of
// check-config shows every problem in the file.

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "config/keys.hpp"

namespace gio::config::parsing {

class Reporter {
 public:
  explicit Reporter(std::string file) : file_(std::move(file)) {}

  // yaml-cpp marks are 0-based; a negative mark (an empty document) means the file.
  void add(const YAML::Mark& mark, std::string message);
  void warn(const YAML::Mark& mark, std::string message);

  bool empty() const { return problems_.empty(); }
  std::vector<Problem> take_in_file_order();
  std::vector<Problem> take_warnings() { return std::move(warnings_); }

 private:
  std::string file_;
  std::vector<Problem> problems_;
  std::vector<Problem> warnings_;
};

// A yaml-cpp mark (0-based) as a Place (1-based).
inline Place place_of(const YAML::Mark& mark) {
  return mark.line < 0 ? Place{} : Place{mark.line + 1, mark.column + 1};
}

// --- Text helpers for messages and names ---

std::string in_quotes(std::string_view text);

template <typename Range>
std::string join(const Range& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) {
      out += ", ";
    }
    out += item;
  }
  return out;
}

// The known name nearest to a misspelt `word`, when one is close enough to suggest:
// within a Damerau-Levenshtein distance of a third of its length (at least 1, case
// ignored), or one that starts the other (`pageview` for `page`). The one place that
// suggests, for every unknown key and every value of a closed set.
std::optional<std::string_view> nearest(std::string_view word,
                                        std::span<const std::string_view> known);
// " (did you mean 'x'? " + note + ")", or " (" + note + ")" without a suggestion; no
// parentheses at all when both are empty.
std::string unknown_note(std::string_view word, std::span<const std::string_view> known,
                         std::string_view note);

// "a map", "a list", "a single value"...: what the user wrote instead.
std::string describe(const YAML::Node& node);
std::string trim(std::string_view text);
bool is_alnum(char c);
// [A-Za-z0-9][A-Za-z0-9._-]*, at most kMaxNameLength: safe as a folder name.
bool is_folder_name(std::string_view text);
bool is_alnum_id(std::string_view text);

// The whole file, or why not (never its content).
struct FileText {
  std::string text;
  std::string error;  // empty on success; else the reason, such as strerror's text
};
FileText read_file(const std::filesystem::path& path, std::size_t max_bytes);

// --- Maps ---

// One `key: value` of a map.
struct Entry {
  std::string name;
  YAML::Node key;
  YAML::Node value;

  // yaml-cpp places an empty value at the start of the next line, so point at
  // the key instead.
  YAML::Mark value_mark() const { return value.IsNull() ? key.Mark() : value.Mark(); }
};

// The entries of one YAML map, checked against the keys allowed there.
class MapReader {
 public:
  MapReader(const YAML::Node& map, std::string_view where, keys::List allowed, Reporter& reporter);

  const Entry* find(std::string_view name) const;
  // Where the map starts: the place for "missing key" problems.
  const YAML::Mark& mark() const { return mark_; }

 private:
  YAML::Mark mark_;
  std::vector<Entry> entries_;
};

// True for a map or an empty value (every key takes its default); reports anything else.
bool is_section(const Entry& entry, Reporter& reporter);

// --- Readers for one value. Each reports its own problem and returns nullopt. ---

std::optional<std::string> read_string(const Entry& entry, Reporter& reporter,
                                       bool allow_empty = false);
// `why` is added to the out-of-range message.
std::optional<Duration> read_duration(const Entry& entry, Reporter& reporter, Duration min,
                                      Duration max, std::string_view why = {});
std::optional<int> read_int(const Entry& entry, Reporter& reporter, int min, int max);
// More than 0 and at most max.
std::optional<double> read_rate(const Entry& entry, Reporter& reporter, double max);
// Bytes: a whole number, optionally with a unit (B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB
// in powers of 1000), between min and max.
std::optional<std::uint64_t> read_size(const Entry& entry, Reporter& reporter, std::uint64_t min,
                                       std::uint64_t max);
// Relative paths are anchored at `base`, the config file's folder.
std::optional<std::filesystem::path> read_path(const Entry& entry,
                                               const std::filesystem::path& base,
                                               Reporter& reporter, bool allow_empty = false);

template <typename T>
struct Choice {
  std::string_view name;
  T value;
};

template <typename T>
std::optional<T> read_choice(const Entry& entry, Reporter& reporter,
                             std::span<const Choice<T>> choices) {
  const auto text = read_string(entry, reporter);
  if (!text) {
    return std::nullopt;
  }
  std::vector<std::string_view> names;
  for (const Choice<T>& choice : choices) {
    if (choice.name == *text) {
      return choice.value;
    }
    names.push_back(choice.name);
  }
  reporter.add(entry.value_mark(), "unknown " + entry.name + " " + in_quotes(*text) +
                                       unknown_note(*text, names, "one of: " + join(names)));
  return std::nullopt;
}

// --- YAML syntax (parse_syntax.cpp) ---

// A problem of the YAML itself, in plain words, at the place the user should look.
struct SyntaxProblem {
  YAML::Mark mark;
  std::string message;
};

struct SyntaxCheck {
  std::optional<YAML::Mark> second_document;  // where a second YAML document starts
  std::optional<SyntaxProblem> error;         // a syntax error or an unclosed quote
};

// Reads the text with yaml-cpp's event parser (never YAML::Load): a clean result means
// the first document can be loaded.
SyntaxCheck check_syntax(const std::string& text);
// For an error that YAML::Load throws all the same.
SyntaxProblem explain_yaml_error(const std::string& text, const YAML::Exception& error);

// --- The lists of the document (parse_projects.cpp, parse_jobs.cpp) ---

// `entry` is the top-level `projects:` (nullptr when missing; reported at `root`).
// nullopt when there is no list to check the jobs' projects against.
// In skip mode the secrets are not read; their sources are still checked.
std::optional<std::vector<Project>> read_projects(const Entry* entry, const YAML::Mark& root,
                                                  const std::filesystem::path& base,
                                                  SecretMode secrets, Reporter& reporter);

// `entry` is the top-level `sinks:` (nullptr or empty: no sinks). nullopt when it is not
// a list, so that the jobs' sinks are not checked against it.
std::optional<std::vector<Sink>> read_sinks(const Entry* entry, const std::filesystem::path& base,
                                            Reporter& reporter);

// --- Hourly against daily (parse_reconcile.cpp) ---

// Where a job's reconcile keys are; unset when it has none.
struct ReconcileMarks {
  std::optional<YAML::Mark> with;  // the value of reconcile_with
  std::optional<YAML::Mark> any;   // the first reconcile key (for "pairs with nothing")
  bool is_chart = false;           // the keys sit on a chart job: refused there
};

// Reads reconcile_with, reconcile_tolerance and on_reconcile_mismatch into `reconcile`.
ReconcileMarks read_reconcile(const MapReader& map, Reconcile& reconcile, Reporter& reporter);
// Checks each reconcile_with against the jobs (known, daily, raw, same project), refuses
// the keys on any job but an hourly raw one, and pairs a project's one hourly raw job
// with its one daily raw job when neither names the other.
void pair_reconcile(std::vector<Job>& jobs, const std::vector<ReconcileMarks>& marks,
                    Reporter& reporter);

// `entry` is the top-level `jobs:` (nullptr when missing; reported at `root`). Each job's
// project is checked against `projects`, and its sink against `sinks`, when there is
// such a list.
std::vector<Job> read_jobs(const Entry* entry, const YAML::Mark& root,
                           const std::optional<std::vector<Project>>& projects,
                           const std::optional<std::vector<Sink>>& sinks, Reporter& reporter);

}  // namespace gio::config::parsing
