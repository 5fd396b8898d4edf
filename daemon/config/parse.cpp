// YAML to a validated Config. Every check reports at the node at fault and carries
// on, so one run of check-config shows every problem in the file.
//
// Where a problem is shown: problems with a value are at the value; problems with
// a key itself (unknown, duplicate, not allowed for this kind of job, unsupported)
// are at the key; a required key that is missing is reported at its map.

#include <sys/stat.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <sstream>
#include <utility>

#include "config/config.hpp"

namespace gio::config {
namespace {

namespace fs = std::filesystem;

// A secret file larger than this is almost certainly the wrong file.
constexpr std::size_t kMaxSecretFileBytes = 64 * 1024;

class Reporter {
 public:
  explicit Reporter(std::string file) : file_(std::move(file)) {}

  // yaml-cpp marks are 0-based; a negative mark (an empty document) means the file.
  void add(const YAML::Mark& mark, std::string message) {
    if (mark.line < 0) {
      problems_.push_back({file_, 0, 0, std::move(message)});
    } else {
      problems_.push_back({file_, mark.line + 1, mark.column + 1, std::move(message)});
    }
  }

  bool empty() const { return problems_.empty(); }

  void warn(const YAML::Mark& mark, std::string message) {
    warnings_.push_back({file_, mark.line + 1, mark.column + 1, std::move(message)});
  }
  std::vector<Problem> take_warnings() { return std::move(warnings_); }

  std::vector<Problem> take_in_file_order() {
    std::stable_sort(problems_.begin(), problems_.end(), [](const Problem& a, const Problem& b) {
      return std::pair{a.line, a.column} < std::pair{b.line, b.column};
    });
    return std::move(problems_);
  }

 private:
  std::string file_;
  std::vector<Problem> problems_;
  std::vector<Problem> warnings_;
};

std::string in_quotes(std::string_view text) {
  return "'" + std::string(text) + "'";
}

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

// [A-Za-z0-9][A-Za-z0-9._-]*, at most kMaxNameLength: safe as a folder name.
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

// The whole file, or why not (never its content).
struct FileText {
  std::string text;
  std::string error;  // empty on success; else the reason, such as strerror's text
};

FileText read_file(const fs::path& path, std::size_t max_bytes) {
  std::unique_ptr<std::FILE, decltype(&std::fclose)> file(std::fopen(path.c_str(), "rb"),
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
  MapReader(const YAML::Node& map, std::string_view where,
            std::initializer_list<std::string_view> allowed, Reporter& reporter)
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
                                     " (known keys: " + join(allowed) + ")");
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

  const Entry* find(std::string_view name) const {
    for (const Entry& entry : entries_) {
      if (entry.name == name) {
        return &entry;
      }
    }
    return nullptr;
  }

  // Where the map starts: the place for "missing key" problems.
  const YAML::Mark& mark() const { return mark_; }

 private:
  YAML::Mark mark_;
  std::vector<Entry> entries_;
};

// --- Readers for one value. Each reports its own problem and returns nullopt. ---

std::optional<std::string> read_string(const Entry& entry, Reporter& reporter,
                                       bool allow_empty = false) {
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
                                      Duration max, std::string_view why = {}) {
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
  reporter.add(entry.value_mark(),
               "unknown " + entry.name + " " + in_quotes(*text) + " (one of: " + join(names) + ")");
  return std::nullopt;
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

// Relative paths are anchored at the config file's folder, not at the daemon's
// working directory, so that the file means the same thing wherever it is run from.
std::optional<fs::path> read_path(const Entry& entry, const fs::path& base, Reporter& reporter,
                                  bool allow_empty = false) {
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

bool is_section(const Entry& entry, Reporter& reporter) {
  if (entry.value.IsMap() || entry.value.IsNull()) {
    return true;
  }
  reporter.add(entry.value_mark(),
               in_quotes(entry.name) + " must be a map of settings, not " + describe(entry.value));
  return false;
}

// Only what the rest of the daemon needs: a scheme it speaks, a host, and no query
// (a query could carry a credential into logs, and the API paths are appended).
bool is_api_base(std::string_view url) {
  std::size_t rest = 0;
  const auto starts_with_nocase = [&](std::string_view prefix) {
    if (url.size() < prefix.size()) {
      return false;
    }
    for (std::size_t i = 0; i < prefix.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(url[i])) != prefix[i]) {
        return false;
      }
    }
    return true;
  };
  if (starts_with_nocase("https://")) {
    rest = 8;
  } else if (starts_with_nocase("http://")) {
    rest = 7;
  } else {
    return false;
  }
  const std::string_view after = url.substr(rest);
  const std::string_view host = after.substr(0, after.find('/'));
  if (host.empty() || host.front() == ':' || host.find('@') != std::string_view::npos) {
    return false;
  }
  return std::none_of(url.begin(), url.end(), [](char c) {
    return c == '?' || c == '#' || static_cast<unsigned char>(c) <= ' ' || c == 0x7f;
  });
}

// host:port, or [v6-address]:port.
bool is_listen_address(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) {
      return false;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return false;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return false;  // an IPv6 address needs brackets
    }
  }
  if (host.empty() || std::any_of(host.begin(), host.end(), [](char c) {
        return static_cast<unsigned char>(c) <= ' ' || c == '/' || c == '[' || c == ']';
      })) {
    return false;
  }
  int number = 0;
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), number);
  return error == std::errc{} && end == port.data() + port.size() && number >= 1 && number <= 65535;
}

