#pragma once

// The metric families gio-exporter exposes, named once. config/prometheus-alerts.yml
// and the README refer to these names. A gio-exporter job is the label `gio_job`
// (`job` is the Prometheus scrape job's own label).

#include <string>
#include <string_view>

#include "config/config.hpp"
#include "ops/registry.hpp"

namespace gio::ops {

// Gauges, read from the state store at each scrape.
inline constexpr std::string_view kSlots = "gio_exporter_slots";                // {gio_job,state}
inline constexpr std::string_view kSlotsAtRisk = "gio_exporter_slots_at_risk";  // {gio_job}
inline constexpr std::string_view kNextLossSeconds = "gio_exporter_next_loss_seconds";  // {gio_job}
inline constexpr std::string_view kNewestArchivedSlot =
    "gio_exporter_newest_archived_slot_timestamp_seconds";                 // {gio_job,granularity}
inline constexpr std::string_view kBuildInfo = "gio_exporter_build_info";  // {version}
inline constexpr std::string_view kStartTime = "gio_exporter_start_time_seconds";
// The last config load (at start, or on SIGHUP), as Prometheus names its own.
inline constexpr std::string_view kReloadSuccessful = "gio_exporter_config_last_reload_successful";
inline constexpr std::string_view kReloadSuccessTime =
    "gio_exporter_config_last_reload_success_timestamp_seconds";
// Counters, counted as things happen (since the process started).
inline constexpr std::string_view kArchivedFiles =
    "gio_exporter_archived_files_total";  // {gio_job}
inline constexpr std::string_view kArchivedBytes =
    "gio_exporter_archived_bytes_total";                                               // {gio_job}
inline constexpr std::string_view kSlotFailures = "gio_exporter_slot_failures_total";  // {gio_job}
inline constexpr std::string_view kSlotsLost = "gio_exporter_slots_lost_total";        // {gio_job}
inline constexpr std::string_view kRetries = "gio_exporter_retries_total";             // {gio_job}
inline constexpr std::string_view kApiRequests =
    "gio_exporter_api_requests_total";  // {project,endpoint,code}
inline constexpr std::string_view kAuthRefreshes =
    "gio_exporter_auth_refreshes_total";  // {project}
inline constexpr std::string_view kDownloadBytes = "gio_exporter_download_bytes_total";
inline constexpr std::string_view kDownloadSeconds = "gio_exporter_download_seconds_total";

// Sinks (issue 15), by sink name. Gauges read from the state store at each scrape: the
// uploading slots of the sink's jobs, their bytes, and how long the oldest has waited.
inline constexpr std::string_view kSinkBacklogSlots = "gio_sink_backlog_slots";  // {sink}
inline constexpr std::string_view kSinkBacklogBytes = "gio_sink_backlog_bytes";  // {sink}
inline constexpr std::string_view kSinkOldestBacklogSeconds =
    "gio_sink_oldest_backlog_seconds";  // {sink}
// Counters: slots landed or failed to land, and the bytes rclone copied.
inline constexpr std::string_view kSinkUploads = "gio_sink_uploads_total";  // {sink,result}
inline constexpr std::string_view kSinkUploadedBytes = "gio_sink_uploaded_bytes_total";  // {sink}

// Hourly against daily (issue 16), by hourly job and data type, read from the state store
// at each scrape: the last date compared, and its late rows (the daily export's rows
// less the 24 hourly partitions'; negative when the hours hold more).
inline constexpr std::string_view kReconcileLateRows = "gio_reconcile_late_rows";  // {gio_job,type}
inline constexpr std::string_view kReconcileLastDate =
    "gio_reconcile_last_date_timestamp_seconds";  // {gio_job,type}
// The late rows in percent of the daily rows, for alerting against the tolerance.
inline constexpr std::string_view kReconcileLatePercent =
    "gio_reconcile_late_rows_percent";  // {gio_job,type}
// The job's reconcile_tolerance (percent), so an alert compares with what is configured.
inline constexpr std::string_view kReconcileTolerance =
    "gio_reconcile_tolerance_percent";  // {gio_job}
// Schema watch (issue 16), by job and data type: header changes seen (counted as they
// are announced), and the start of the first slot of the current header (a gauge read
// from the state store at each scrape).
inline constexpr std::string_view kSchemaChanges = "gio_schema_changes_total";  // {gio_job,type}
inline constexpr std::string_view kSchemaSince =
    "gio_schema_since_timestamp_seconds";  // {gio_job,type}

// Declares every family above with its HELP text, and the process_* families
// (ops/process_metrics.hpp). The unlabelled counters start at 0.
void declare_exporter_metrics(Registry& registry);

// Creates the job's counters ({gio_job}) at 0, and a signed-code project's
// kAuthRefreshes: an alert on increase() sees a series that appears at its first event
// only from its second event on, so each must be there before it. kApiRequests has a
// status code in its labels, known only when an answer comes: it has no series before.
void zero_job_counters(Registry& registry, const std::string& job);
void zero_project_counters(Registry& registry, const config::Project& project);
// A sink's counters at 0: {result="landed"}, {result="failed"} and its bytes.
void zero_sink_counters(Registry& registry, const std::string& sink);

// The outcome of a config load at `unix_seconds`: a success sets both kReload* gauges,
// a failure sets kReloadSuccessful to 0 and keeps the last success's time.
void record_config_load(Registry& registry, bool ok, double unix_seconds);

}  // namespace gio::ops
