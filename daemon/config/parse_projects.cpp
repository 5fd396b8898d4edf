// The `projects:` list: names, ids and each project's credentials (read here, from a file,
// the environment or a systemd credential, and never quoted in a message; in skip mode
// only their sources are checked).

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

#include "config/parse_support.hpp"

namespace gio::config::parsing {
namespace {

namespace fs = std::filesystem;

// A secret file larger than this is almost certainly the wrong file.
constexpr std::size_t kMaxSecretFileBytes = 64 * 1024;

// Where a project's credentials come from: at most one source of each, checked before
// any is read.
struct AuthSources {
  const Entry* token = nullptr;  // token_file, token_env or token_credential
  const Entry* client_id = nullptr;
  const Entry* key = nullptr;  // private_key_file, private_key_env or private_key_credential
};

class ProjectReader {
 public:
  ProjectReader(const fs::path& base, SecretMode mode, Reporter& reporter)
      : base_(base), mode_(mode), reporter_(reporter) {}

  // `earlier` are the projects before this one (names must differ).
  Project read_project(const YAML::Node& node, const std::vector<Project>& earlier);

 private:
  Auth read_auth(const Entry& entry);
  AuthSources pick_auth_sources(const MapReader& map);
  const Entry* one_source(std::initializer_list<const Entry*> sources, std::string_view names);
  // Reads nothing in skip mode; reports its own problems.
  void read_secret_key(const Entry& entry, std::string_view what, Secret& secret,
                       SecretSource& source);
  std::optional<SecretSource> read_source(const Entry& entry);
  std::optional<Secret> read_secret(const SecretSource& source, const Entry& entry,
                                    std::string_view what);
  std::optional<Secret> read_secret_file(const fs::path& path, const Entry& entry,
                                         std::string_view what);
  std::optional<Secret> read_secret_env(const std::string& name, const Entry& entry,
                                        std::string_view what);
  std::optional<Secret> read_secret_credential(const std::string& name, const Entry& entry,
                                               std::string_view what);

