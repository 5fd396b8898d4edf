#pragma once

// The daemon's configuration: YAML text in, one validated, typed value out.
//
// Loading never stops at the first mistake: every problem is reported with the
// file, line and column of the node at fault, so `check-config` can show them all
// at once. A Config exists only when there is no problem at all (a reload either
// swaps in a whole valid value or keeps the old one).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "archive/verify_mode.hpp"
#include "slot/slot.hpp"

namespace gio::config {

using Duration = std::chrono::seconds;
// The analysis a chart job exports; each is its own path below
// /v3/exporter/projects/{project_uid}/ and answers the same asynchronous way.
// segmentations and tags are user lists: their finished answer is a list of file
// links, downloaded like raw parts (see is_user_list).
enum class ChartResource { charts, funnels, retentions, frequencies, segmentations, tags };
inline bool is_user_list(ChartResource resource) {
  return resource == ChartResource::segmentations || resource == ChartResource::tags;
}

// As the API path spells it: "charts", "funnels", ...
std::string_view to_string(ChartResource resource);

// A credential read from a file or the environment (or a proxy URL, which may hold a
// password). No stream operator or formatter on purpose: the only way to the text is
// reveal().
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value);
  const std::string& reveal() const;
  bool empty() const;
  bool operator==(const Secret&) const = default;  // for "did it change" only

 private:
  std::string value_;
};

// Whether loading reads the secrets. Only commands that call the API need them (`run`);
// the others (status, gaps, verify, backfill, retry, check-config --no-secrets) skip them,
// so that they work from an admin shell that has neither the unit's credentials, nor its
// environment, nor the right to read the service user's token file.
enum class SecretMode { load, skip };

// Where a key is in the config file (1-based); line 0 when the key was not written.
struct Place {
  int line = 0;
  int column = 0;
};

// Where a secret comes from, as the config names it; kept in both modes, so that
// check-config can test it as the service's user and a skip-mode Auth still says which
// way it authenticates.
struct SecretSource {
  enum class Kind { none, file, env, credential };
  Kind kind = Kind::none;
  std::string key;   // token_file, token_env, private_key_credential, ...
  std::string name;  // the file's absolute path, the variable's or the credential's name
  Place place;       // of the value
  explicit operator bool() const { return kind != Kind::none; }
};

struct Auth {
  Secret token;  // token_file / token_env / token_credential (trimmed); empty when skipped
  SecretSource token_source;
  std::string client_id;  // legacy signed code: public key
  Secret private_key;     // private_key_file / private_key_env / private_key_credential
  SecretSource private_key_source;
  // By the source, so that it holds in skip mode; by the secret for a hand-built Auth.
  bool uses_token() const { return token_source || !token.empty(); }
};

struct Project {
  std::string name, ai, project_uid;
  Auth auth;
};

// Commands run (by /bin/sh -c) when a slot of the job is done, failed or at risk, or a
// data type's header changed, with the details in GIO_* environment variables; "" when
// none.
struct Hooks {
  std::string on_slot_done, on_slot_failed, on_slot_at_risk;
  std::string on_schema_change{};
  Duration timeout{std::chrono::seconds{30}};  // then the command is killed

  bool operator==(const Hooks&) const = default;  // a reload names the jobs it changes
};

// Hourly against daily (issue 16): an hourly raw job's rows per date and data type are
// compared with its project's daily raw job's (reconcile/). Set on the hourly job only.
struct Reconcile {
  // The daily raw job of the same project; "" when the job reconciles with nothing.
  std::string daily_job;
  // True when daily_job was found, not named: the project has exactly one hourly and one
  // daily raw job and the hourly one has no `reconcile_with`.
  bool automatic = false;
  // `reconcile_tolerance`, in percent of the daily rows: a date and type whose daily and
  // hourly rows differ by more is a mismatch.
  double tolerance_percent = 0.5;
  // `on_reconcile_mismatch: refetch`: the short hours are asked for again (once per date,
  // within the vendor's retention); otherwise a mismatch is only reported.
  bool refetch = false;

  bool operator==(const Reconcile&) const = default;
};

// What a raw export job asks for.
struct RawJob {
  std::vector<std::string> data_types;  // empty = all types
  Reconcile reconcile;                  // hourly jobs only

  bool operator==(const RawJob&) const = default;  // a reload names the jobs it changes
};

// resource: charts | funnels | retentions | frequencies. Each chart id is one file pair
// per slot.
struct ChartJob {
  ChartResource resource = ChartResource::charts;
  std::vector<std::string> charts;          // chart ids
  Duration interval{std::chrono::days{1}};  // one of kChartIntervals
  // resource: funnels; sent as conversionWindow (whole days) when set.
  std::optional<std::chrono::days> conversion_window;
  std::string range;  // resource: retentions; sent as `range` when not empty

  bool operator==(const ChartJob&) const = default;  // a reload names the jobs it changes
};

