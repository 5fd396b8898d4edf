// `verify --sink`: each done slot of a job with a sink, checked on the remote against
// what the slot archived (Sink::check: every object there, its size, the checksum the
// remote manifest recorded, the manifest itself, _SUCCESS), and with --repair queued
// again: for upload when the local copy is whole, else fetched again from the vendor
// while it still has the slot.
//
// The local copy may be gone (keep_local): what a partition should hold comes from the
// local manifest, then the state database's files rows, then the remote's own manifest.

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "archive/scrub.hpp"
#include "async/run.hpp"
#include "cli/archive_binding.hpp"
#include "cli/commands.hpp"
#include "requeue/requeue.hpp"
#include "sink/sink.hpp"
#include "state/state_store.hpp"

namespace gio::cli {
namespace {

namespace asio = boost::asio;

using async::run_to_end;

// The manifest a partition of a done slot should have on the remote, from the files
// rows (what the slot archived); nullopt when the slot has none for that type.
std::optional<archive::Manifest> manifest_from_rows(const config::Job& job, const Slot& slot,
                                                    const std::string& type,
                                                    const std::vector<state::ArchivedFile>& rows) {
  std::vector<archive::ManifestFile> files;
  for (const state::ArchivedFile& row : rows) {
    if (row.data_type == type) {
      files.push_back({.name = row.name, .bytes = row.bytes, .sha256 = row.sha256});
    }
  }
  if (files.empty()) {
    return std::nullopt;
  }
  std::ranges::sort(files, {}, &archive::ManifestFile::name);
  return archive::make_manifest(job.name, type, slot, Instant{}, std::move(files));
}

std::optional<archive::Manifest> local_manifest(const config::Config& config,
                                                const config::Job& job, const Slot& slot,
                                                const std::string& type) {
  const std::filesystem::path path = config.archive_dir /
                                     sink::partition_path(job.name, type, slot) /
                                     std::string{archive::kManifestName};
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  return archive::parse_manifest(text.str());
}

archive::Manifest expected_manifest(const config::Config& config, const config::Job& job,
                                    const Slot& slot, const std::string& type,
                                    const std::vector<state::ArchivedFile>& rows, sink::Sink& sink,
                                    asio::io_context& io) {
  if (auto local = local_manifest(config, job, slot, type)) {
    return *local;
  }
  if (auto from_rows = manifest_from_rows(job, slot, type, rows)) {
    return *from_rows;
  }
  auto remote = run_to_end(io, sink.remote_manifest(job.name, type, slot));
  if (remote) {
    remote->remote_checksum.clear();
    for (archive::ManifestFile& file : remote->files) {
      file.remote_hash.clear();
    }
    return *remote;
  }
  return archive::make_manifest(job.name, type, slot, Instant{}, {});
}

// The data types a done slot has partitions of: its files rows, a chart job's charts
// (a list job's lists), and any partition on the local disk.
std::set<std::string> types_of(const config::Config& config, const config::Job& job,
                               const Slot& slot, const std::vector<state::ArchivedFile>& rows) {
  std::set<std::string> types;
  for (const state::ArchivedFile& row : rows) {
    types.insert(row.data_type);
  }
  std::visit(config::Overloaded{[](const config::RawJob&) {},
                                [&](const config::ChartJob& chart) {
                                  types.insert(chart.charts.begin(), chart.charts.end());
                                },
                                [&](const config::UserListJob& lists) {
                                  types.insert(lists.lists.begin(), lists.lists.end());
                                }},
             job.settings);
  for (std::string& type : archive::partitions_on_disk(config.archive_dir, job.name, slot)) {
    types.insert(std::move(type));
  }
  return types;
}

struct SinkFindings {
  std::size_t slots = 0, partitions = 0, errors = 0, jobs_unchecked = 0;
  std::vector<requeue::DamagedSlot> damaged;
};

// Checks one done slot's partitions on the sink, printing each mismatch.
void check_slot(const config::Config& config, state::StateStore& store, const config::Job& job,
                const Slot& slot, sink::Sink& sink, asio::io_context& io, SinkFindings& findings) {
  ++findings.slots;
  const std::vector<state::ArchivedFile> rows = store.files(job.name, slot.name());
  requeue::DamagedSlot found{&job, slot, {}, {}};
  for (const std::string& type : types_of(config, job, slot, rows)) {
    ++findings.partitions;
    try {
      archive::Manifest manifest = expected_manifest(config, job, slot, type, rows, sink, io);
      const Slot checked = slot;
      for (const sink::Mismatch& mismatch :
           run_to_end(io, sink.check(std::move(manifest), checked))) {
        std::cout << job.name << " " << slot.name() << " sink " << sink.name() << ": " << type
                  << "/" << mismatch.object << ": " << mismatch.what << "\n";
        if (found.damaged_types.insert(type).second) {
          found.forget.emplace_back(type, "");  // the whole partition: fetched again whole
        }
      }
    } catch (const sink::SinkError& error) {
      std::cerr << "gio-exporter: " << job.name << " " << slot.name() << ": " << error.what()
                << "\n";
      ++findings.errors;
    }
  }
  if (!found.damaged_types.empty()) {
    findings.damaged.push_back(std::move(found));
  }
}

// Whether the sink's remote path exists. Every partition of a path that does not (a
// mistyped rclone_remote, a bucket not created) reads as missing, and --repair would
// queue every done slot again, past retention too, so its slots are not checked: an
// error instead, naming the sink.
bool remote_exists(sink::Sink& sink, asio::io_context& io, SinkFindings& findings) {
  try {
    if (run_to_end(io, sink.probe())) {
      return true;
    }
    std::cerr << "gio-exporter: sink " << sink.name()
              << ": the remote path does not exist: nothing has landed there (a mistyped "
                 "rclone_remote, a bucket not created?); its slots are not checked\n";
  } catch (const sink::SinkError& error) {
    std::cerr << "gio-exporter: " << error.what() << "\n";
  }
  ++findings.jobs_unchecked;
  return false;
}

// True when every partition of the slot is whole on the local disk (sizes, sha256 and
// markers: what an upload needs), so repairing is uploading it again.
bool local_copy_whole(const config::Config& config, state::StateStore& store,
                      const config::Job& job, const Slot& slot) {
  const std::vector<state::ArchivedFile> rows = store.files(job.name, slot.name());
  for (const std::string& type : types_of(config, job, slot, rows)) {
    if (!archive::scrub_partition(config.archive_dir, job.name, type, slot,
                                  archive::VerifyMode::size)
             .intact()) {
      return false;
    }
  }
  return true;
}

// --repair: an upload again where the local copy is whole, else a fetch from the vendor
// (the requeue path: within retention, else said to be lost).
void repair(const config::Config& config, const std::vector<requeue::DamagedSlot>& damaged) {
  state::StateStore writer = open_for_queueing(config);
  const Instant now = command_clock().now();
  std::vector<requeue::DamagedSlot> fetch;
  for (const requeue::DamagedSlot& slot : damaged) {
    if (local_copy_whole(config, writer, *slot.job, slot.slot)) {
      const bool queued = writer.requeue_upload(slot.job->name, slot.slot.name(), now);
      std::cout << slot.job->name << " " << slot.slot.name() << " "
                << (queued ? "queued for upload from the local copy" : "not done any more: left")
                << "\n";
    } else {
      fetch.push_back(slot);
    }
  }
  if (!fetch.empty()) {
    requeue::Requeuer requeuer{writer, config.archive_dir, now};
    print_report(requeuer.repair(fetch), "repair", false);
  }
}

}  // namespace

int verify_sink(const config::Config& config, const config::Job* only_job,
                const std::optional<std::string>& from, const std::optional<std::string>& to,
                bool repair_slots) {
  if (only_job != nullptr && only_job->sink.empty()) {
    std::cerr << "gio-exporter: job \"" << only_job->name << "\" has no sink\n";
    return 1;
  }
  const auto scopes = verify_scopes(config, only_job, from, to);
  if (!scopes) {
    return 1;
  }
  state::StateStore store = open_for_reading(config);
  asio::io_context io;
  asio::thread_pool hash_pool{1};
  SinkFindings findings;
  for (const VerifyScope& scope : *scopes) {
    const config::Job& job = *scope.job;
    const config::Sink* settings = config.sink_of(job);
    if (settings == nullptr) {
      continue;
    }
    sink::Sink sink{io.get_executor(), *settings, hash_pool};
    const std::size_t before = findings.slots;
    bool remote_found = false;
    for (const state::SlotRecord& record :
         store.slots(job.name, scope.from, scope.to + std::chrono::seconds{1})) {
      const auto slot = Slot::parse(record.slot, job.granularity);
      if (record.state != state::SlotState::done || !slot) {
        continue;
      }
      if (!remote_found && !(remote_found = remote_exists(sink, io, findings))) {
        break;
      }
      check_slot(config, store, job, *slot, sink, io, findings);
    }
    std::cout << "verify --sink: " << job.name << ": " << (findings.slots - before)
              << " done slot(s) checked on sink " << sink.name() << "\n";
  }
  if (repair_slots && !findings.damaged.empty()) {
    repair(config, findings.damaged);
  }
  std::cout << "verify --sink: " << findings.slots << " done slot(s), " << findings.partitions
            << " partition(s); " << findings.damaged.size() << " slot(s) differ on the remote";
  if (findings.errors > 0) {
    std::cout << ", " << findings.errors << " partition(s) could not be checked";
  }
  if (findings.jobs_unchecked > 0) {
    std::cout << ", " << findings.jobs_unchecked << " job(s) not checked (see above)";
  }
  std::cout << "\n";
  if (findings.errors > 0 || findings.jobs_unchecked > 0) {
    return 1;
  }
  return findings.damaged.empty() ? 0 : 2;
}

}  // namespace gio::cli
