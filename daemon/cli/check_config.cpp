// check-config: the config, then what the service needs to run with it, as `nginx -t`
// checks more than syntax: the folders of state_db and archive_dir can be created and
// written, and each secret resolves. --as-user tries the files as the service's user, in
// a child process that drops to it, so that the parent's ids never change.

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>

#include "cli/commands.hpp"

namespace gio::cli {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

// The longest token or key file the parser reads (parse_projects.cpp).
constexpr std::size_t kMaxSecretFileBytes = 64 * 1024;

// One thing the service will need of the file system.
struct Check {
  enum class Kind { folder, database, secret_file };
  Kind kind;
  std::string key;  // the config key it comes from
  fs::path path;
  config::Place place;
};

std::string why(int error) {
  return std::strerror(error);
}

// Where a probe goes: a hidden name in `folder` that the daemon never uses.
std::string probe_name(const fs::path& folder) {
  return (folder / ".gio-exporter-check-XXXXXX").string();
}

// "" when the process can create and write `dir` (or it exists and is writable); else
// why not. Tried for real with a probe that is removed at once: access() says yes to
// root everywhere, even where nothing can be made (/proc).
std::string probe_folder(const fs::path& dir) {
  struct stat info {};
  if (::stat(dir.c_str(), &info) == 0) {
    if (!S_ISDIR(info.st_mode)) {
      return dir.string() + " is not a folder";
    }
    std::string probe = probe_name(dir);
    const int fd = ::mkostemp(probe.data(), O_CLOEXEC);
    if (fd < 0) {
      return "cannot write in " + dir.string() + " (" + why(errno) + ")";
    }
    ::close(fd);
    ::unlink(probe.c_str());
    return "";
  }
  if (errno != ENOENT && errno != ENOTDIR) {
    return "cannot reach " + dir.string() + " (" + why(errno) + ")";
  }
  // Missing: the daemon creates it with its parents, so the nearest existing one must
  // let a folder be made in it.
  fs::path parent = dir.parent_path();
  int found = ::stat(parent.c_str(), &info);
  while (found != 0 && (errno == ENOENT || errno == ENOTDIR) && parent != parent.parent_path()) {
    parent = parent.parent_path();
    found = ::stat(parent.c_str(), &info);
  }
  if (found != 0) {
    return "cannot create " + dir.string() + ": cannot reach " + parent.string() + " (" +
           why(errno) + ")";
  }
  if (!S_ISDIR(info.st_mode)) {
    return "cannot create " + dir.string() + ": " + parent.string() + " is not a folder";
  }
  std::string probe = probe_name(parent);
  if (::mkdtemp(probe.data()) == nullptr) {
    return "cannot create " + dir.string() + ": cannot make a folder in " + parent.string() + " (" +
           why(errno) + ")";
  }
  ::rmdir(probe.c_str());
  return "";
}

// The database file itself, when it exists, is opened as the daemon will (read-write,
// never created here).
std::string probe_database(const fs::path& path) {
  if (std::string folder = probe_folder(path.parent_path()); !folder.empty()) {
    return folder;
  }
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    return errno == ENOENT ? "" : "cannot reach it (" + why(errno) + ")";
  }
  if (!S_ISREG(info.st_mode)) {
    return "it is not a file";
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return "cannot open it for reading and writing (" + why(errno) + ")";
  }
  ::close(fd);
  return "";
}

std::string probe_secret_file(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return "cannot read it (" + why(errno) + ")";
  }
  std::string text(kMaxSecretFileBytes, '\0');
  const ssize_t got = ::read(fd, text.data(), text.size());
  const int error = errno;
  ::close(fd);
  if (got < 0) {
    return "cannot read it (" + why(error) + ")";
  }
  text.resize(static_cast<std::size_t>(got));
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return "it is empty";
  }
  return "";
}