// --- The document ---

struct JobNotes {
  std::optional<YAML::Mark> project;  // the value naming the project
};

constexpr Choice<JobKind> kKinds[] = {{"raw", JobKind::raw}, {"chart", JobKind::chart}};
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

class Parser {
 public:
  Parser(const fs::path& path, Reporter& reporter) : reporter_(reporter) {
    std::error_code error;
    config_.source = fs::absolute(path, error).lexically_normal();
    if (error) {
      config_.source = path;
    }
    base_ = config_.source.parent_path();
  }

  void read(const YAML::Node& root);
  Config take() { return std::move(config_); }

  const std::vector<JobNotes>& job_notes() const { return job_notes_; }

 private:
  void read_http(const YAML::Node& node);
  void read_limits(const YAML::Node& node);
  void read_metrics(const YAML::Node& node);
  void read_log(const YAML::Node& node);
  void read_projects(const Entry* entry, const YAML::Mark& root);
  void read_jobs(const Entry* entry, const YAML::Mark& root);
  Project read_project(const YAML::Node& node);
  Auth read_auth(const Entry& entry);
  std::optional<Secret> read_secret_file(const Entry& entry, std::string_view what);
  std::optional<Secret> read_secret_env(const Entry& entry, std::string_view what);
  std::optional<Secret> read_secret_credential(const Entry& entry, std::string_view what);
  Job read_job(const YAML::Node& node, JobNotes& notes);
  void read_data_types(const Entry& entry, Job& job);
  void read_charts(const Entry& entry, Job& job);
  void read_chart_resource(const MapReader& map, Job& job);
  void check_job_projects();

  Reporter& reporter_;
  fs::path base_;
  Config config_;
  std::vector<JobNotes> job_notes_;
  bool projects_read_ = false;  // there was a list of projects to check jobs against
};

