#pragma once

// Every key the config file may hold, one list per map. The parser checks each map
// against its list (an unknown key is a problem), and a unit test checks that the
// shipped example config shows every one of them: both read these lists, so a key added
// to the parser without a line in the example fails the build's tests.

#include <span>
#include <string_view>

namespace gio::config::keys {

using List = std::span<const std::string_view>;

inline constexpr std::string_view kTopLevel[] = {
    "state_db", "archive_dir", "archive_umask", "http",  "limits",
    "metrics",  "log",         "projects",      "sinks", "jobs"};
inline constexpr std::string_view kHttp[] = {"api_base", "timeout",  "ca_file",
                                             "proxy",    "no_proxy", "allow_private_links"};
inline constexpr std::string_view kLimits[] = {"api_requests_per_second", "parallel_downloads",
                                               "max_part_size"};
inline constexpr std::string_view kMetrics[] = {"listen"};
inline constexpr std::string_view kLog[] = {"level", "format"};
inline constexpr std::string_view kProject[] = {"name", "ai", "project_uid", "auth"};
inline constexpr std::string_view kAuth[] = {
    "token_file",       "token_env",       "token_credential",      "client_id",
    "private_key_file", "private_key_env", "private_key_credential"};
// A job's map: its common keys, the keys of chart and user-list jobs, and the hooks.
inline constexpr std::string_view kSink[] = {"name", "rclone_remote", "rclone_config",
                                             "keep_local"};
inline constexpr std::string_view kJob[] = {"name",
                                            "project",
                                            "sink",
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
                                            "hook_timeout",
                                            "reconcile_with",
                                            "reconcile_tolerance",
                                            "on_reconcile_mismatch",
                                            "on_schema_change"};
// The part of kJob that pairs an hourly raw job with a daily one (issue 16).
inline constexpr std::string_view kReconcile[] = {"reconcile_with", "reconcile_tolerance",
                                                  "on_reconcile_mismatch"};
// The part of kJob only chart (and user-list) jobs take.
inline constexpr std::string_view kChartOnly[] = {
    "charts", "interval", "resource", "conversion_window", "range", "parameters"};
// The part of kJob that runs commands when a slot is done, failed or at risk, or a
// data type's header changed.
inline constexpr std::string_view kHooks[] = {"on_slot_done", "on_slot_failed", "on_slot_at_risk",
                                              "hook_timeout", "on_schema_change"};

// Each map's list with where it is in the file, for tests and messages.
struct Map {
  std::string_view where;
  List keys;
};
inline constexpr Map kMaps[] = {
    {"top level", kTopLevel}, {"http", kHttp},    {"limits", kLimits},
    {"metrics", kMetrics},    {"log", kLog},      {"projects[]", kProject},
    {"auth", kAuth},          {"sinks[]", kSink}, {"jobs[]", kJob}};

}  // namespace gio::config::keys