std::string run_check(const Check& check) {
  switch (check.kind) {
    case Check::Kind::folder:
      return probe_folder(check.path);
    case Check::Kind::database:
      return probe_database(check.path);
    case Check::Kind::secret_file:
      return probe_secret_file(check.path);
  }
  return "";
}

// `files`: the token and key files too (the parser has read them already when the checks
// run as the caller).
std::vector<Check> checks_for(const config::Config& config, bool files) {
  std::vector<Check> checks{
      {Check::Kind::database, "state_db", config.state_db, config.state_db_place},
      {Check::Kind::folder, "archive_dir", config.archive_dir, config.archive_dir_place}};
  if (files) {
    for (const config::Project& project : config.projects) {
      for (const config::SecretSource* source :
           {&project.auth.token_source, &project.auth.private_key_source}) {
        if (source->kind == config::SecretSource::Kind::file) {
          checks.push_back({Check::Kind::secret_file, source->key, source->name, source->place});
        }
      }
    }
  }
  return checks;
}

// Each check's verdict ("" = fine), run by a child that has become `user`; or the reason
// the child could not become it.
struct Verdicts {
  std::vector<std::string> reasons;
  std::string error;
};

[[noreturn]] void child_checks(const passwd& user, const std::vector<Check>& checks, int out) {
  const auto say = [out](const std::string& line) {
    std::size_t done = 0;
    while (done < line.size()) {
      const ssize_t n = ::write(out, line.data() + done, line.size() - done);
      if (n <= 0) {
        return;
      }
      done += static_cast<std::size_t>(n);
    }
  };
  // Groups first: after setuid the process may no longer change them.
  if (::initgroups(user.pw_name, user.pw_gid) != 0 || ::setgid(user.pw_gid) != 0 ||
      ::setuid(user.pw_uid) != 0 || ::geteuid() != user.pw_uid) {
    say("!" + why(errno) + "\n");
    ::_exit(1);
  }
  for (std::size_t i = 0; i < checks.size(); ++i) {
    say(std::to_string(i) + " " + run_check(checks[i]) + "\n");
  }
  ::_exit(0);
}

Verdicts run_as(const passwd& user, const std::vector<Check>& checks) {
  Verdicts verdicts;
  verdicts.reasons.resize(checks.size());
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    verdicts.error = "pipe: " + why(errno);
    return verdicts;
  }
  std::cout.flush();
  std::cerr.flush();
  const pid_t child = ::fork();
  if (child < 0) {
    verdicts.error = "fork: " + why(errno);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return verdicts;
  }
  if (child == 0) {
    ::close(pipe_fds[0]);
    child_checks(user, checks, pipe_fds[1]);
  }
  ::close(pipe_fds[1]);
  std::string text;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0 || (n < 0 && errno == EINTR)) {
    text.append(buffer, static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    start = end == std::string::npos ? text.size() : end + 1;
    if (line.starts_with("!")) {
      verdicts.error = "cannot become user " + std::string{user.pw_name} + ": " + line.substr(1);
    } else if (const std::size_t space = line.find(' '); space != std::string::npos) {
      const std::size_t index = std::stoul(line.substr(0, space));
      if (index < checks.size()) {
        verdicts.reasons[index] = line.substr(space + 1);
      }
    }
  }
  if (verdicts.error.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    verdicts.error = "the check as user " + std::string{user.pw_name} + " did not finish";
  }
  return verdicts;
}

