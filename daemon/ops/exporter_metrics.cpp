#include "ops/exporter_metrics.hpp"

#include "ops/process_metrics.hpp"

namespace gio::ops {

void declare_exporter_metrics(Registry& registry) {
  const auto gauge = [&registry](std::string_view name, std::string help) {
    registry.declare(std::string{name}, Kind::gauge, std::move(help));
  };
  const auto counter = [&registry](std::string_view name, std::string help) {
    registry.declare(std::string{name}, Kind::counter, std::move(help));
  };
  gauge(kSlots, "Slots of each configured job by state, as the state database holds them.");
  gauge(kSlotsAtRisk,
        "Slots neither done nor lost with less than 72 hours left before the vendor deletes "
        "their data.");
  gauge(kNextLossSeconds,
        "Seconds until the oldest slot not done is lost to the vendor's 15-day retention "
        "(absent when every slot is done or lost).");
  gauge(kNewestArchivedSlot, "Start (unix seconds) of the newest archived slot of each job.");
  gauge(kBuildInfo, "Always 1; the version label says which gio-exporter runs.");
  gauge(kStartTime, "When the daemon started (unix seconds).");
  gauge(kReloadSuccessful,
        "1 when the last config load (at start or on SIGHUP) was applied, 0 when it was "
        "refused and the previous config still runs.");
  gauge(kReloadSuccessTime, "When the config was last loaded and applied (unix seconds).");
  counter(kArchivedFiles, "Files archived (verified and published), by job.");
  counter(kArchivedBytes, "Bytes archived (verified and published), by job.");
  counter(kSlotFailures, "Slots that became failed (gave up, or the API refused), by job.");
  counter(kSlotsLost, "Slots that passed the vendor's retention without being archived.");
  counter(kRetries, "Transient failures that put a slot off for a retry, by job.");
  counter(kApiRequests,
          "API requests by project, endpoint and HTTP status code (\"error\" when no answer "
          "came; \"429\" is throttling).");
  counter(kAuthRefreshes, "Signed codes obtained from the token endpoint, by project.");
  counter(kDownloadBytes, "Bytes downloaded into the staging folder (verified parts).");
  counter(kDownloadSeconds,
          "Seconds spent downloading verified parts (bytes / seconds = throughput).");
  gauge(kSinkBacklogSlots,
        "Slots archived locally and not yet landed on the sink (state uploading), by sink.");
  gauge(kSinkBacklogBytes, "Bytes of the slots waiting to land on the sink, by sink.");
  gauge(kSinkOldestBacklogSeconds,
        "Seconds the oldest slot waiting to land on the sink has waited (0 when none).");
  counter(kSinkUploads,
          "Slots landed on the sink (result=\"landed\": uploaded and verified) or not "
          "(result=\"failed\": retried later), by sink.");
  counter(kSinkUploadedBytes, "Bytes copied to the sink by rclone, by sink.");
  gauge(kReconcileLateRows,
        "Rows of the last reconciled date's daily export missing from its 24 hourly partitions "
        "(negative: the hours hold more), by hourly job and data type.");
  gauge(kReconcileLastDate,
        "Start (unix seconds) of the last Beijing date compared hourly against daily, by "
        "hourly job and data type.");
  gauge(kReconcileLatePercent,
        "The late rows of the last reconciled date in percent of its daily rows, by hourly "
        "job and data type.");
  gauge(kReconcileTolerance, "The hourly job's reconcile_tolerance, in percent.");
  counter(kSchemaChanges,
          "Header changes seen in a data type's partitions (columns added, removed or "
          "reordered), by job and type.");
  gauge(kSchemaSince,
        "Start of the first slot with the current header of a data type, by job and type.");
  registry.add(kDownloadBytes, {}, 0);
  registry.add(kDownloadSeconds, {}, 0);
  declare_process_metrics(registry);
}

void zero_job_counters(Registry& registry, const std::string& job) {
  for (const std::string_view counter :
       {kArchivedFiles, kArchivedBytes, kSlotFailures, kSlotsLost, kRetries}) {
    registry.add(counter, {{"gio_job", job}}, 0);
  }
}

void zero_project_counters(Registry& registry, const config::Project& project) {
  // A project on token auth never asks for a signed code: no series that cannot move.
  if (!project.auth.uses_token()) {
    registry.add(kAuthRefreshes, {{"project", project.name}}, 0);
  }
}

void zero_sink_counters(Registry& registry, const std::string& sink) {
  registry.add(kSinkUploads, {{"sink", sink}, {"result", "landed"}}, 0);
  registry.add(kSinkUploads, {{"sink", sink}, {"result", "failed"}}, 0);
  registry.add(kSinkUploadedBytes, {{"sink", sink}}, 0);
}

void record_config_load(Registry& registry, bool ok, double unix_seconds) {
  registry.set(kReloadSuccessful, {}, ok ? 1 : 0);
  if (ok) {
    registry.set(kReloadSuccessTime, {}, unix_seconds);
  }
}

}  // namespace gio::ops
