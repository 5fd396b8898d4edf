// YAML to a validated Config: the top level of the file and its small sections (http,
// limits, metrics, log). Projects and jobs are read in parse_projects.cpp and
// parse_jobs.cpp, with the shared readers of parse_values.cpp (parse_support.hpp).

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <sstream>

#include "config/parse_support.hpp"

namespace gio::config {

using namespace parsing;

namespace {

namespace fs = std::filesystem;

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

// http://[user:password@]host[:port][/], "http://" optional as for curl: what the http
// module's parse_proxy takes (config cannot call it: http is above config).
bool is_proxy_url(std::string_view url) {
  if (std::any_of(url.begin(), url.end(), [](char c) {
        return static_cast<unsigned char>(c) <= ' ' || c == 0x7f || c == '?' || c == '#';
      })) {
    return false;
  }
  if (const auto scheme_end = url.find("://"); scheme_end != std::string_view::npos) {
    std::string scheme{url.substr(0, scheme_end)};
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (scheme != "http") {
      return false;
    }
    url.remove_prefix(scheme_end + 3);
  }
  const auto slash = url.find('/');
  if (slash != std::string_view::npos && slash + 1 != url.size()) {
    return false;  // a path
  }
  std::string_view authority = url.substr(0, slash);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos || close == 1) {
      return false;
    }
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      return false;
    }
    port = rest.empty() ? rest : rest.substr(1);
  } else {
    const auto colon = authority.find(':');
    if (colon == 0 || authority.empty() || authority.find('[') != std::string_view::npos) {
      return false;
    }
    port = colon == std::string_view::npos ? std::string_view{} : authority.substr(colon + 1);
    if (colon != std::string_view::npos && port.find(':') != std::string_view::npos) {
      return false;
    }
    if (colon != std::string_view::npos && port.empty()) {
      return false;
    }
  }
  if (port.empty()) {
    return true;
  }
  int number = 0;
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), number);
  return error == std::errc{} && end == port.data() + port.size() && number >= 1 && number <= 65535;
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

class Parser {
 public:
  Parser(const fs::path& path, SecretMode secrets, Reporter& reporter) : reporter_(reporter) {
    config_.secrets = secrets;
    std::error_code error;
    config_.source = fs::absolute(path, error).lexically_normal();
    if (error) {
      config_.source = path;
    }
    base_ = config_.source.parent_path();
  }

  void read(const YAML::Node& root);
  Config take() { return std::move(config_); }

 private:
  void read_umask(const Entry& entry);
  void check_state_db_place(const MapReader& map);
  void read_http(const YAML::Node& node);
  void read_limits(const YAML::Node& node);
  void read_metrics(const YAML::Node& node);
  void read_log(const YAML::Node& node);

