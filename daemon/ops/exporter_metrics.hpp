#pragma once

// The metric families gio-exporter exposes, named once. config/prometheus-alerts.yml
// and the README refer to these names. A gio-exporter job is the label `gio_job`
// (`job` is the Prometheus scrape job's own label).

#include <string_view>

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

// Declares every family above with its HELP text.
void declare_exporter_metrics(Registry& registry);

}  // namespace gio::ops