// resource: segmentations | tags. A user list's finished answer is a list of file links,
// downloaded like raw parts.
struct UserListJob {
  ChartResource resource = ChartResource::segmentations;
  std::vector<std::string> lists;  // list ids (the YAML key stays `charts:`)
  std::string parameters;          // sent percent-encoded as `parameters` when not empty

  bool operator==(const UserListJob&) const = default;  // a reload names the jobs it changes
};

// The kind's own part of a job. Dispatch on it with std::visit (see Overloaded), so that
// the compiler points at every place a new kind must be handled.
using JobSettings = std::variant<RawJob, ChartJob, UserListJob>;

// Where a job's partitions land beyond the local archive (issue 15): an rclone remote.
// The local archive stays the staging area: a partition is uploaded from it, verified on
// the remote, and its local copy removed keep_local after that.
struct Sink {
  std::string name;
  // Any rclone remote:path ("oss:bucket/growingio") or on-the-fly backend string
  // (":webdav,url='http://h:8080':"). An on-the-fly string may hold credentials: it is
  // never logged, never put in an error message, a metric or argv (the sink's name is).
  std::string rclone_remote;
  std::filesystem::path rclone_config;        // empty: rclone's own default
  Duration keep_local{std::chrono::days{2}};  // 0s: the local copy goes once verified
  Place place;                                // where the YAML defines it
};

struct Job {
  std::string name, project;
  std::string sink;  // a Config::sinks name; "" = the local archive is the destination
  Granularity granularity = Granularity::hour;
  Duration ready_after{};  // default: 40m for hour, 6h for day
  Duration poll_every{std::chrono::minutes{5}};
  Duration give_up_after{std::chrono::hours{24}};
  // NOT_EXISTS before ready_at + this means "not produced yet" and is polled quietly;
  // after it, the slot is an anomaly worth a warning (still polled until give_up_after).
  Duration not_exists_grace{std::chrono::hours{2}};
  Duration backfill{std::chrono::days{15}};
  Duration link_expire{std::chrono::minutes{60}};  // whole minutes (the API takes minutes)
  // Default gzip; a user-list job defaults to size (its files are not said to be gzip).
  archive::VerifyMode verify = archive::VerifyMode::gzip;
  Hooks hooks;
  JobSettings settings;  // RawJob unless the YAML says `kind: chart`
};

// "raw" or "chart", as the YAML's `kind:` says (a user-list job is kind chart there).
std::string_view kind_name(const Job& job);

// The usual overload set for std::visit: one lambda per alternative, e.g.
//   std::visit(Overloaded{[](const RawJob&) {...}, [](const ChartJob&) {...}, ...}, job.settings)
template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

struct HttpSettings {
  std::string api_base = "https://www.growingio.com";  // no trailing slash after loading
  Duration timeout{60};
  std::filesystem::path ca_file;  // empty: the system store only
  // The forward proxy for the API and the download links, http://[user:password@]host[:port]
  // (a Secret: it may hold a password). Unset: the environment's https_proxy /
  // http_proxy; "": no proxy, whatever the environment says.
  std::optional<Secret> proxy;
  // The hosts reached without the proxy, as curl's NO_PROXY. Unset: the environment's.
  std::optional<std::string> no_proxy;
  // Download links may lead to loopback, link-local and private addresses. Without it only
  // public addresses and the API base's own kind of address are fetched.
  bool allow_private_links = false;
};

struct Limits {
  double api_requests_per_second = 2;  // per project
  int parallel_downloads = 4;          // whole daemon
  // Bytes one downloaded part may have (any job): a longer body fails that part.
  std::uint64_t max_part_size = std::uint64_t{1} << 30;
};

struct MetricsSettings {
  std::string listen = "127.0.0.1:9464";  // host:port, or "" for off
};

struct LogSettings {
  std::string level = "info";   // trace|debug|info|warn|error
  std::string format = "text";  // text|json (one JSON object per line)
};

struct Config {
  std::filesystem::path source;  // the file it came from (absolute)
  // skip: every Secret is empty (the sources are still validated and kept).
  SecretMode secrets = SecretMode::load;
  std::filesystem::path state_db = "/var/lib/gio-exporter/state.db";
  std::filesystem::path archive_dir = "/var/lib/gio-exporter/archive";
  Place state_db_place, archive_dir_place;  // line 0: the default
  // What the archive's files and folders do not grant (octal): 0027 gives 0640 files
  // and 0750 folders. Must leave the owner rwx (umask & 0700 == 0). Read at start only.
  unsigned archive_umask = 0027;
  HttpSettings http;
  Limits limits;
  MetricsSettings metrics;
  LogSettings log;
  std::vector<Project> projects;
  std::vector<Sink> sinks;
  std::vector<Job> jobs;

  const Project& project_of(const Job& job) const;   // validated to exist; throws otherwise
  const Job* find_job(std::string_view name) const;  // nullptr when unknown
  const Sink* sink_of(const Job& job) const;         // nullptr for a job without a sink
};

struct Problem {
  std::string file;
  int line = 0;  // 1-based; 0 when the problem is about the file as a whole
  int column = 0;
  std::string message;
  // "FILE:LINE:COL: message" (1-based line and column); "FILE: message" when line is 0.
  std::string to_string() const;
};