  const fs::path& base_;
  SecretMode mode_;
  Reporter& reporter_;
};

Project ProjectReader::read_project(const YAML::Node& node, const std::vector<Project>& earlier) {
  Project project;
  if (!node.IsMap()) {
    reporter_.add(node.Mark(), "a project must be a map with name, ai, project_uid and auth, not " +
                                   describe(node));
    return project;
  }
  const MapReader map(node, "a project", keys::kProject, reporter_);
  if (const Entry* entry = map.find("name")) {
    if (auto name = read_string(*entry, reporter_)) {
      project.name = *name;
      if (!is_folder_name(*name)) {
        reporter_.add(entry->value_mark(),
                      "project name " + in_quotes(*name) + " must be 1 to " +
                          std::to_string(kMaxNameLength) +
                          " letters, digits, '.', '_' or '-', starting with a letter or digit");
      }
      for (const Project& other : earlier) {
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

Auth ProjectReader::read_auth(const Entry& auth_entry) {
  Auth auth;
  if (!auth_entry.value.IsMap()) {
    reporter_.add(
        auth_entry.value_mark(),
        "'auth' must be a map with token_file or token_env, not " + describe(auth_entry.value));
    return auth;
  }
  const MapReader map(auth_entry.value, "auth", keys::kAuth, reporter_);
  const AuthSources sources = pick_auth_sources(map);
  if (sources.token) {
    read_secret_key(*sources.token, "token", auth.token, auth.token_source);
  }
  if (sources.client_id) {
    if (auto text = read_string(*sources.client_id, reporter_)) {
      auth.client_id = *text;
    }
  }
  if (sources.key) {
    read_secret_key(*sources.key, "private key", auth.private_key, auth.private_key_source);
  }
  return auth;
}

void ProjectReader::read_secret_key(const Entry& entry, std::string_view what, Secret& secret,
                                    SecretSource& source) {
  auto checked = read_source(entry);
  if (!checked) {
    return;
  }
  source = std::move(*checked);
  if (mode_ == SecretMode::load) {
    secret = read_secret(source, entry, what).value_or(Secret{});
  }
}

// Exactly one way in: a token from one source, or a client_id with a key from one source.
AuthSources ProjectReader::pick_auth_sources(const MapReader& map) {
  AuthSources sources;
  sources.token =
      one_source({map.find("token_file"), map.find("token_env"), map.find("token_credential")},
                 "token_file, token_env, token_credential");
  sources.client_id = map.find("client_id");
  sources.key = one_source({map.find("private_key_file"), map.find("private_key_env"),
                            map.find("private_key_credential")},
                           "private_key_file, private_key_env, private_key_credential");
  if (sources.token && (sources.client_id || sources.key)) {
    const Entry* signed_code = sources.client_id ? sources.client_id : sources.key;
    reporter_.add(signed_code->key.Mark(),
                  "a token and signed-code auth (client_id, private_key_*) exclude each other");
  }
  if (!sources.token && !sources.client_id && !sources.key) {
    reporter_.add(map.mark(), "'auth' needs token_file or token_env");
  }
  if (sources.client_id && !sources.key) {
    reporter_.add(sources.client_id->key.Mark(),
                  "client_id needs private_key_file or private_key_env");
  }
  if (sources.key && !sources.client_id) {
    reporter_.add(sources.key->key.Mark(),
                  "a private key needs client_id (the matching public key)");
  }
  return sources;
}

// The first of `sources` that is set; a second one is a problem at its key.
const Entry* ProjectReader::one_source(std::initializer_list<const Entry*> sources,
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
}

// `entry` is one of the *_file, *_env or *_credential keys: where its secret is, checked
// as far as can be without reading it.
std::optional<SecretSource> ProjectReader::read_source(const Entry& entry) {
  SecretSource source;
  source.key = entry.name;
  source.place = place_of(entry.value_mark());
  if (entry.name.ends_with("_file")) {
    const auto path = read_path(entry, base_, reporter_);
    if (!path) {
      return std::nullopt;
    }
    source.kind = SecretSource::Kind::file;
    source.name = path->string();
    return source;
  }
  const auto name = read_string(entry, reporter_);
  if (!name) {
    return std::nullopt;
  }
  source.name = *name;
  if (entry.name.ends_with("_env")) {
    source.kind = SecretSource::Kind::env;
    if (name->empty() || name->find_first_of(std::string_view{"=\0", 2}) != std::string::npos) {
      reporter_.add(
          entry.value_mark(),
          in_quotes(entry.name) + " must name an environment variable, not " + in_quotes(*name));
      return std::nullopt;
    }
    return source;
  }
  source.kind = SecretSource::Kind::credential;
  if (name->empty() || *name == "." || *name == ".." ||
      name->find_first_of(std::string_view{"/\0", 2}) != std::string::npos) {
    reporter_.add(entry.value_mark(),
                  "a credential name is a file name (no '/'), not " + in_quotes(*name));
    return std::nullopt;
  }
  return source;
}

std::optional<Secret> ProjectReader::read_secret(const SecretSource& source, const Entry& entry,
                                                 std::string_view what) {
  switch (source.kind) {
    case SecretSource::Kind::file:
      return read_secret_file(source.name, entry, what);
    case SecretSource::Kind::env:
      return read_secret_env(source.name, entry, what);
    case SecretSource::Kind::credential:
      return read_secret_credential(source.name, entry, what);
    case SecretSource::Kind::none:
      break;
  }
  return std::nullopt;
}

std::optional<Secret> ProjectReader::read_secret_credential(const std::string& name,
                                                            const Entry& entry,
                                                            std::string_view what) {
  // systemd's LoadCredential=/SetCredential= put each credential in a private folder
  // readable by the service alone, and name that folder here.
  const char* folder = std::getenv("CREDENTIALS_DIRECTORY");
  if (folder == nullptr || *folder == '\0') {
    reporter_.add(entry.value_mark(),
                  "credential " + in_quotes(name) + " (the " + std::string(what) +
                      "): $CREDENTIALS_DIRECTORY is not set; systemd sets it for a unit with "
                      "LoadCredential=" +
                      name + ":/path/to/file (from a shell: check-config --no-secrets)");
    return std::nullopt;
  }
  const fs::path path = fs::path{folder} / name;
  FileText file = read_file(path, kMaxSecretFileBytes);
  std::string secret = file.error.empty() ? trim(file.text) : std::string{};
  if (secret.empty()) {
    reporter_.add(entry.value_mark(), "credential " + in_quotes(name) + " (the " +
                                          std::string(what) + ") at " + path.string() + ": " +
                                          (file.error.empty() ? "empty" : file.error));
    return std::nullopt;
  }
  return Secret{std::move(secret)};
}

std::optional<Secret> ProjectReader::read_secret_file(const fs::path& path, const Entry& entry,
                                                      std::string_view what) {
  FileText file = read_file(path, kMaxSecretFileBytes);
  if (!file.error.empty()) {
    reporter_.add(entry.value_mark(), "cannot read the " + std::string(what) + " file " +
                                          path.string() + ": " + file.error);
    return std::nullopt;
  }
  std::string secret = trim(file.text);
  if (secret.empty()) {
    reporter_.add(entry.value_mark(),
                  "the " + std::string(what) + " file " + path.string() + " is empty");
    return std::nullopt;
  }
  // Anyone else who can read it holds the project's credential.
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && (info.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
    reporter_.warn(entry.value_mark(), "the " + std::string(what) + " file " + path.string() +
                                           " is open to group or others (mode " + mode +
                                           "); make it readable by its owner only: chmod 600 " +
                                           path.string());
  }
  return Secret{std::move(secret)};
}

std::optional<Secret> ProjectReader::read_secret_env(const std::string& name, const Entry& entry,
                                                     std::string_view what) {
  const char* value = std::getenv(name.c_str());
  std::string secret = value ? trim(value) : std::string{};
  if (secret.empty()) {
    reporter_.add(entry.value_mark(), "the environment variable " + name + " (the " +
                                          std::string(what) + ") is " +
                                          (value ? "empty" : "not set"));
    return std::nullopt;
  }
  return Secret{std::move(secret)};
}

}  // namespace

std::optional<std::vector<Project>> read_projects(const Entry* entry, const YAML::Mark& root,
                                                  const fs::path& base, SecretMode secrets,
                                                  Reporter& reporter) {
  if (entry == nullptr) {
    reporter.add(root, "'projects' is missing; at least one project is needed");
    return std::nullopt;
  }
  if (!entry->value.IsSequence() || entry->value.size() == 0) {
    reporter.add(entry->value_mark(), "'projects' must be a list of at least one project, not " +
                                          describe(entry->value));
    return std::nullopt;
  }
  ProjectReader reader(base, secrets, reporter);
  std::vector<Project> projects;
  for (const YAML::Node& node : entry->value) {
    Project project = reader.read_project(node, projects);
    projects.push_back(std::move(project));
  }
  return projects;
}

}  // namespace gio::config::parsing