void Parser::read(const YAML::Node& root) {
  if (root.IsNull()) {
    reporter_.add(root.Mark(), "the config file is empty; it needs at least projects and jobs");
    return;
  }
  if (!root.IsMap()) {
    reporter_.add(root.Mark(), "the config file must be a map of settings, not " + describe(root));
    return;
  }
  const MapReader map(root, "the config file",
                      {"state_db", "archive_dir", "archive_umask", "http", "limits", "metrics",
                       "log", "projects", "jobs"},
                      reporter_);
  if (const Entry* entry = map.find("state_db")) {
    if (auto path = read_path(*entry, base_, reporter_)) {
      config_.state_db = *path;
    }
  }
  if (const Entry* entry = map.find("archive_dir")) {
    if (auto path = read_path(*entry, base_, reporter_)) {
      config_.archive_dir = *path;
    }
  }
  if (const Entry* entry = map.find("archive_umask")) {
    if (auto text = read_string(*entry, reporter_)) {
      const bool octal = text->size() >= 3 && text->size() <= 4 &&
                         text->find_first_not_of("01234567") == std::string::npos;
      const unsigned value = octal ? static_cast<unsigned>(std::stoul(*text, nullptr, 8)) : 0;
      if (!octal || value > 0777) {
        reporter_.add(entry->value_mark(),
                      "'archive_umask' must be an octal umask such as 0027, not " + *text);
      } else if ((value & 0700) != 0) {
        reporter_.add(entry->value_mark(),
                      "'archive_umask' " + *text +
                          " would take the owner's own access to the archive away; the first "
                          "octal digit after 0 must be 0, as in 0027");
      } else {
        config_.archive_umask = value;
      }
    }
  }
  if (const Entry* entry = map.find("http"); entry && is_section(*entry, reporter_)) {
    read_http(entry->value);
  }
  if (const Entry* entry = map.find("limits"); entry && is_section(*entry, reporter_)) {
    read_limits(entry->value);
  }
  if (const Entry* entry = map.find("metrics"); entry && is_section(*entry, reporter_)) {
    read_metrics(entry->value);
  }
  if (const Entry* entry = map.find("log"); entry && is_section(*entry, reporter_)) {
    read_log(entry->value);
  }
  read_projects(map.find("projects"), map.mark());
  read_jobs(map.find("jobs"), map.mark());
  check_job_projects();
}

void Parser::read_http(const YAML::Node& node) {
  const MapReader map(node, "http", {"api_base", "timeout", "ca_file"}, reporter_);
  if (const Entry* entry = map.find("api_base")) {
    if (auto text = read_string(*entry, reporter_)) {
      if (is_api_base(*text)) {
        // The API paths are appended to it, each starting with '/'.
        while (text->back() == '/') {
          text->pop_back();
        }
        config_.http.api_base = *text;
      } else {
        // Not echoed: a malformed URL might carry a credential in its query.
        reporter_.add(entry->value_mark(),
                      "'api_base' must be an http:// or https:// URL with a host and without a "
                      "query or fragment, such as https://www.growingio.com");
      }
    }
  }
  if (const Entry* entry = map.find("timeout")) {
    if (auto timeout = read_duration(*entry, reporter_, kMinTimeout, kMaxTimeout)) {
      config_.http.timeout = *timeout;
    }
  }
  if (const Entry* entry = map.find("ca_file")) {
    if (auto path = read_path(*entry, base_, reporter_, /*allow_empty=*/true)) {
      config_.http.ca_file = *path;
    }
  }
}

void Parser::read_limits(const YAML::Node& node) {
  const MapReader map(node, "limits", {"api_requests_per_second", "parallel_downloads"}, reporter_);
  if (const Entry* entry = map.find("api_requests_per_second")) {
    if (auto rate = read_rate(*entry, reporter_, kMaxApiRequestsPerSecond)) {
      config_.limits.api_requests_per_second = *rate;
    }
  }
  if (const Entry* entry = map.find("parallel_downloads")) {
    if (auto n = read_int(*entry, reporter_, kMinParallelDownloads, kMaxParallelDownloads)) {
      config_.limits.parallel_downloads = *n;
    }
  }
}

void Parser::read_metrics(const YAML::Node& node) {
  const MapReader map(node, "metrics", {"listen"}, reporter_);
  if (const Entry* entry = map.find("listen")) {
    if (auto text = read_string(*entry, reporter_, /*allow_empty=*/true)) {
      if (text->empty() || is_listen_address(*text)) {
        config_.metrics.listen = *text;
      } else {
        reporter_.add(entry->value_mark(),
                      "'listen' must be host:port (such as 127.0.0.1:9464 "
                      "or [::1]:9464), or \"\" to turn metrics off, not " +
                          in_quotes(*text));
      }
    }
  }
}

