// The schema watch (issue 16): what a just-archived slot's headers mean for each data
// type's history (schema_watch.hpp decides; this file reads, stores and announces).

#include <spdlog/spdlog.h>

#include "ops/exporter_metrics.hpp"
#include "ops/logging.hpp"
#include "scheduler/scheduler.hpp"
#include "scheduler/schema_watch.hpp"

namespace gio::scheduler {
namespace {

// The header of each complete partition of the slot, by data type (manifests carry
// each part's columns; a partition without data, or not counted, has none).
struct TypeHeader {
  std::string data_type;
  PartitionHeader header;
};

std::vector<TypeHeader> slot_headers(const archive::Archive& archive, const config::Job& job,
                                     const Slot& slot) {
  std::vector<TypeHeader> headers;
  for (const archive::LocalPartition& partition : archive.slot_partitions(job.name, slot)) {
    if (!partition.complete || !partition.manifest) {
      continue;
    }
    std::vector<std::vector<std::string>> parts;
    for (const archive::ManifestFile& file : partition.manifest->files) {
      parts.push_back(file.columns);
    }
    if (auto header = partition_header(parts)) {
      headers.push_back({partition.data_type, std::move(*header)});
    }
  }
  return headers;
}

}  // namespace

void Scheduler::watch_schemas(const config::Job& job, const Slot& slot) {
  if (!std::holds_alternative<config::RawJob>(job.settings)) {
    return;  // charts and user lists have fixed layouts of the daemon's own
  }
  std::vector<TypeHeader> headers;
  try {
    headers = slot_headers(archive_, job, slot);
  } catch (const archive::ArchiveError& error) {
    ops::log_event(ops::Level::warning, "schema_unread", "the slot's headers were not compared",
                   {{"job", job.name}, {"slot", slot.name()}, {"reason", error.what()}});
    return;
  }
  for (const TypeHeader& type : headers) {
    if (type.header.mixed) {
      // Parts of one export should share a header; the first part's is the one kept.
      ops::log_event(ops::Level::warning, "schema_mixed",
                     "the parts of one partition have different headers",
                     {{"job", job.name},
                      {"type", type.data_type},
                      {"slot", slot.name()},
                      {"columns", join_names(type.header.columns)}});
    }
    const SchemaDecision decision = decide_schema(store_.schemas(job.name, type.data_type),
                                                  slot.name(), type.header.columns, clock_.now());
    if (decision.kind == SchemaDecision::Kind::unchanged) {
      continue;
    }
    store_.store_schema(job.name, type.data_type, decision.row, decision.remove);
    const ops::Labels labels{{"gio_job", job.name}, {"type", type.data_type}};
    metrics_.add(ops::kSchemaChanges, labels, 0);  // there from the first header on
    if (!decision.warns()) {
      continue;
    }
    metrics_.add(ops::kSchemaChanges, labels);
    const HeaderDiff& diff = decision.diff;
    ops::Fields fields{{"job", job.name},
                       {"type", type.data_type},
                       {"slot", decision.changed_at},
                       {"added", join_names(diff.added)},
                       {"removed", join_names(diff.removed)},
                       {"reordered", diff.reordered}};
    if (decision.changed_at != slot.name()) {
      fields.emplace_back("found_in", slot.name());  // an older slot, archived later
    }
    ops::log_event(ops::Level::warning, "schema_changed", "a data type's header changed", fields);
    const auto changed = Slot::parse(decision.changed_at, job.granularity);
    run_hook(job, "schema_changed", decision.changed_at, changed ? changed->start() : slot.start(),
             {{"GIO_DATA_TYPE", type.data_type},
              {"GIO_ADDED", join_names(diff.added)},
              {"GIO_REMOVED", join_names(diff.removed)},
              {"GIO_REORDERED", diff.reordered ? "true" : "false"},
              {"GIO_COLUMNS", join_names(type.header.columns)}});
  }
}

boost::asio::awaitable<void> Scheduler::watch_schemas_after(const config::Job& job,
                                                            const Slot& slot) {
  try {
    co_await store_waits_.retry([&] { watch_schemas(job, slot); });
  } catch (const std::exception& error) {
    // The slot is archived and recorded whatever happens here; its headers are compared
    // again only if it is fetched again.
    ops::log_event(ops::Level::warning, "schema_unread", "the slot's headers were not compared",
                   {{"job", job.name}, {"slot", slot.name()}, {"reason", error.what()}});
  }
}

void Scheduler::zero_schema_counters(const config::Job& job) {
  try {
    for (const auto& [type, record] : store_.current_schemas(job.name)) {
      metrics_.add(ops::kSchemaChanges, {{"gio_job", job.name}, {"type", type}}, 0);
    }
  } catch (const state::StateError&) {
    // A locked database at a reload: the series come with the job's next header.
  }
}

}  // namespace gio::scheduler
