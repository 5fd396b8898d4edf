#pragma once

// The scheduler composes the other modules: it plans each job's slots into the state
// store, and runs one coroutine per due slot that asks the API, polls, downloads and
// archives, recording every step before acting on it.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "api/client.hpp"
#include "archive/archive.hpp"
#include "config/config.hpp"
#include "download/downloader.hpp"
#include "scheduler/async.hpp"
#include "slot/slot.hpp"
#include "state/state_store.hpp"

namespace gio::scheduler {

class Scheduler {
 public:
  Scheduler(boost::asio::any_io_executor executor, const config::Config& config, const Clock& clock,
            state::StateStore& store, archive::Archive& archive, http::Client& http,
            download::Downloader& downloader);

  // One pass: every slot due now is asked for once and, where finished, archived.
  boost::asio::awaitable<void> run_once();
  // The daemon: plans, works and sleeps until the next due time, until stop().
  boost::asio::awaitable<void> run();
  // Starts no new slot work; run() returns once its loop notices, leaving the slots in
  // flight as they are: the caller ends the process, and the next start resumes them
  // (every step is recorded before it is taken). The Scheduler must outlive the
  // io_context's handlers, which still refer to it.
  void stop();

 private:
  enum class DownloadResult { done, links_expired, retry_later, failed };
  struct SlotDownload {
    DownloadResult result = DownloadResult::done;
    std::string error;
    std::size_t files = 0;
    std::uint64_t bytes = 0;
  };

  void plan(Instant now);
  // When the next slot of `job` that is not planned yet becomes ready.
  Instant next_plan_time(const config::Job& job, Instant now) const;
  // Starts a worker for every due slot not already being worked on, up to the cap.
  void start_due_work(Instant now, std::set<std::string>* started_once);
  boost::asio::awaitable<void> process(state::SlotRecord record);
  // The chart-job part of process(): every chart id of the slot asked and archived.
  boost::asio::awaitable<void> process_chart(const config::Job& job, const Slot& slot,
                                             const state::SlotRecord& record);
  // A user-list job (resource: segmentations | tags): every list id asked; the done
  // ones downloaded through download_slot. True when links expired mid-download and
  // the lists should be asked again at once.
  boost::asio::awaitable<bool> process_user_lists(const config::Job& job, const Slot& slot,
                                                  state::SlotRecord& record);
  boost::asio::awaitable<SlotDownload> download_slot(const config::Job& job, const Slot& slot,
                                                     const api::RawExport& answer);
  // The slot needs a person (or `retry`): recorded, and logged as event=slot_failed.
  void fail_slot(const config::Job& job, const Slot& slot, const std::string& reason,
                 bool count_attempt);
  void retry_later(const config::Job& job, const state::SlotRecord& record,
                   const std::string& error, std::optional<std::chrono::seconds> retry_after,
                   bool count_attempt);

  boost::asio::any_io_executor executor_;
  const config::Config& config_;
  const Clock& clock_;
  state::StateStore& store_;
  archive::Archive& archive_;
  download::Downloader& downloader_;
  std::unique_ptr<api::CodeCache> codes_;                              // signed codes, in store_
  std::map<std::string, std::unique_ptr<api::RateLimiter>> limiters_;  // by project
  std::map<std::string, std::unique_ptr<api::Client>> apis_;           // by project
  std::map<std::string, Instant> planned_until_;  // by job: start of the next unplanned slot
  std::vector<std::string> job_names_;            // the configured jobs
  std::set<std::string> in_flight_;               // "job/slot" keys being worked on
  // Slots whose failure could not even be recorded, held back until then (steady time).
  std::map<std::string, std::chrono::steady_clock::time_point> cool_down_;
  Semaphore downloads_;
  Signal wake_;
  TaskGroup workers_;  // one task per slot in flight
  bool stopping_ = false;
};

}  // namespace gio::scheduler
