// Problem reporting, map reading and the readers of one value, shared by the readers of
// each part of the config file (parse_support.hpp).

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "config/parse_support.hpp"

namespace gio::config::parsing {

namespace fs = std::filesystem;

void Reporter::add(const YAML::Mark& mark, std::string message) {
  if (mark.line < 0) {
    problems_.push_back({file_, 0, 0, std::move(message)});
  } else {
    problems_.push_back({file_, mark.line + 1, mark.column + 1, std::move(message)});
  }
}

void Reporter::warn(const YAML::Mark& mark, std::string message) {
  warnings_.push_back({file_, mark.line + 1, mark.column + 1, std::move(message)});
}

std::vector<Problem> Reporter::take_in_file_order() {
  std::stable_sort(problems_.begin(), problems_.end(), [](const Problem& a, const Problem& b) {
    return std::pair{a.line, a.column} < std::pair{b.line, b.column};
  });
  return std::move(problems_);
}

std::string in_quotes(std::string_view text) {
  return "'" + std::string(text) + "'";
}

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

// Edits (insert, delete, replace, swap two neighbours) from a to b: the optimal string
// alignment form of Damerau-Levenshtein, where swapped letters count as one typo.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) {
    d[i][0] = i;
  }
  for (std::size_t j = 0; j <= b.size(); ++j) {
    d[0][j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// A known name of at least this many letters that starts the word, or that the word
// starts, is suggested however long the rest: `pageview` means `page`.
constexpr std::size_t kMinPrefix = 4;
// Longer words are never names here; the table above would only cost time.
constexpr std::size_t kMaxSuggestedLength = 64;

}  // namespace

std::optional<std::string_view> nearest(std::string_view word,
                                        std::span<const std::string_view> known) {
  if (word.empty() || word.size() > kMaxSuggestedLength) {
    return std::nullopt;
  }
  const std::string typed = lower(word);
  const std::size_t limit = std::max<std::size_t>(1, typed.size() / 3);
  std::optional<std::string_view> best;
  std::size_t best_distance = 0;
  for (const std::string_view name : known) {
    const std::string candidate = lower(name);
    const std::size_t distance = edit_distance(typed, candidate);
    const std::size_t shorter = std::min(typed.size(), candidate.size());
    const bool prefix = shorter >= kMinPrefix && (typed.starts_with(candidate.substr(0, shorter)) &&
                                                  candidate.starts_with(typed.substr(0, shorter)));
    if ((distance <= limit || prefix) && (!best || distance < best_distance)) {
      best = name;
      best_distance = distance;
    }
  }
  return best;
}

std::string unknown_note(std::string_view word, std::span<const std::string_view> known,
                         std::string_view note) {
  std::string inside;
  if (const auto suggestion = nearest(word, known)) {
    inside = "did you mean " + in_quotes(*suggestion) + "?";
  }
  if (!note.empty()) {
    inside += (inside.empty() ? "" : " ") + std::string(note);
  }
  return inside.empty() ? std::string{} : " (" + inside + ")";
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return node.size() == 0 ? "an empty list" : "a list";
    case YAML::NodeType::Scalar:
      return "a single value";
    default:
      return "empty";
  }
}

std::string trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n\v\f";
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) {
    return {};
  }
  const auto last = text.find_last_not_of(kSpace);
  return std::string(text.substr(first, last - first + 1));
}

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool is_folder_name(std::string_view text) {
  if (text.empty() || text.size() > kMaxNameLength || !is_alnum(text.front())) {
    return false;
  }
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return is_alnum(c) || c == '.' || c == '_' || c == '-'; });
}

bool is_alnum_id(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), is_alnum);
}