  Reporter& reporter_;
  fs::path base_;
  Config config_;
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
  const MapReader map(root, "the config file", keys::kTopLevel, reporter_);
  if (const Entry* entry = map.find("state_db")) {
    if (auto path = read_path(*entry, base_, reporter_)) {
      config_.state_db = *path;
      config_.state_db_place = place_of(entry->value_mark());
    }
  }
  if (const Entry* entry = map.find("archive_dir")) {
    if (auto path = read_path(*entry, base_, reporter_)) {
      config_.archive_dir = *path;
      config_.archive_dir_place = place_of(entry->value_mark());
    }
  }
  check_state_db_place(map);
  if (const Entry* entry = map.find("archive_umask")) {
    read_umask(*entry);
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
  auto projects =
      read_projects(map.find("projects"), map.mark(), base_, config_.secrets, reporter_);
  auto sinks = read_sinks(map.find("sinks"), base_, reporter_);
  config_.jobs = read_jobs(map.find("jobs"), map.mark(), projects, sinks, reporter_);
  if (projects) {
    config_.projects = std::move(*projects);
  }
  if (sinks) {
    config_.sinks = std::move(*sinks);
  }
}

// A database inside the archive is lost to the archive's own housekeeping (each start
// empties .staging) and is read by Hive-style readers as data: refused, naming both.
void Parser::check_state_db_place(const MapReader& map) {
  if (!is_inside(config_.state_db, config_.archive_dir)) {
    return;
  }
  const Entry* entry = map.find("state_db");
  if (entry == nullptr) {
    entry = map.find("archive_dir");
  }
  reporter_.add(entry != nullptr ? entry->value_mark() : map.mark(),
                "state_db " + config_.state_db.string() + " is inside the archive " +
                    config_.archive_dir.string() +
                    " (each start empties its .staging folder, and readers take its files as "
                    "data); put the database outside archive_dir, e.g. beside it");
}

void Parser::read_umask(const Entry& entry) {
  if (auto text = read_string(entry, reporter_)) {
    const bool octal = text->size() >= 3 && text->size() <= 4 &&
                       text->find_first_not_of("01234567") == std::string::npos;
    const unsigned value = octal ? static_cast<unsigned>(std::stoul(*text, nullptr, 8)) : 0;
    if (!octal || value > 0777) {
      reporter_.add(entry.value_mark(),
                    "'archive_umask' must be an octal umask such as 0027, not " + *text);
    } else if ((value & 0700) != 0) {
      reporter_.add(entry.value_mark(),
                    "'archive_umask' " + *text +
                        " would take the owner's own access to the archive away; the first "
                        "octal digit after 0 must be 0, as in 0027");
    } else {
      config_.archive_umask = value;
    }
  }
}

void Parser::read_http(const YAML::Node& node) {
  const MapReader map(node, "http", keys::kHttp, reporter_);
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
  if (const Entry* entry = map.find("proxy")) {
    if (auto text = read_string(*entry, reporter_, /*allow_empty=*/true)) {
      if (text->empty() || is_proxy_url(*text)) {
        config_.http.proxy = Secret{*text};
      } else {
        // Not echoed: it may hold the proxy's password.
        reporter_.add(entry->value_mark(),
                      "'proxy' must be an http:// URL such as http://proxy.corp:3128, with "
                      "user:password@ before the host when the proxy asks for credentials, or "
                      "\"\" for no proxy");
      }
    }
  }
  if (const Entry* entry = map.find("no_proxy")) {
    if (auto text = read_string(*entry, reporter_, /*allow_empty=*/true)) {
      config_.http.no_proxy = *text;
    }
  }
  if (const Entry* entry = map.find("allow_private_links")) {
    if (auto text = read_string(*entry, reporter_)) {
      if (*text == "true" || *text == "false") {
        config_.http.allow_private_links = *text == "true";
      } else {
        reporter_.add(entry->value_mark(), "'allow_private_links' must be true or false");
      }
    }
  }
}

void Parser::read_limits(const YAML::Node& node) {
  const MapReader map(node, "limits", keys::kLimits, reporter_);
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
  if (const Entry* entry = map.find("max_part_size")) {
    if (auto bytes = read_size(*entry, reporter_, kMinMaxPartSize, kMaxMaxPartSize)) {
      config_.limits.max_part_size = *bytes;
    }
  }
}

void Parser::read_metrics(const YAML::Node& node) {
  const MapReader map(node, "metrics", keys::kMetrics, reporter_);
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
  const MapReader map(node, "log", keys::kLog, reporter_);
  if (const Entry* entry = map.find("level")) {
    if (auto text = read_string(*entry, reporter_)) {
      // The log lines say level=warning: that spelling is accepted for warn.
      if (*text == "warning") {
        text = "warn";
      }
      if (std::find(std::begin(kLogLevels), std::end(kLogLevels), *text) != std::end(kLogLevels)) {
        config_.log.level = *text;
      } else {
        reporter_.add(entry->value_mark(),
                      "unknown log level " + in_quotes(*text) +
                          unknown_note(*text, kLogLevels, "one of: " + join(kLogLevels)));
      }
    }
  }
  if (const Entry* entry = map.find("format")) {
    if (auto text = read_string(*entry, reporter_)) {
      if (std::find(std::begin(kLogFormats), std::end(kLogFormats), *text) !=
          std::end(kLogFormats)) {
        config_.log.format = *text;
      } else {
        reporter_.add(entry->value_mark(),
                      "unknown log format " + in_quotes(*text) +
                          unknown_note(*text, kLogFormats, "one of: " + join(kLogFormats)));
      }
    }
  }
}

}  // namespace

LoadResult parse_config(std::string_view yaml_text, const std::filesystem::path& path,
                        SecretMode secrets) {
  Reporter reporter(path.string());
  Parser parser(path, secrets, reporter);
  const std::string text{yaml_text};
  const SyntaxCheck syntax = check_syntax(text);
  if (syntax.error) {
    // What follows a syntax error or an unclosed quote cannot be read as it was meant,
    // so this is the only problem shown.
    reporter.add(syntax.error->mark, syntax.error->message);
  } else {
    if (syntax.second_document) {
      reporter.add(*syntax.second_document,
                   "a config file holds one YAML document; this is a second");
    }
    try {
      parser.read(YAML::Load(text));
    } catch (const YAML::Exception& error) {
      const SyntaxProblem problem = explain_yaml_error(text, error);
      reporter.add(problem.mark, problem.message);
    }
  }
  LoadResult result;
  if (reporter.empty()) {
    result.config = parser.take();
  }
  result.problems = reporter.take_in_file_order();
  result.warnings = reporter.take_warnings();
  return result;
}

LoadResult load_config(const std::filesystem::path& path, SecretMode secrets) {
  FileText file = read_file(path, std::numeric_limits<std::size_t>::max());
  if (!file.error.empty()) {
    LoadResult result;
    result.problems.push_back({path.string(), 0, 0, "cannot read the config file: " + file.error});
    return result;
  }
  return parse_config(file.text, path, secrets);
}

}  // namespace gio::config
