// Sinks (issue 15): a slot of a job with a sink is done only once every partition of it
// has landed on the sink. Between the two it is `uploading`: its data is local, so it is
// never lost or given up on; a remote that is down backs its uploads off (30 s doubling
// to 10 min) while downloads go on, with their own concurrency. Once landed and kept
// for the sink's keep_local, its local copy is removed.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <iterator>
#include <map>
#include <set>

#include "ops/exporter_metrics.hpp"
#include "ops/logging.hpp"
#include "scheduler/notices.hpp"
#include "scheduler/scheduler.hpp"

namespace gio::scheduler {
namespace {

namespace asio = boost::asio;
using std::chrono::seconds;

// How often landed slots are looked at for a keep_local that passed.
constexpr seconds kPruneEvery{60};
// Slots pruned per job and round: the loop stays responsive after a long outage.
constexpr std::size_t kPruneBatch = 100;
// Due uploads read per round, beyond those in flight.
constexpr std::size_t kUploadLookahead = 256;

seconds upload_backoff(int failures) {
  seconds delay = kFirstUploadBackoff;
  for (int i = 1; i < failures && delay < kMaxUploadBackoff; ++i) {
    delay *= 2;
  }
  return std::min<seconds>(delay, kMaxUploadBackoff);
}

// What a slot as a whole was verified with: none when any partition with parts had no
// checksum to check (a partition without parts has nothing to check and does not count).
sink::Checksum weaker(std::optional<sink::Checksum> so_far, sink::Checksum next) {
  return !so_far || *so_far == next || next == sink::Checksum::none ? next : *so_far;
}

// Why `partition`'s parts are not all in its folder as its manifest lists them (a
// regular file of the listed size, never a symlink); "" when they are.
std::string missing_part(const archive::LocalPartition& partition) {
  for (const archive::ManifestFile& file : partition.manifest->files) {
    std::error_code error;
    const std::filesystem::path path = partition.dir / file.name;
    if (!std::filesystem::is_regular_file(std::filesystem::symlink_status(path, error)) ||
        std::filesystem::file_size(path, error) != file.bytes || error) {
      return "the local part " + partition.data_type + "/" + file.name +
             " is missing or not its recorded size";
    }
  }
  return "";
}

// The partitions of a slot to land: the complete ones. A folder without _SUCCESS is the
// slot's own only when the state has files of its type for the slot; else it is left
// from an earlier answer (a type dropped from the config or from the vendor's answer,
// before a forced backfill) and is not landed. Returns why the local copy is not whole
// (then fetched again), or "".
std::string partitions_to_land(std::vector<archive::LocalPartition>& partitions,
                               const std::vector<state::ArchivedFile>& files) {
  std::set<std::string> recorded_types;
  for (const state::ArchivedFile& file : files) {
    recorded_types.insert(file.data_type);
  }
  std::erase_if(partitions, [&](const archive::LocalPartition& partition) {
    return (!partition.complete || !partition.manifest) &&
           !recorded_types.contains(partition.data_type);
  });
  if (partitions.empty()) {
    return "no local partition is left";
  }
  for (const archive::LocalPartition& partition : partitions) {
    if (!partition.complete || !partition.manifest) {
      return "the local partition " + partition.data_type + " is not complete";
    }
    if (std::string missing = missing_part(partition); !missing.empty()) {
      return missing;
    }
  }
  return "";
}

}  // namespace

// One slot's upload: what its event line and its metrics say.
struct Scheduler::Landing {
  std::string sink;  // "" when the job no longer has one (a reload took it away)
  std::size_t files = 0;
  std::uint64_t bytes = 0;           // the parts', as the manifests list them
  std::uint64_t uploaded_bytes = 0;  // what rclone copied (0: the remote held it all)
  std::optional<sink::Checksum> checksum{};
};

void Scheduler::downloaded_for_sink(const config::Job& job, const Slot& slot,
                                    const work::Done& done, bool count_attempt) {
  const Instant now = clock_.now();
  store_.update(job.name, slot.name(),
                {.state = state::SlotState::uploading,
                 .next_at = now,
                 .api_status = done.api_status,
                 .last_error = "",
                 .count_attempt = count_attempt},
                now);
  upload_failures_.erase(slot_key(job.name, slot.name()));
  ops::Fields fields{{"job", job.name}, {"slot", slot.name()}, {"sink", job.sink}};
  fields.emplace_back("files", done.files);
  fields.emplace_back("bytes", done.bytes);
  ops::log_event(ops::Level::info, "slot_downloaded",
                 "slot archived locally; landing it on its sink", fields);
  wake_.notify();
}

std::size_t Scheduler::start_due_uploads(Instant now, std::set<std::string>* started_once) {
  if (stopping_) {
    return 0;
  }
  const std::shared_ptr<const Generation> generation = generation_;
  const std::size_t limit = kUploadLookahead + uploads_in_flight_.size() +
                            (started_once != nullptr ? started_once->size() : 0);
  const auto steady_now = asio::steady_timer::clock_type::now();
  // Read per sink: one sink's long backlog (a remote that is down) must not hide the
  // due uploads of another behind the lookahead.
  std::map<std::string, std::vector<std::string>> jobs_by_sink;
  for (const std::string& name : generation->job_names) {
    jobs_by_sink[generation->config->find_job(name)->sink].push_back(name);
  }
  std::vector<state::SlotRecord> due;
  for (const auto& [sink, jobs] : jobs_by_sink) {
    std::ranges::move(store_.due_uploads(now, limit, jobs), std::back_inserter(due));
  }
  std::size_t started = 0;
  for (state::SlotRecord& record : due) {
    std::string key = slot_key(record.job, record.slot);
    if (uploads_in_flight_.contains(key) ||
        (started_once != nullptr && started_once->contains(key))) {
      continue;
    }
    if (const auto cooling = cool_down_.find(key); cooling != cool_down_.end()) {
      if (cooling->second > steady_now) {
        continue;
      }
      cool_down_.erase(cooling);
    }
    const std::string sink = generation->config->find_job(record.job)->sink;
    if (!sink.empty() && uploads_by_sink_[sink] >= kUploadsPerSink) {
      continue;
    }
    if (started_once != nullptr) {
      started_once->insert(key);
    }
    ++uploads_by_sink_[sink];
    uploads_in_flight_.insert(key);
    ++started;
    workers_.spawn(
        [this, generation, record = std::move(record), key, sink]() -> asio::awaitable<void> {
          co_await upload(generation, record);
          uploads_in_flight_.erase(key);
          --uploads_by_sink_[sink];
          wake_.notify();
        });
  }
  return started;
}

asio::awaitable<void> Scheduler::upload(std::shared_ptr<const Generation> generation,
                                        state::SlotRecord record) {
  const config::Job& job = *generation->config->find_job(record.job);
  const std::string key = slot_key(record.job, record.slot);
  const auto slot = Slot::parse(record.slot, job.granularity);
  std::string failure;
  try {
    if (!slot) {
      // The job's granularity changed: the download path fails it, saying why.
      co_await store_waits_.retry([&] { refetch(job, record, "slot name does not match"); });
      co_return;
    }
    co_await end_preuploads(key);
    // A job whose sink a reload took away has the local archive as its destination.
    const auto found = generation->sinks.find(job.sink);
    Landing landing{.sink = found == generation->sinks.end() ? "" : job.sink};
    std::vector<archive::LocalPartition> partitions = archive_.slot_partitions(job.name, *slot);
    const std::string incomplete =
        partitions_to_land(partitions, store_.files(job.name, record.slot));
    if (!incomplete.empty()) {
      co_await store_waits_.retry([&] { refetch(job, record, incomplete); });
      co_return;
    }
    for (archive::LocalPartition& partition : partitions) {
      const archive::Manifest& manifest = *partition.manifest;
      landing.files += manifest.files.size();
      for (const archive::ManifestFile& file : manifest.files) {
        landing.bytes += file.bytes;
      }
      if (found == generation->sinks.end()) {
        continue;
      }
      // Named, not temporaries in the co_await (GCC 12).
      const Slot partition_slot = *slot;
      const sink::Landed landed =
          co_await found->second->land(partition.dir, manifest, partition_slot);
      landing.uploaded_bytes += landed.uploaded_bytes;
      if (!manifest.files.empty()) {
        landing.checksum = weaker(landing.checksum, landed.checked);
      }
    }
    // A reload changed where this job lands while it was landing: the slot stays
    // uploading, and the next round lands it where the config now says.
    if (sink_changed(*generation, job)) {
      wake_.notify();
      co_return;
    }
    co_await store_waits_.retry([&] { land_done(job, *slot, landing); });
  } catch (const std::exception& error) {
    // A SinkError names the sink and the partition, never the remote; anything else
    // (the archive, the database) is put off the same way, so a worker never takes
    // the daemon down.
    failure = error.what();
  }
  if (failure.empty()) {
    // Landed and done: a prune that fails now is its own matter (local_prune_failed,
    // or the next prune round), never the upload's.
    const config::Sink* settings = generation->config->sink_of(job);
    if (settings != nullptr && settings->keep_local.count() == 0) {
      try {
        co_await store_waits_.retry([&] { prune_slot(job, *settings, *slot); });
      } catch (const std::exception& error) {
        spdlog::warn("pruning {} {} after landing: {}; the prune round tries again", job.name,
                     record.slot, error.what());
      }
    }
    co_return;
  }
  if (stopping_) {
    co_return;  // rclone was ended by the stop: not the remote's failure
  }
  try {
    const int failures = ++upload_failures_[key];
    const seconds delay = upload_backoff(failures);
    co_await store_waits_.retry([&] { upload_failed(job, record, failure, delay); });
  } catch (const std::exception&) {
    // Not even that could be recorded: held back in memory so that it cannot spin.
    cool_down_[key] = asio::steady_timer::clock_type::now() + kFirstUploadBackoff;
  }
}

bool Scheduler::sink_changed(const Generation& landing_with, const config::Job& job) const {
  const config::Job* now = config().find_job(job.name);
  if (now == nullptr) {
    return false;  // removed by the reload: nothing will land it elsewhere
  }
  const config::Sink* before = landing_with.config->sink_of(job);
  const config::Sink* after = config().sink_of(*now);
  if (before == nullptr || after == nullptr) {
    return before != after;
  }
  return before->rclone_remote != after->rclone_remote ||
         before->rclone_config != after->rclone_config;
}

void Scheduler::land_done(const config::Job& job, const Slot& slot, const Landing& landing) {
  const Instant now = clock_.now();
  const std::string key = slot_key(job.name, slot.name());
  // kNoticeLanded: only a slot landed on a sink has its local copy pruned later.
  store_.update(job.name, slot.name(),
                {.state = state::SlotState::done,
                 .next_at = now,
                 .last_error = "",
                 .notices = landing.sink.empty() ? std::optional<int>{} : kNoticeLanded},
                now);
  upload_failures_.erase(key);
  ops::Fields fields{{"job", job.name}, {"slot", slot.name()}};
  fields.emplace_back("files", landing.files);
  fields.emplace_back("bytes", landing.bytes);
  ops::HookVariables variables{{"GIO_FILES", std::to_string(landing.files)},
                               {"GIO_BYTES", std::to_string(landing.bytes)},
                               {"GIO_ARCHIVE_DIR", (archive_.root() / job.name).string()}};
  if (!landing.sink.empty()) {
    const std::string_view checksum = to_string(landing.checksum.value_or(sink::Checksum::none));
    fields.emplace_back("sink", landing.sink);
    fields.emplace_back("checksum", checksum);
    fields.emplace_back("uploaded_bytes", landing.uploaded_bytes);
    metrics_.add(ops::kSinkUploads, {{"sink", landing.sink}, {"result", "landed"}}, 1);
    metrics_.add(ops::kSinkUploadedBytes, {{"sink", landing.sink}},
                 static_cast<double>(landing.uploaded_bytes));
    variables.emplace_back("GIO_SINK", landing.sink);
  }
  ops::log_event(ops::Level::info, "slot_done",
                 landing.sink.empty() ? "slot archived" : "slot archived and landed on its sink",
                 fields);
  run_hook(job, "slot_done", slot.name(), slot.start(), std::move(variables));
  if (done_listener_) {
    done_listener_(config(), job, slot);
  }
}

void Scheduler::upload_failed(const config::Job& job, const state::SlotRecord& record,
                              const std::string& reason, seconds delay) {
  const Instant now = clock_.now();
  store_.update(
      record.job, record.slot,
      {.state = state::SlotState::uploading, .next_at = now + delay, .last_error = reason}, now);
  metrics_.add(ops::kSinkUploads, {{"sink", job.sink}, {"result", "failed"}}, 1);
  ops::log_event(ops::Level::warning, "upload_failed",
                 "slot not landed on its sink; tried again later (its local copy is kept)",
                 {{"job", record.job},
                  {"slot", record.slot},
                  {"sink", job.sink},
                  {"reason", reason},
                  {"retry_in", std::to_string(delay.count()) + "s"}});
}

void Scheduler::refetch(const config::Job& job, const state::SlotRecord& record,
                        const std::string& reason) {
  const Instant now = clock_.now();
  store_.update(record.job, record.slot,
                {.state = state::SlotState::pending, .next_at = now, .last_error = reason}, now);
  upload_failures_.erase(slot_key(record.job, record.slot));
  ops::log_event(
      ops::Level::warning, "upload_refetch",
      "the slot's local copy is not whole: it is fetched again before it lands",
      {{"job", record.job}, {"slot", record.slot}, {"sink", job.sink}, {"reason", reason}});
  wake_.notify();
}

void Scheduler::prune_local(Instant now) {
  const auto steady_now = asio::steady_timer::clock_type::now();
  if (steady_now < next_prune_) {
    return;
  }
  for (const config::Job& job : config().jobs) {
    const config::Sink* sink = config().sink_of(job);
    if (sink == nullptr) {
      continue;
    }
    for (const state::SlotRecord& record : store_.done_before(
             job.name, now - sink->keep_local, kNoticeLanded, kNoticeLocalPruned, kPruneBatch)) {
      if (const auto slot = Slot::parse(record.slot, job.granularity)) {
        prune_slot(job, *sink, *slot);
      }
    }
  }
  // Only a round that went through waits for the next (as the retention watch).
  next_prune_ = steady_now + kPruneEvery;
}

void Scheduler::prune_slot(const config::Job& job, const config::Sink& sink, const Slot& slot) {
  std::uint64_t bytes = 0;
  try {
    for (const archive::LocalPartition& partition : archive_.slot_partitions(job.name, slot)) {
      bytes += archive_.remove_partition(job.name, partition.data_type, slot);
    }
  } catch (const archive::ArchiveError& error) {
    // A symlink planted on the way, a folder that cannot be written: said once, and
    // the rest of the local copy is left where it is.
    store_.add_notices(job.name, slot.name(), kNoticeLocalPruned);
    ops::log_event(
        ops::Level::warning, "local_prune_failed",
        "the local copy of a landed slot could not be removed; it is left in place",
        {{"job", job.name}, {"slot", slot.name()}, {"sink", sink.name}, {"reason", error.what()}});
    return;
  }
  store_.add_notices(job.name, slot.name(), kNoticeLocalPruned);
  ops::log_event(ops::Level::info, "local_pruned",
                 "the local copy of a landed slot was removed (keep_local " +
                     config::format_duration(sink.keep_local) + ")",
                 {{"job", job.name}, {"slot", slot.name()}, {"sink", sink.name}, {"bytes", bytes}});
}

}  // namespace gio::scheduler