FileText read_file(const fs::path& path, std::size_t max_bytes) {
  // "e": O_CLOEXEC, so that a hook started meanwhile does not inherit it.
  std::unique_ptr<std::FILE, decltype(&std::fclose)> file(std::fopen(path.c_str(), "rbe"),
                                                          &std::fclose);
  if (!file) {
    return {{}, std::strerror(errno)};
  }
  FileText out;
  char buffer[8192];
  while (true) {
    const std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get());
    out.text.append(buffer, n);
    if (out.text.size() > max_bytes) {
      return {{},
              "larger than " + std::to_string(max_bytes / 1024) + " KiB; is it the right file?"};
    }
    if (n < sizeof buffer) {
      break;
    }
  }
  if (std::ferror(file.get())) {
    return {{}, std::strerror(errno)};
  }
  return out;
}

MapReader::MapReader(const YAML::Node& map, std::string_view where, keys::List allowed,
                     Reporter& reporter)
    : mark_(map.Mark()) {
  if (!map.IsMap()) {
    return;  // an empty section: every key takes its default
  }
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      reporter.add(key.Mark(), "a key in " + std::string(where) + " must be a plain name, not " +
                                   describe(key));
      continue;
    }
    const std::string name = key.Scalar();
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      reporter.add(key.Mark(), "unknown key " + in_quotes(name) + " in " + std::string(where) +
                                   unknown_note(name, {allowed.begin(), allowed.size()},
                                                "known keys: " + join(allowed)));
      continue;
    }
    if (const Entry* first = find(name)) {
      reporter.add(key.Mark(), "duplicate key " + in_quotes(name) + " (first at line " +
                                   std::to_string(first->key.Mark().line + 1) + ")");
      continue;
    }
    entries_.push_back({name, key, it->second});
  }
}

const Entry* MapReader::find(std::string_view name) const {
  for (const Entry& entry : entries_) {
    if (entry.name == name) {
      return &entry;
    }
  }
  return nullptr;
}

bool is_section(const Entry& entry, Reporter& reporter) {
  if (entry.value.IsMap() || entry.value.IsNull()) {
    return true;
  }
  reporter.add(entry.value_mark(),
               in_quotes(entry.name) + " must be a map of settings, not " + describe(entry.value));
  return false;
}

std::optional<std::string> read_string(const Entry& entry, Reporter& reporter, bool allow_empty) {
  if (entry.value.IsNull()) {
    if (allow_empty) {
      return std::string{};
    }
    reporter.add(entry.value_mark(), in_quotes(entry.name) + " needs a value");
    return std::nullopt;
  }
  if (!entry.value.IsScalar()) {
    reporter.add(entry.value_mark(),
                 in_quotes(entry.name) + " must be a single value, not " + describe(entry.value));
    return std::nullopt;
  }
  if (entry.value.Scalar().empty() && !allow_empty) {
    reporter.add(entry.value_mark(), in_quotes(entry.name) + " must not be empty");
    return std::nullopt;
  }
  return entry.value.Scalar();
}

std::optional<Duration> read_duration(const Entry& entry, Reporter& reporter, Duration min,
                                      Duration max, std::string_view why) {
  const auto text = read_string(entry, reporter);
  if (!text) {
    return std::nullopt;
  }
  const auto duration = parse_duration(*text);
  if (!duration) {
    reporter.add(entry.value_mark(), in_quotes(entry.name) +
                                         " is not a duration: " + in_quotes(*text) +
                                         " (write it like 90s, 5m, 1h30m or 15d)");
    return std::nullopt;
  }
  if (*duration < min || *duration > max) {
    std::string message =
        max == Duration::max()
            ? in_quotes(entry.name) + " must be at least " + format_duration(min) + ", not " + *text
            : in_quotes(entry.name) + " must be between " + format_duration(min) + " and " +
                  format_duration(max) + ", not " + *text;
    if (!why.empty()) {
      message += " (" + std::string(why) + ")";
    }
    reporter.add(entry.value_mark(), std::move(message));
    return std::nullopt;
  }
  return duration;
}