struct LoadResult {
  std::optional<Config> config;   // set only when problems is empty
  std::vector<Problem> problems;  // every problem found, in file order
  // Not fatal but worth telling at start and in check-config, e.g. a token or key file
  // that group or others may read. Never quotes a secret.
  std::vector<Problem> warnings;
};

// Reads the file (missing/unreadable file = one Problem with line 0).
LoadResult load_config(const std::filesystem::path& path, SecretMode secrets = SecretMode::load);
// `path` names the file in messages and anchors relative paths (its directory).
LoadResult parse_config(std::string_view yaml_text, const std::filesystem::path& path,
                        SecretMode secrets = SecretMode::load);

// "90s" "5m" "1h30m" "15d" "2h": units d h m s, each at most once, largest first;
// "0" alone is also zero. No signs, no spaces; nullopt when malformed.
std::optional<Duration> parse_duration(std::string_view text);
// 5400s -> "1h30m", 0 -> "0s"; the inverse of parse_duration.
std::string format_duration(Duration d);

// $GIO_EXPORTER_CONFIG if set and non-empty, else /etc/gio-exporter/config.yaml.
std::filesystem::path default_config_path();
// True when `path` is `folder` or lies below it, comparing the two after resolving the
// symlinks of the parts of each that exist (a link to the archive counts as the archive).
bool is_inside(const std::filesystem::path& path, const std::filesystem::path& folder);
// One line for check-config and the startup log: "N projects, M jobs (...)". Never a secret.
std::string summary(const Config& config);

// Validation limits, stated once. Names become folder names in the archive.
inline constexpr std::size_t kMaxNameLength = 100;  // [A-Za-z0-9][A-Za-z0-9._-]*
inline constexpr Duration kMinTimeout = std::chrono::seconds{1};
inline constexpr Duration kMaxTimeout = std::chrono::hours{1};
// 1s so that end-to-end tests can poll a fake server quickly.
inline constexpr Duration kMinPollEvery = std::chrono::seconds{1};
inline constexpr Duration kMaxPollEvery = std::chrono::hours{24};
// Longer than the vendor keeps the data would only postpone `lost`.
inline constexpr Duration kMaxGiveUpAfter = kRetention;
inline constexpr Duration kMaxNotExistsGrace = std::chrono::hours{48};
// sinks[].keep_local: 0s removes the local copy once landed; ten years is "keep it".
inline constexpr Duration kMaxKeepLocal = std::chrono::days{3650};
inline constexpr Duration kMinHookTimeout = std::chrono::seconds{1};
inline constexpr Duration kMaxHookTimeout = std::chrono::minutes{10};
inline constexpr Duration kMinBackfill = std::chrono::hours{1};
// The vendor keeps 15 days; looking further back could never find anything.
inline constexpr Duration kMaxBackfill = kRetention;
inline constexpr Duration kMaxReadyAfter = std::chrono::hours{48};
inline constexpr Duration kMinLinkExpire = std::chrono::minutes{1};
inline constexpr Duration kMaxLinkExpire = std::chrono::minutes{10080};  // the API's maximum
inline constexpr int kMinParallelDownloads = 1;
inline constexpr int kMaxParallelDownloads = 64;
inline constexpr double kMaxApiRequestsPerSecond = 100;
// limits.max_part_size: below 1 MiB no real part fits; beyond 1 TiB it bounds nothing.
inline constexpr std::uint64_t kMinMaxPartSize = std::uint64_t{1} << 20;
inline constexpr std::uint64_t kMaxMaxPartSize = std::uint64_t{1} << 40;
inline constexpr Duration kDefaultReadyAfterHour = std::chrono::minutes{40};
inline constexpr Duration kDefaultReadyAfterDay = std::chrono::hours{6};
// The chart API's `interval` values (hour, day, week, month; sent in milliseconds).
inline constexpr Duration kChartIntervals[] = {std::chrono::hours{1}, std::chrono::days{1},
                                               std::chrono::days{7}, std::chrono::days{30}};
inline constexpr Duration kMaxConversionWindow = std::chrono::days{180};
// Longest `range` passed to the retention API (a short token such as 7d or 30).
inline constexpr std::size_t kMaxRangeLength = 32;
// Longest `parameters` passed to the user-list APIs.
inline constexpr std::size_t kMaxParametersLength = 4096;
// The data types the raw export knows; `data_types` may name only these.
inline constexpr std::string_view kDataTypes[] = {
    "visit", "page", "action", "action_tag",      "custom_event",
    "pvar",  "evar", "vstr",   "ads_track_click", "ads_track_activation"};
// reconcile_tolerance: percent of the daily rows; 100 would call any difference a match.
inline constexpr double kDefaultReconcileTolerance = 0.5;
inline constexpr double kMaxReconcileTolerance = 100;
inline constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error"};
inline constexpr std::string_view kLogFormats[] = {"text", "json"};

}  // namespace gio::config