// The problems of `checks`, run as the caller or (as_user set) as that user.
std::vector<config::Problem> check_files(const std::string& file, const std::vector<Check>& checks,
                                         const std::optional<std::string>& as_user) {
  std::vector<config::Problem> problems;
  Verdicts verdicts;
  std::string suffix;
  if (as_user) {
    const passwd* user = ::getpwnam(as_user->c_str());
    if (user == nullptr) {
      return {{file, 0, 0, "--as-user: no user named " + *as_user}};
    }
    suffix = " (as user " + *as_user + ")";
    if (::geteuid() != 0 && ::geteuid() != user->pw_uid) {
      return {{file, 0, 0,
               "--as-user " + *as_user + " needs root: only root can take on another user's ids"}};
    }
    if (::geteuid() == 0) {
      verdicts = run_as(*user, checks);
      if (!verdicts.error.empty()) {
        return {{file, 0, 0, verdicts.error}};
      }
    }
  }
  if (verdicts.reasons.empty()) {  // as the caller: no other ids to take on
    for (const Check& check : checks) {
      verdicts.reasons.push_back(run_check(check));
    }
  }
  for (std::size_t i = 0; i < checks.size(); ++i) {
    if (verdicts.reasons[i].empty()) {
      continue;
    }
    const Check& check = checks[i];
    problems.push_back(
        {file, check.place.line, check.place.column,
         check.key + " " + check.path.string() + ": " + verdicts.reasons[i] + suffix});
  }
  return problems;
}

json::array to_json(const std::vector<config::Problem>& problems) {
  json::array out;
  for (const config::Problem& problem : problems) {
    out.push_back(json::object{{"file", problem.file},
                               {"line", problem.line},
                               {"column", problem.column},
                               {"message", problem.message}});
  }
  return out;
}

}  // namespace

int check_config(const fs::path& path, const CheckConfigOptions& options) {
  // A skip-mode load gives a Config to check the folders against even when a secret does
  // not resolve; a load-mode one then reads the secrets (its problems are a superset).
  config::LoadResult result = config::load_config(path, config::SecretMode::skip);
  std::optional<config::Config> config = std::move(result.config);
  if (options.secrets && config) {
    result = config::load_config(path, config::SecretMode::load);
  }
  std::vector<config::Problem> problems = std::move(result.problems);
  if (config) {
    const std::vector<Check> checks = checks_for(*config, options.secrets && options.as_user);
    for (config::Problem& problem : check_files(path.string(), checks, options.as_user)) {
      problems.push_back(std::move(problem));
    }
    // Sinks once the rest is valid: listing a remote takes a while, and a config that
    // does not load has said enough.
    if (problems.empty()) {
      for (config::Problem& problem : check_sinks(path.string(), *config, options.secrets)) {
        problems.push_back(std::move(problem));
      }
    }
  }
  // In file order, as the parser's are.
  std::stable_sort(problems.begin(), problems.end(),
                   [](const config::Problem& a, const config::Problem& b) {
                     return std::pair{a.line, a.column} < std::pair{b.line, b.column};
                   });
  const bool ok = problems.empty();
  std::string summary = ok ? config::summary(*config) : std::string{};
  if (ok && !options.secrets) {
    summary += config->sinks.empty() ? "; secrets not checked (--no-secrets)"
                                     : "; secrets and sink listings not checked (--no-secrets)";
  }
  if (ok && options.as_user) {
    summary += "; files checked as user " + *options.as_user;
  }
  if (options.json) {
    std::cout << json::serialize(
                     json::object{{"ok", ok},
                                  {"config", path.string()},
                                  {"problems", to_json(problems)},
                                  {"warnings", to_json(result.warnings)},
                                  {"summary", ok ? json::value(summary) : json::value(nullptr)},
                                  {"secrets_checked", options.secrets},
                                  {"as_user", options.as_user ? json::value(*options.as_user)
                                                              : json::value(nullptr)}})
              << "\n";
    return ok ? 0 : 1;
  }
  for (const config::Problem& problem : problems) {
    std::cerr << problem.to_string() << "\n";
  }
  for (config::Problem warning : result.warnings) {
    warning.message.insert(0, "warning: ");
    std::cerr << warning.to_string() << "\n";
  }
  if (!ok) {
    return 1;
  }
  std::cout << path.string() << ": OK: " << summary << "\n";
  return 0;
}

}  // namespace gio::cli