std::optional<int> read_int(const Entry& entry, Reporter& reporter, int min, int max) {
  const auto text = read_string(entry, reporter);
  if (!text) {
    return std::nullopt;
  }
  int value = 0;
  const auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (error != std::errc{} || end != text->data() + text->size()) {
    reporter.add(entry.value_mark(),
                 in_quotes(entry.name) + " must be a whole number, not " + in_quotes(*text));
    return std::nullopt;
  }
  if (value < min || value > max) {
    reporter.add(entry.value_mark(), in_quotes(entry.name) + " must be between " +
                                         std::to_string(min) + " and " + std::to_string(max) +
                                         ", not " + *text);
    return std::nullopt;
  }
  return value;
}

std::optional<double> read_rate(const Entry& entry, Reporter& reporter, double max) {
  const auto text = read_string(entry, reporter);
  if (!text) {
    return std::nullopt;
  }
  double value = 0;
  const auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (error != std::errc{} || end != text->data() + text->size()) {
    reporter.add(entry.value_mark(),
                 in_quotes(entry.name) + " must be a number, not " + in_quotes(*text));
    return std::nullopt;
  }
  // Written so that NaN fails too.
  if (!(value > 0 && value <= max)) {
    reporter.add(entry.value_mark(), in_quotes(entry.name) + " must be more than 0 and at most " +
                                         std::to_string(static_cast<int>(max)) + ", not " + *text);
    return std::nullopt;
  }
  return value;
}

namespace {

struct SizeUnit {
  std::string_view name;
  std::uint64_t bytes;
};
constexpr SizeUnit kSizeUnits[] = {{"TiB", 1ull << 40},
                                   {"GiB", 1ull << 30},
                                   {"MiB", 1ull << 20},
                                   {"KiB", 1ull << 10},
                                   {"TB", 1'000'000'000'000ull},
                                   {"GB", 1'000'000'000ull},
                                   {"MB", 1'000'000ull},
                                   {"KB", 1'000ull},
                                   {"B", 1}};

// 1073741824 -> "1GiB": the largest binary unit that divides it.
std::string size_text(std::uint64_t bytes) {
  for (const SizeUnit& unit : kSizeUnits) {
    if (unit.name.ends_with("iB") && bytes != 0 && bytes % unit.bytes == 0) {
      return std::to_string(bytes / unit.bytes) + std::string{unit.name};
    }
  }
  return std::to_string(bytes);
}

}  // namespace

std::optional<std::uint64_t> read_size(const Entry& entry, Reporter& reporter, std::uint64_t min,
                                       std::uint64_t max) {
  const auto text = read_string(entry, reporter);
  if (!text) {
    return std::nullopt;
  }
  std::uint64_t number = 0;
  const char* first = text->data();
  const char* last = text->data() + text->size();
  const auto [end, error] = std::from_chars(first, last, number);
  std::uint64_t scale = end == last ? 1 : 0;
  for (const SizeUnit& unit : kSizeUnits) {
    if (scale == 0 && std::string_view{end, last} == unit.name) {
      scale = unit.bytes;
    }
  }
  if (error != std::errc{} || end == first || scale == 0 ||
      number > std::numeric_limits<std::uint64_t>::max() / scale) {
    reporter.add(entry.value_mark(), in_quotes(entry.name) +
                                         " must be a size such as 1GiB, 512MiB or 1048576 "
                                         "(bytes), not " +
                                         in_quotes(*text));
    return std::nullopt;
  }
  const std::uint64_t bytes = number * scale;
  if (bytes < min || bytes > max) {
    reporter.add(entry.value_mark(), in_quotes(entry.name) + " must be between " + size_text(min) +
                                         " and " + size_text(max) + ", not " + *text);
    return std::nullopt;
  }
  return bytes;
}

// Relative paths are anchored at the config file's folder, not at the daemon's
// working directory, so that the file means the same thing wherever it is run from.
std::optional<fs::path> read_path(const Entry& entry, const fs::path& base, Reporter& reporter,
                                  bool allow_empty) {
  const auto text = read_string(entry, reporter, allow_empty);
  if (!text) {
    return std::nullopt;
  }
  if (text->empty()) {
    return fs::path{};
  }
  const fs::path path{*text};
  return (path.is_absolute() ? path : base / path).lexically_normal();
}

}  // namespace gio::config::parsing