void Parser::read_log(const YAML::Node& node) {
  const MapReader map(node, "log", {"level", "format"}, reporter_);
  if (const Entry* entry = map.find("level")) {
    if (auto text = read_string(*entry, reporter_)) {
      if (std::find(std::begin(kLogLevels), std::end(kLogLevels), *text) != std::end(kLogLevels)) {
        config_.log.level = *text;
      } else {
        reporter_.add(entry->value_mark(), "unknown log level " + in_quotes(*text) +
                                               " (one of: " + join(kLogLevels) + ")");
      }
    }
  }
  if (const Entry* entry = map.find("format")) {
    if (auto text = read_string(*entry, reporter_)) {
      if (std::find(std::begin(kLogFormats), std::end(kLogFormats), *text) !=
          std::end(kLogFormats)) {
        config_.log.format = *text;
      } else {
        reporter_.add(entry->value_mark(), "unknown log format " + in_quotes(*text) +
                                               " (one of: " + join(kLogFormats) + ")");
      }
    }
  }
}

void Parser::read_projects(const Entry* entry, const YAML::Mark& root) {
  if (entry == nullptr) {
    reporter_.add(root, "'projects' is missing; at least one project is needed");
    return;
  }
  if (!entry->value.IsSequence() || entry->value.size() == 0) {
    reporter_.add(entry->value_mark(), "'projects' must be a list of at least one project, not " +
                                           describe(entry->value));
    return;
  }
  projects_read_ = true;
  for (const YAML::Node& node : entry->value) {
    Project project = read_project(node);
    config_.projects.push_back(std::move(project));
  }
}

Project Parser::read_project(const YAML::Node& node) {
  Project project;
  if (!node.IsMap()) {
    reporter_.add(node.Mark(), "a project must be a map with name, ai, project_uid and auth, not " +
                                   describe(node));
    return project;
  }
  const MapReader map(node, "a project", {"name", "ai", "project_uid", "auth"}, reporter_);
  if (const Entry* entry = map.find("name")) {
    if (auto name = read_string(*entry, reporter_)) {
      project.name = *name;
      if (!is_folder_name(*name)) {
        reporter_.add(entry->value_mark(),
                      "project name " + in_quotes(*name) + " must be 1 to " +
                          std::to_string(kMaxNameLength) +
                          " letters, digits, '.', '_' or '-', starting with a letter or digit");
      }
      for (const Project& other : config_.projects) {
        if (other.name == *name) {
          reporter_.add(entry->value_mark(), "duplicate project name " + in_quotes(*name));
          break;
        }
      }
    }
  } else {
    reporter_.add(map.mark(), "this project has no 'name'");
  }
  for (const auto& [key, field] :
       {std::pair{"ai", &project.ai}, std::pair{"project_uid", &project.project_uid}}) {
    if (const Entry* entry = map.find(key)) {
      if (auto text = read_string(*entry, reporter_)) {
        *field = *text;
        if (!is_alnum_id(*text)) {
          reporter_.add(
              entry->value_mark(),
              in_quotes(key) + " must be letters and digits only, not " + in_quotes(*text));
        }
      }
    } else {
      reporter_.add(map.mark(), "this project has no " + in_quotes(key));
    }
  }
  if (const Entry* entry = map.find("auth")) {
    project.auth = read_auth(*entry);
  } else {
    reporter_.add(map.mark(), "this project has no 'auth' (token_file or token_env)");
  }
  return project;
}

