// Sinks (issue 15), overlap: while a slot of a sink job downloads, each part published
// into the archive is copied to its remote partition at once, so that uploads run
// beside downloads instead of after them. The parts of a partition published while the
// sink's permits are taken wait together, and the next copy takes them all in one
// rclone process (each start costs about 0.1 s of CPU, on a machine that downloads).
// The landing (uploads.cpp) stays the only judge: it first ends the slot's pre-uploads,
// then lists, copies what is missing or differs, verifies, and writes the manifest and
// _SUCCESS. A pre-upload that fails is only logged at debug: the landing does that
// part, and a remote that is down never holds a download up.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "scheduler/notices.hpp"
#include "scheduler/scheduler.hpp"

namespace gio::scheduler {

namespace asio = boost::asio;

// A copy of a partition's waiting parts, and the slot's pass it belongs to.
struct Scheduler::PreuploadPart {
  std::string key;  // the slot's
  std::uint64_t id = 0;
  std::string job;
  std::string data_type;
  Slot slot;
};

bool Scheduler::paused_preuploads(const std::string& sink) const {
  const auto found = preuploads_paused_.find(sink);
  return found != preuploads_paused_.end() && std::chrono::steady_clock::now() < found->second;
}

void Scheduler::published(const config::Job& job, const Slot& slot, std::string_view data_type,
                          const std::filesystem::path& file) {
  if (stopping_ || job.sink.empty()) {
    return;
  }
  const auto found = generation_->sinks.find(job.sink);
  if (found == generation_->sinks.end()) {
    return;  // a reload took the sink away: the landing decides
  }
  if (paused_preuploads(job.sink)) {
    return;
  }
  std::string key = slot_key(job.name, slot.name());
  Preuploads& slot_preuploads = preuploads_[key];
  if (slot_preuploads.id == 0) {
    slot_preuploads.id = next_preuploads_id_++;
  }
  if (slot_preuploads.failed) {
    return;
  }
  std::string type{data_type};
  std::vector<std::filesystem::path>& waiting = slot_preuploads.waiting[type];
  if (std::ranges::find(waiting, file) == waiting.end()) {
    waiting.push_back(file);
  }
  if (!slot_preuploads.queued.insert(type).second) {
    return;  // a copy of this partition waits for a permit: it takes this part too
  }
  PreuploadPart part{.key = std::move(key),
                     .id = slot_preuploads.id,
                     .job = job.name,
                     .data_type = std::move(type),
                     .slot = slot};
  workers_.spawn([this, sink = found->second, part = std::move(part)]() -> asio::awaitable<void> {
    co_await preupload(sink, part);
  });
}

asio::awaitable<void> Scheduler::preupload(std::shared_ptr<sink::Sink> sink, PreuploadPart part) {
  std::shared_ptr<async::Semaphore>& permits = preupload_permits_[sink->name()];
  if (!permits) {
    permits = std::make_shared<async::Semaphore>(executor_, static_cast<int>(kUploadsPerSink));
  }
  const std::shared_ptr<async::Semaphore> held_permits = permits;
  auto permit = co_await held_permits->hold();
  auto found = preuploads_.find(part.key);
  // Dropped: the slot began landing (or a later pass began) while this one queued.
  if (stopping_ || found == preuploads_.end() || found->second.id != part.id) {
    co_return;
  }
  std::vector<std::filesystem::path> files = std::move(found->second.waiting[part.data_type]);
  found->second.waiting.erase(part.data_type);
  found->second.queued.erase(part.data_type);
  // The landing copies these (and says what fails).
  if (found->second.failed || paused_preuploads(sink->name())) {
    co_return;
  }
  ++found->second.running;
  try {
    // The first part of a partition removes the remote's _SUCCESS; the others of that
    // partition wait for it, so that none is rewritten under a _SUCCESS.
    std::shared_ptr<async::Semaphore>& gate = found->second.unmarking[part.data_type];
    if (!gate) {
      gate = std::make_shared<async::Semaphore>(executor_, 1);
    }
    const std::shared_ptr<async::Semaphore> held_gate = gate;
    {
      auto unmarking = co_await held_gate->hold();
      if (!preuploads_.at(part.key).unmarked.contains(part.data_type)) {
        if (preuploads_.at(part.key).failed) {
          throw sink::SinkError(sink::SinkError::Kind::unavailable, "an earlier pre-upload failed");
        }
        co_await sink->unmark(part.job, part.data_type, part.slot);
        preuploads_.at(part.key).unmarked.insert(part.data_type);
      }
    }
    if (!stopping_) {
      co_await sink->preupload(files, part.job, part.data_type, part.slot);
    }
  } catch (const std::exception& error) {
    // The landing copies these parts (and the rest of the slot) and says what fails.
    preuploads_.at(part.key).failed = true;
    preuploads_paused_[sink->name()] = std::chrono::steady_clock::now() + kFirstUploadBackoff;
    spdlog::debug("job={} slot={} sink={}: pre-upload of {} part(s) of {} failed: {}", part.job,
                  part.slot.name(), sink->name(), files.size(), part.data_type, error.what());
  }
  --preuploads_.at(part.key).running;
}

asio::awaitable<void> Scheduler::end_preuploads(const std::string& key) {
  auto found = preuploads_.find(key);
  if (found == preuploads_.end()) {
    co_return;
  }
  // Those still queued see another id and drop themselves.
  found->second.id = next_preuploads_id_++;
  // Polled: at most kUploadsPerSink copies run, each ends within its timeout (and at
  // once at a stop), and a landing waits for nothing else.
  asio::steady_timer timer{executor_};
  while (preuploads_.at(key).running > 0) {
    timer.expires_after(std::chrono::milliseconds{50});
    co_await timer.async_wait(asio::use_awaitable);
  }
  preuploads_.erase(key);
}

}  // namespace gio::scheduler
