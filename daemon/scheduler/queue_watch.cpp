#include "scheduler/queue_watch.hpp"

#include <algorithm>
#include <array>
#include <set>

#include "ops/logging.hpp"
#include "scheduler/notices.hpp"
#include "scheduler/scheduler.hpp"

namespace gio::scheduler {

namespace asio = boost::asio;

namespace {

// A writer's event can come before its commit is visible: its WAL frames are written
// first, then fsynced, and the WAL index (shared memory, which fires no event) is updated
// after. So the database is looked at again after the last event of a burst: soon (a
// command is to be picked up within a second), and once more a second later for a writer
// whose fsync was slow and whose connection stays open (no close event follows). Later
// than that, the loop's own deadline (at most a minute) finds it.
constexpr std::array<std::chrono::milliseconds, 2> kRechecks{std::chrono::milliseconds{250},
                                                             std::chrono::milliseconds{1000}};

std::set<std::string> database_files(const std::filesystem::path& db) {
  const std::string name = db.filename().string();
  return {name, name + "-wal", name + "-journal"};
}

}  // namespace

QueueWatch::QueueWatch(asio::any_io_executor executor, const std::filesystem::path& db,
                       std::function<bool()> changed, std::function<void()> on_change)
    : changed_(std::move(changed)), on_change_(std::move(on_change)), recheck_(executor) {
  dir_.emplace(executor, db.parent_path(), database_files(db), [this] { look(); });
  say_if_polled();
}

void QueueWatch::say_if_polled() {
  if (dir_->active() || std::exchange(said_polled_, true)) {
    return;
  }
  ops::log_event(
      ops::Level::warning, "queue_watch",
      "cannot watch the state database for other processes' commands; looking "
      "for them every 2s instead",
      {{"reason", dir_->why().empty() ? "the watch of its directory ended" : dir_->why()}});
}

void QueueWatch::look() {
  say_if_polled();
  if (changed_()) {
    on_change_();
  }
  recheck(0);  // the series starts again from this event
}

void QueueWatch::recheck(std::size_t index) {
  // A newer event re-arms the timer; a wait it cancels, or one whose handler was already
  // queued, is told apart by the series' number and ends there.
  const std::uint64_t series = index == 0 ? ++recheck_series_ : recheck_series_;
  const auto after = index == 0 ? kRechecks[0] : kRechecks[index] - kRechecks[index - 1];
  recheck_.expires_after(after);
  recheck_.async_wait([this, index, series](const boost::system::error_code& error) {
    if (error || series != recheck_series_) {
      return;  // cancelled (the watch may be gone) or superseded by a newer event
    }
    if (changed_()) {
      on_change_();
    }
    if (index + 1 < kRechecks.size()) {
      recheck(index + 1);
    }
  });
}

bool Scheduler::queue_changed_elsewhere() {
  const std::int64_t version = store_.data_version();
  const bool changed = version != data_version_;
  data_version_ = version;
  return changed;
}

void Scheduler::log_queue_change() {
  // Another process (backfill, retry, verify --repair) committed to the database: the
  // daemon's log says what is now due, so that their work shows up here too.
  try {
    const Instant now = clock_.now();
    std::vector<state::SlotRecord> due = store_.due(now, 100000, generation_->job_names);
    std::erase_if(due, [this](const state::SlotRecord& record) {
      return in_flight_.contains(slot_key(record.job, record.slot));
    });
    std::set<std::string> jobs;
    for (const state::SlotRecord& record : due) {
      jobs.insert(record.job);
    }
    std::string job_list;
    for (const std::string& job : jobs) {
      job_list += (job_list.empty() ? "" : ",") + job;
    }
    ops::Fields fields{{"slots", due.size()}};
    if (!due.empty()) {
      std::ranges::sort(due, {}, &state::SlotRecord::start);
      fields.emplace_back("jobs", job_list);
      fields.emplace_back("first", due.front().slot);
      fields.emplace_back("last", due.back().slot);
    }
    ops::log_event(ops::Level::info, "queue_changed",
                   "another process changed the queue; slots due now", fields);
  } catch (const state::StateError& error) {
    ops::log_event(ops::Level::warning, "queue_changed", "another process changed the queue",
                   {{"reason", error.what()}});
  }
}

void Scheduler::watch_queue() {
  const auto changed = [this] {
    try {
      return queue_changed_elsewhere();
    } catch (const state::StateError&) {
      return true;  // cannot tell (locked, say): the loop looks, and waits if it must
    }
  };
  queue_watch_.emplace(executor_, config().state_db, changed, [this] {
    queue_changed_ = true;
    wake_.notify();
  });
}

}  // namespace gio::scheduler