Auth Parser::read_auth(const Entry& auth_entry) {
  Auth auth;
  if (!auth_entry.value.IsMap()) {
    reporter_.add(
        auth_entry.value_mark(),
        "'auth' must be a map with token_file or token_env, not " + describe(auth_entry.value));
    return auth;
  }
  const MapReader map(auth_entry.value, "auth",
                      {"token_file", "token_env", "token_credential", "client_id",
                       "private_key_file", "private_key_env", "private_key_credential"},
                      reporter_);
  const Entry* token_file = map.find("token_file");
  const Entry* token_env = map.find("token_env");
  const Entry* token_credential = map.find("token_credential");
  const Entry* client_id = map.find("client_id");
  const Entry* key_file = map.find("private_key_file");
  const Entry* key_env = map.find("private_key_env");
  const Entry* key_credential = map.find("private_key_credential");

  // Exactly one way in: a token from one source, or a client_id with a key from one source.
  const auto one_source = [this](std::initializer_list<const Entry*> sources,
                                 std::string_view names) {
    const Entry* first = nullptr;
    for (const Entry* source : sources) {
      if (source == nullptr) {
        continue;
      }
      if (first != nullptr) {
        reporter_.add(source->key.Mark(), "use one of " + std::string{names} + ", not several");
        return first;
      }
      first = source;
    }
    return first;
  };
  const Entry* token_source = one_source({token_file, token_env, token_credential},
                                         "token_file, token_env, token_credential");
  const Entry* key_source = one_source({key_file, key_env, key_credential},
                                       "private_key_file, private_key_env, private_key_credential");
  const bool has_token = token_source != nullptr;
  const bool has_key = key_source != nullptr;
  if (has_token && (client_id || has_key)) {
    const Entry* signed_code = client_id ? client_id : key_source;
    reporter_.add(signed_code->key.Mark(),
                  "a token and signed-code auth (client_id, private_key_*) exclude each other");
  }
  if (!has_token && !client_id && !has_key) {
    reporter_.add(map.mark(), "'auth' needs token_file or token_env");
  }
  if (client_id && !has_key) {
    reporter_.add(client_id->key.Mark(), "client_id needs private_key_file or private_key_env");
  }
  if (has_key && !client_id) {
    reporter_.add(key_source->key.Mark(),
                  "a private key needs client_id (the matching public key)");
  }

  if (token_file) {
    auth.token = read_secret_file(*token_file, "token").value_or(Secret{});
  } else if (token_env) {
    auth.token = read_secret_env(*token_env, "token").value_or(Secret{});
  } else if (token_credential) {
    auth.token = read_secret_credential(*token_credential, "token").value_or(Secret{});
  }
  if (client_id) {
    if (auto text = read_string(*client_id, reporter_)) {
      auth.client_id = *text;
    }
  }
  if (key_file) {
    auth.private_key = read_secret_file(*key_file, "private key").value_or(Secret{});
  } else if (key_env) {
    auth.private_key = read_secret_env(*key_env, "private key").value_or(Secret{});
  } else if (key_credential) {
    auth.private_key = read_secret_credential(*key_credential, "private key").value_or(Secret{});
  }
  return auth;
}

std::optional<Secret> Parser::read_secret_credential(const Entry& entry, std::string_view what) {
  const auto name = read_string(entry, reporter_);
  if (!name) {
    return std::nullopt;
  }
  if (name->empty() || *name == "." || *name == ".." ||
      name->find_first_of(std::string_view{"/\0", 2}) != std::string::npos) {
    reporter_.add(entry.value_mark(),
                  "a credential name is a file name (no '/'), not " + in_quotes(*name));
    return std::nullopt;
  }
  // systemd's LoadCredential=/SetCredential= put each credential in a private folder
  // readable by the service alone, and name that folder here.
  const char* folder = std::getenv("CREDENTIALS_DIRECTORY");
  if (folder == nullptr || *folder == '\0') {
    reporter_.add(entry.value_mark(),
                  "credential " + in_quotes(*name) + " (the " + std::string(what) +
                      "): $CREDENTIALS_DIRECTORY is not set; systemd sets it for a unit with "
                      "LoadCredential=" +
                      *name + ":/path/to/file");
    return std::nullopt;
  }
  const std::filesystem::path path = std::filesystem::path{folder} / *name;
  FileText file = read_file(path, kMaxSecretFileBytes);
  std::string secret = file.error.empty() ? trim(file.text) : std::string{};
  if (secret.empty()) {
    reporter_.add(entry.value_mark(), "credential " + in_quotes(*name) + " (the " +
                                          std::string(what) + ") at " + path.string() + ": " +
                                          (file.error.empty() ? "empty" : file.error));
    return std::nullopt;
  }
  return Secret{std::move(secret)};
}

std::optional<Secret> Parser::read_secret_file(const Entry& entry, std::string_view what) {
  const auto path = read_path(entry, base_, reporter_);
  if (!path) {
    return std::nullopt;
  }
  FileText file = read_file(*path, kMaxSecretFileBytes);
  if (!file.error.empty()) {
    reporter_.add(entry.value_mark(), "cannot read the " + std::string(what) + " file " +
                                          path->string() + ": " + file.error);
    return std::nullopt;
  }
  std::string secret = trim(file.text);
  if (secret.empty()) {
    reporter_.add(entry.value_mark(),
                  "the " + std::string(what) + " file " + path->string() + " is empty");
    return std::nullopt;
  }
  // Anyone else who can read it holds the project's credential.
  struct stat info {};
  if (::stat(path->c_str(), &info) == 0 && (info.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
    reporter_.warn(entry.value_mark(), "the " + std::string(what) + " file " + path->string() +
                                           " is open to group or others (mode " + mode +
                                           "); make it readable by its owner only: chmod 600 " +
                                           path->string());
  }
  return Secret{std::move(secret)};
}

std::optional<Secret> Parser::read_secret_env(const Entry& entry, std::string_view what) {
  const auto name = read_string(entry, reporter_);
  if (!name) {
    return std::nullopt;
  }
  const char* value = std::getenv(name->c_str());
  std::string secret = value ? trim(value) : std::string{};
  if (secret.empty()) {
    reporter_.add(entry.value_mark(), "the environment variable " + *name + " (the " +
                                          std::string(what) + ") is " +
                                          (value ? "empty" : "not set"));
    return std::nullopt;
  }
  return Secret{std::move(secret)};
}

void Parser::read_jobs(const Entry* entry, const YAML::Mark& root) {
  if (entry == nullptr) {
    reporter_.add(root, "'jobs' is missing; at least one job is needed");
    return;
  }
  if (!entry->value.IsSequence() || entry->value.size() == 0) {
    reporter_.add(entry->value_mark(),
                  "'jobs' must be a list of at least one job, not " + describe(entry->value));
    return;
  }
  for (const YAML::Node& node : entry->value) {
    JobNotes notes;
    Job job = read_job(node, notes);
    config_.jobs.push_back(std::move(job));
    job_notes_.push_back(notes);
  }
}

Job Parser::read_job(const YAML::Node& node, JobNotes& notes) {
  Job job;
  if (!node.IsMap()) {
    reporter_.add(node.Mark(),
                  "a job must be a map with at least name and project, not " + describe(node));
    return job;
  }
  const MapReader map(node, "a job",
                      {"name",
                       "project",
                       "kind",
                       "granularity",
                       "data_types",
                       "ready_after",
                       "poll_every",
                       "give_up_after",
                       "not_exists_grace",
                       "backfill",
                       "link_expire",
                       "verify",
                       "charts",
                       "interval",
                       "resource",
                       "conversion_window",
                       "range",
                       "parameters",
                       "on_slot_done",
                       "on_slot_failed",
                       "on_slot_at_risk",
                       "hook_timeout"},
                      reporter_);
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
      for (const Job& other : config_.jobs) {
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
    if (auto project = read_string(*entry, reporter_)) {
      job.project = *project;
      notes.project = entry->value_mark();
    }
  } else {
    reporter_.add(map.mark(), "this job has no 'project'");
  }

  std::optional<JobKind> kind = JobKind::raw;
  if (const Entry* entry = map.find("kind")) {
    kind = read_choice<JobKind>(*entry, reporter_, kKinds);
  }
  job.kind = kind.value_or(JobKind::raw);
  if (const Entry* entry = map.find("granularity")) {
    job.granularity =
        read_choice<Granularity>(*entry, reporter_, kGranularities).value_or(Granularity::hour);
  }
  if (const Entry* entry = map.find("verify")) {
    job.verify = read_choice<archive::VerifyMode>(*entry, reporter_, kVerifyModes)
                     .value_or(archive::VerifyMode::gzip);
  }

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
  for (const auto& [key, command] : {std::pair{"on_slot_done", &job.hooks.on_slot_done},
                                     std::pair{"on_slot_failed", &job.hooks.on_slot_failed},
                                     std::pair{"on_slot_at_risk", &job.hooks.on_slot_at_risk}}) {
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
  if (const Entry* entry = map.find("data_types")) {
    read_data_types(*entry, job);
  }
  if (const Entry* entry = map.find("charts")) {
    read_charts(*entry, job);
  }
  if (const Entry* entry = map.find("interval")) {
    if (auto interval = read_duration(*entry, reporter_, Duration{0}, Duration::max())) {
      if (std::find(std::begin(kChartIntervals), std::end(kChartIntervals), *interval) ==
          std::end(kChartIntervals)) {
        reporter_.add(entry->value_mark(),
                      "'interval' must be one of 1h, 1d, 7d, 30d (the chart API's intervals), "
                      "not " +
                          entry->value.Scalar());
      } else {
        job.interval = *interval;
      }
    }
  }

  if (kind != JobKind::raw) {
    read_chart_resource(map, job);
  }

  // Keys that belong to the other kind of job; skipped when the kind itself is wrong.
  if (kind == JobKind::raw) {
    for (const char* key :
         {"charts", "interval", "resource", "conversion_window", "range", "parameters"}) {
      if (const Entry* entry = map.find(key)) {
        reporter_.add(entry->key.Mark(),
                      in_quotes(key) + " is only for chart jobs (kind: chart); this job is raw");
      }
    }
  } else if (kind == JobKind::chart) {
    if (const Entry* entry = map.find("data_types")) {
      reporter_.add(entry->key.Mark(),
                    "'data_types' is only for raw jobs; this job is a chart job");
    }
    if (!map.find("charts")) {
      reporter_.add(map.mark(), "a chart job needs 'charts', a list of chart ids");
    }
  }
  return job;
}

void Parser::read_data_types(const Entry& entry, Job& job) {
  if (entry.value.IsScalar() && entry.value.Scalar() == "all") {
    job.data_types.clear();
    return;
  }
  if (!entry.value.IsSequence() || entry.value.size() == 0) {
    reporter_.add(
        entry.value_mark(),
        "'data_types' must be all or a non-empty list such as [visit, page], not " +
            (entry.value.IsScalar() ? in_quotes(entry.value.Scalar()) : describe(entry.value)));
    return;
  }
  for (const YAML::Node& item : entry.value) {
    if (!item.IsScalar()) {
      reporter_.add(item.Mark(), "a data type must be a single name, not " + describe(item));
      continue;
    }
    const std::string& type = item.Scalar();
    if (std::find(std::begin(kDataTypes), std::end(kDataTypes), type) == std::end(kDataTypes)) {
      reporter_.add(item.Mark(),
                    "unknown data type " + in_quotes(type) + " (known: " + join(kDataTypes) + ")");
    } else if (std::find(job.data_types.begin(), job.data_types.end(), type) !=
               job.data_types.end()) {
      reporter_.add(item.Mark(), "data type " + in_quotes(type) + " is listed twice");
    } else {
      job.data_types.push_back(type);
    }
  }
}

void Parser::read_charts(const Entry& entry, Job& job) {
  if (!entry.value.IsSequence() || entry.value.size() == 0) {
    reporter_.add(entry.value_mark(),
                  "'charts' must be a non-empty list of chart ids, not " + describe(entry.value));
    return;
  }
  for (const YAML::Node& item : entry.value) {
    // Chart ids become folder names in the archive.
    if (!item.IsScalar() || !is_folder_name(item.Scalar())) {
      reporter_.add(item.Mark(), "a chart id must be letters, digits, '.', '_' or '-', not " +
                                     (item.IsScalar() ? in_quotes(item.Scalar()) : describe(item)));
    } else if (std::find(job.charts.begin(), job.charts.end(), item.Scalar()) != job.charts.end()) {
      reporter_.add(item.Mark(), "chart " + in_quotes(item.Scalar()) + " is listed twice");
    } else {
      job.charts.push_back(item.Scalar());
    }
  }
}

// `resource` and the extra query keys each analysis takes. A key meant for another
// resource is an error rather than ignored: the user expects it to shape the result.
void Parser::read_chart_resource(const MapReader& map, Job& job) {
  std::optional<ChartResource> resource = ChartResource::charts;
  if (const Entry* entry = map.find("resource")) {
    resource = read_choice<ChartResource>(*entry, reporter_, kChartResources);
    job.resource = resource.value_or(ChartResource::charts);
  }
  if (const Entry* entry = map.find("conversion_window")) {
    if (resource && resource != ChartResource::funnels) {
      reporter_.add(entry->key.Mark(), "'conversion_window' is only for resource: funnels");
    } else if (auto window =
                   read_duration(*entry, reporter_, std::chrono::days{1}, kMaxConversionWindow)) {
      if (window->count() % 86400 != 0) {
        reporter_.add(entry->value_mark(),
                      "'conversion_window' must be whole days (the API takes days), not " +
                          format_duration(*window));
      } else {
        job.conversion_window = std::chrono::duration_cast<std::chrono::days>(*window);
      }
    }
  }
  if (const Entry* entry = map.find("range")) {
    if (resource && resource != ChartResource::retentions) {
      reporter_.add(entry->key.Mark(), "'range' is only for resource: retentions");
    } else if (auto range = read_string(*entry, reporter_)) {
      // Passed into the query string as it is, so only characters that need no escaping.
      const bool plain =
          range->size() <= kMaxRangeLength && std::all_of(range->begin(), range->end(), [](char c) {
            return is_alnum(c) || c == '.' || c == '_' || c == '-' || c == ',';
          });
      if (!plain) {
        reporter_.add(entry->value_mark(),
                      "'range' must be 1 to " + std::to_string(kMaxRangeLength) +
                          " letters, digits, '.', '_', '-' or ',', not " + in_quotes(*range));
      } else {
        job.range = *range;
      }
    }
  }
  const bool user_list = resource && is_user_list(*resource);
  if (const Entry* entry = map.find("parameters")) {
    if (resource && !user_list) {
      reporter_.add(entry->key.Mark(), "'parameters' is only for resource: segmentations or tags");
    } else if (auto parameters = read_string(*entry, reporter_)) {
      if (parameters->empty() || parameters->size() > kMaxParametersLength) {
        reporter_.add(entry->value_mark(), "'parameters' must be 1 to " +
                                               std::to_string(kMaxParametersLength) + " bytes");
      } else {
        job.parameters = *parameters;  // percent-encoded when sent
      }
    }
  }
  if (user_list) {
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
  }
}

void Parser::check_job_projects() {
  if (!projects_read_) {
    return;  // every job would be "unknown project": noise after the real problem
  }
  for (std::size_t i = 0; i < config_.jobs.size(); ++i) {
    const Job& job = config_.jobs[i];
    if (!job_notes_[i].project) {
      continue;
    }
    const bool known = std::any_of(config_.projects.begin(), config_.projects.end(),
                                   [&](const Project& p) { return p.name == job.project; });
    if (!known) {
      reporter_.add(*job_notes_[i].project,
                    "unknown project " + in_quotes(job.project) + " (not in 'projects')");
    }
  }
}

}  // namespace

// Where a second YAML document starts, if there is one. yaml-cpp 0.7's LoadAll can
// loop until memory runs out on some malformed input (found by fuzzing: a 16-byte
// file), so documents are counted with the event parser, which is asked for two at
// most, and only the first is loaded.
std::optional<YAML::Mark> second_document(const std::string& text) {
  class DocumentStarts final : public YAML::EventHandler {
   public:
    std::vector<YAML::Mark> marks;
    void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  } starts;
  std::istringstream input{text};
  YAML::Parser events{input};
  if (events.HandleNextDocument(starts) && events.HandleNextDocument(starts) &&
      starts.marks.size() > 1) {
    return starts.marks[1];
  }
  return std::nullopt;
}

LoadResult parse_config(std::string_view yaml_text, const std::filesystem::path& path) {
  Reporter reporter(path.string());
  Parser parser(path, reporter);
  try {
    const std::string text{yaml_text};
    if (const auto second = second_document(text)) {
      reporter.add(*second, "a config file holds one YAML document; this is a second");
    }
    parser.read(YAML::Load(text));
  } catch (const YAML::Exception& error) {
    // A syntax error: yaml-cpp stops there, so this is the only problem it can show.
    reporter.add(error.mark, error.msg);
  }
  LoadResult result;
  if (reporter.empty()) {
    result.config = parser.take();
  }
  result.problems = reporter.take_in_file_order();
  result.warnings = reporter.take_warnings();
  return result;
}

LoadResult load_config(const std::filesystem::path& path) {
  FileText file = read_file(path, std::numeric_limits<std::size_t>::max());
  if (!file.error.empty()) {
    LoadResult result;
    result.problems.push_back({path.string(), 0, 0, "cannot read the config file: " + file.error});
    return result;
  }
  return parse_config(file.text, path);
}

}  // namespace gio::config
