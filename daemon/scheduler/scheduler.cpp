#include "scheduler/scheduler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>

#include "ops/exporter_metrics.hpp"
#include "ops/logging.hpp"
#include "scheduler/fairness.hpp"
#include "scheduler/notices.hpp"
#include "scheduler/planner.hpp"

namespace gio::scheduler {
namespace {

namespace asio = boost::asio;
using std::chrono::seconds;

// Slots worked on at once; their API calls queue on the rate limiter and their
// downloads on the download semaphore, so this only bounds memory and open files.
constexpr std::size_t kMaxSlotsInFlight = 16;
// The loop looks at the clock at least this often (wall-clock jumps, new work).
constexpr seconds kMaxSleep{60};
// Where inotify is unavailable (queue_watch.hpp), how often the loop asks the database
// whether another process queued work (backfill, retry, verify --repair): one cheap
// PRAGMA, so well inside a poll interval.
constexpr seconds kQueueCheckEvery{2};
// A state database the loop cannot use (a full disk, a failing file) is tried again
// after this long; one locked by another process, after kLockedRetry.
constexpr seconds kStoreRetry{5};
constexpr seconds kLockedRetry{1};
// What the loop writes to find a failing database writable again (see its use).
constexpr std::size_t kRoomForAWrite = 64 * 1024;

// Signed codes live in the state database: a restart must reuse the code in force,
// since asking for a new one invalidates it.
class StoredCodes final : public api::CodeCache {
 public:
  explicit StoredCodes(state::StateStore& store) : store_(store) {}
  std::optional<api::CachedCode> load(std::string_view project) override {
    const auto text = store_.get_value(key(project));
    return text ? api::cached_code_from_text(*text) : std::nullopt;
  }
  void save(std::string_view project, const api::CachedCode& code) override {
    store_.set_value(key(project), api::to_text(code));
  }

 private:
  static std::string key(std::string_view project) { return "auth_code/" + std::string{project}; }
  state::StateStore& store_;
};

asio::steady_timer::time_point steady_deadline(Instant wall_deadline, Instant wall_now) {
  // Timers run on the steady clock so that wall-clock jumps cannot stall them.
  return asio::steady_timer::clock_type::now() + std::max(seconds{0}, wall_deadline - wall_now);
}

}  // namespace

std::vector<std::string> restart_only_changes(const config::Config& running,
                                              const config::Config& next) {
  std::vector<std::string> changes;
  const auto check = [&changes](bool same, std::string_view key) {
    if (!same) {
      changes.push_back(std::string{key} + " changed");
    }
  };
  check(running.state_db == next.state_db, "state_db");
  check(running.archive_dir == next.archive_dir, "archive_dir");
  check(running.archive_umask == next.archive_umask, "archive_umask");
  check(running.http.api_base == next.http.api_base, "http.api_base");
  check(running.http.timeout == next.http.timeout, "http.timeout");
  check(running.http.ca_file == next.http.ca_file, "http.ca_file");
  check(running.http.proxy == next.http.proxy, "http.proxy");
  check(running.http.no_proxy == next.http.no_proxy, "http.no_proxy");
  check(running.limits.parallel_downloads == next.limits.parallel_downloads,
        "limits.parallel_downloads");
  check(running.limits.max_part_size == next.limits.max_part_size, "limits.max_part_size");
  check(running.metrics.listen == next.metrics.listen, "metrics.listen");
  return changes;
}

JobChanges job_changes(const config::Config& running, const config::Config& next) {
  JobChanges changes;
  for (const config::Job& job : next.jobs) {
    const config::Job* before = running.find_job(job.name);
    if (before == nullptr) {
      changes.added.push_back(job.name);
      continue;
    }
    const auto check = [&](bool same, std::string_view key) {
      if (!same) {
        changes.changed.push_back(job.name + "." + std::string{key});
      }
    };
    check(before->project == job.project, "project");
    check(before->granularity == job.granularity, "granularity");
    check(before->ready_after == job.ready_after, "ready_after");
    check(before->poll_every == job.poll_every, "poll_every");
    check(before->give_up_after == job.give_up_after, "give_up_after");
    check(before->not_exists_grace == job.not_exists_grace, "not_exists_grace");
    check(before->backfill == job.backfill, "backfill");
    check(before->link_expire == job.link_expire, "link_expire");
    check(before->verify == job.verify, "verify");
    check(before->hooks == job.hooks, "hooks");
    // A sink whose settings changed changes every job that lands on it.
    const config::Sink* sink_before = running.sink_of(*before);
    const config::Sink* sink_next = next.sink_of(job);
    const bool same_sink =
        (sink_before == nullptr) == (sink_next == nullptr) &&
        (sink_before == nullptr || (sink_before->name == sink_next->name &&
                                    sink_before->rclone_remote == sink_next->rclone_remote &&
                                    sink_before->rclone_config == sink_next->rclone_config &&
                                    sink_before->keep_local == sink_next->keep_local));
    check(before->sink == job.sink && same_sink, "sink");
    check(before->settings.index() == job.settings.index(), "kind");
    check(before->settings.index() != job.settings.index() || before->settings == job.settings,
          "settings");
  }
  for (const config::Job& job : running.jobs) {
    if (next.find_job(job.name) == nullptr) {
      changes.removed.push_back(job.name);
    }
  }
  return changes;
}

Scheduler::Scheduler(asio::any_io_executor executor, std::shared_ptr<const config::Config> config,
                     const Clock& clock, state::StateStore& store, archive::Archive& archive,
                     http::Client& http, download::Downloader& downloader, ops::Registry& metrics,
                     SinkSupport sinks)
    : executor_(executor),
      clock_(clock),
      clock_watch_(clock),
      store_(store),
      archive_(archive),
      http_(http),
      metrics_(metrics),
      codes_(std::make_unique<StoredCodes>(store)),
      store_waits_(executor, config->state_db.string()),
      sink_support_(std::move(sinks)),
      downloads_(executor, downloader, archive, clock, config->limits.parallel_downloads, *this),
      wake_(executor),
      workers_(executor),
      hooks_(executor) {
  // The loop's connection: a locked database fails a try at once, and the caller waits
  // on a timer (StoreWaits), never in SQLite's sleep on the loop's thread.
  store_.set_busy_timeout(StoreWaits::kTryTimeout);
  reload(std::move(config));
}

void Scheduler::reload(std::shared_ptr<const config::Config> config) {
  auto next = std::make_shared<Generation>();
  next->config = std::move(config);
  for (const config::Job& job : next->config->jobs) {
    next->job_names.push_back(job.name);
    // Counters of a job exist from its start (or its reload) on, at 0: alerts on
    // increase() then see its first failure or lost slot.
    ops::zero_job_counters(metrics_, job.name);
    zero_schema_counters(job);
  }
  for (const config::Project& project : next->config->projects) {
    ops::zero_project_counters(metrics_, project);
    // A project whose rate is unchanged keeps its limiter: workers of the old
    // generation and the new one then share one queue and never exceed the rate.
    std::shared_ptr<api::RateLimiter> limiter;
    if (generation_ && generation_->config->limits.api_requests_per_second ==
                           next->config->limits.api_requests_per_second) {
      if (const auto found = generation_->limiters.find(project.name);
          found != generation_->limiters.end()) {
        limiter = found->second;
      }
    }
    if (!limiter) {
      limiter = std::make_shared<api::RateLimiter>(executor_,
                                                   next->config->limits.api_requests_per_second);
    }
    next->apis[project.name] = std::make_unique<api::Client>(
        http_, next->config->http.api_base, project, *limiter, clock_, codes_.get(), &metrics_);
    next->limiters[project.name] = std::move(limiter);
  }
  // A reload builds each sink afresh from its settings; uploads in flight keep the one
  // they started with (their generation holds it).
  for (const config::Sink& sink : next->config->sinks) {
    ops::zero_sink_counters(metrics_, sink.name);
    if (sink_support_.hash_pool == nullptr) {
      throw std::logic_error("sink " + sink.name + " configured without a hash pool");
    }
    next->sinks[sink.name] = std::make_shared<sink::Sink>(executor_, sink, *sink_support_.hash_pool,
                                                          sink_support_.rclone);
  }
  if (daemon_) {
    forget_removed_jobs(next->job_names);
  }
  generation_ = std::move(next);
  retry_uploads_now_ = true;
  upload_failures_.clear();
  // A changed window or readiness re-plans from scratch; slots already in the store
  // keep their rows (planning only inserts what is missing), so nothing done is redone.
  planned_until_.clear();
  wake_.notify();
}

void Scheduler::forget_removed_jobs(const std::vector<std::string>& job_names) {
  // The readiness delays of a job gone from the config (issue 18) would stay forever.
  // Only the daemon forgets: a `run --once` with a smaller config on the same database
  // must not wipe days of other jobs' learning. A busy database leaves them to the next
  // start or reload; they harm nothing.
  try {
    store_.forget_readiness_except(job_names);
  } catch (const state::StateError& error) {
    spdlog::debug("readiness of removed jobs kept for now: {}", error.what());
  }
}

const config::Config& Scheduler::config() const {
  return *generation_->config;
}

void Scheduler::stop() {
  stopping_ = true;
  downloads_.stop();
  wake_.notify();
}

void Scheduler::start_due_work(Instant now, std::set<std::string>* started_once) {
  // While downloads are paused or the database fails, a new ask would only fail the
  // same way and count an attempt (asks_allowed_in_flight, pause.cpp).
  const std::size_t cap = asks_allowed_in_flight(kMaxSlotsInFlight);
  if (in_flight_.size() >= cap || stopping_) {
    return;
  }
  const std::size_t limit =
      kMaxSlotsInFlight + in_flight_.size() + (started_once != nullptr ? started_once->size() : 0);
  const auto steady_now = asio::steady_timer::clock_type::now();
  const std::shared_ptr<const Generation> generation = generation_;
  // Fresh work first; the NOT_EXISTS backlog after it, in at most its share of the
  // slots in flight (fairness.hpp).
  for (state::SlotRecord& record :
       store_.due_fresh_first(now, limit, generation->job_names, not_exists_status())) {
    if (in_flight_.size() >= cap || stopping_) {
      return;
    }
    const bool backlog = is_backlog(record);
    if (backlog && backlog_in_flight_.size() >= backlog_share(kMaxSlotsInFlight)) {
      return;  // every row after this one is backlog too
    }
    std::string key = slot_key(record.job, record.slot);
    if (const auto cooling = cool_down_.find(key); cooling != cool_down_.end()) {
      if (cooling->second > steady_now) {
        continue;
      }
      cool_down_.erase(cooling);
    }
    if (in_flight_.contains(key) ||
        (started_once != nullptr && !started_once->insert(key).second)) {
      continue;
    }
    in_flight_.insert(key);
    if (backlog) {
      backlog_in_flight_.insert(key);
    }
    workers_.spawn([this, generation, record = std::move(record), key]() -> asio::awaitable<void> {
      co_await work_on(generation, record);
      in_flight_.erase(key);
      backlog_in_flight_.erase(key);
      wake_.notify();
    });
  }
}

asio::awaitable<void> Scheduler::work_on(std::shared_ptr<const Generation> generation,
                                         state::SlotRecord record) {
  const config::Job& job = *generation->config->find_job(record.job);
  std::string failure;
  try {
    for (;;) {
      bool locked = false;
      try {
        co_await process(generation, record);
        co_return;
      } catch (const state::StateError& error) {
        if (!error.busy()) {
          throw;
        }
        locked = true;
      }
      if (!locked || stopping_) {
        co_return;
      }
      // The pass stopped at a step it could not record (a file, the downloading mark):
      // another process holds the database. What was recorded stays; the rest is
      // redone from the slot's row, as after a crash, once the database takes writes.
      spdlog::info(
          "job={} slot={}: the state database is locked by another process; the "
          "pass is redone once it takes writes",
          record.job, record.slot);
      std::optional<state::SlotRecord> row;
      co_await store_waits_.retry([&] {
        store_.check_writable(clock_.now(), StoreWaits::kTryTimeout);
        row = store_.find(record.job, record.slot);
      });
      if (stopping_ || !row || row->state == state::SlotState::done ||
          row->state == state::SlotState::uploading || row->state == state::SlotState::failed ||
          row->state == state::SlotState::lost) {
        co_return;
      }
      record = std::move(*row);
    }
  } catch (const state::StateError& error) {
    // A failing database (not a lock: that is waited for above) is said once, and holds
    // every ask until it is writable again (pause.cpp).
    failure = error.what();
    note_store_trouble(failure);
  } catch (const std::exception& error) {
    failure = error.what();
    ops::log_event(ops::Level::error, "slot_error", "slot work failed unexpectedly",
                   {{"job", record.job}, {"slot", record.slot}, {"reason", failure}});
  }
  // A worker must never take the daemon down. The slot is put off like any transient
  // failure; if even that cannot be recorded (the database or disk is failing), it is
  // held back in memory so it cannot spin.
  try {
    retry_later(job, record, {.reason = failure}, false);
  } catch (const std::exception&) {
    cool_down_[slot_key(record.job, record.slot)] =
        asio::steady_timer::clock_type::now() + job.poll_every;
  }
}

asio::awaitable<void> Scheduler::run_once() {
  // Planning and the retention watch go by the sure time (clock_watch.hpp): a wall
  // clock that jumped ahead plans no slot that may not exist and loses none.
  const ClockWatch::Reading reading = read_clock();
  std::map<std::string, Planned> planned;
  co_await store_waits_.retry([&] {
    handle_clock_jump(reading);
    pull_in_next_at(reading.wall);
    store_.resume_downloads(reading.wall);
    // A pass is a start: uploads backed off by an earlier process are due now.
    store_.resume_uploads(reading.wall);
    planned = plan(reading.sure);
    watch_retention(reading.sure);
  });
  log_catch_up(planned);
  std::set<std::string> started;
  std::set<std::string> uploaded;
  // Later rounds pick up the due slots that did not fit under the cap; each slot is
  // worked on (and uploaded) at most once per pass. A slot downloaded in this pass is
  // landed on its sink in it too.
  for (;;) {
    start_due_work(clock_.now(), &started);
    co_await store_waits_.retry([&] { start_due_uploads(clock_.now(), &uploaded); });
    if (in_flight_.empty() && uploads_in_flight_.empty()) {
      break;
    }
    co_await wake_.wait_until(asio::steady_timer::time_point::max());
  }
  co_await store_waits_.retry([&] { prune_local(clock_.now()); });
  co_await workers_.wait();
  co_await hooks_.wait();
}

asio::awaitable<void> Scheduler::run() {
  daemon_ = true;
  forget_removed_jobs(generation_->job_names);
  const Instant start = clock_.now();
  int resumed = 0;
  int uploads = 0;
  std::map<std::string, Planned> at_start;
  co_await store_waits_.retry([&] {
    pull_in_next_at(start);
    resumed = store_.resume_downloads(start);
    uploads = store_.resume_uploads(start);
    at_start = plan(start);
  });
  if (resumed > 0) {
    ops::log_event(ops::Level::info, "resume", "downloads interrupted by the last stop",
                   {{"slots", resumed}});
  }
  if (uploads > 0) {
    ops::log_event(ops::Level::info, "resume_uploads",
                   "slots archived locally and not yet landed on their sink: uploading now",
                   {{"slots", uploads}});
  }
  log_catch_up(at_start);
  queue_changed_elsewhere();
  watch_queue();
  bool loop_locked = false;  // the loop's last round found the database locked
  while (!stopping_) {
    alive_at_ = asio::steady_timer::clock_type::now();
    const ClockWatch::Reading reading = read_clock();
    const Instant now = reading.wall;
    Instant deadline = now + kMaxSleep;
    try {
      if (!store_trouble_.empty()) {
        // Throws while it still fails. With room for the largest routine write (a slot's
        // row with its indexes, a pass's files): a small row alone still fits on a nearly
        // full disk, and "writable again" would flap with every write that fails after it.
        store_.check_writable(now, StoreWaits::kTryTimeout, kRoomForAWrite);
      }
      // After a jump, next_at values left far ahead are pulled in. Planning goes by the
      // sure time: the wall clock moving forward with the steady clock plans the slots
      // it passed; a jump ahead plans them only once the clock is believed; one back
      // plans nothing (planning inserts only missing rows, after the last one).
      handle_clock_jump(reading);
      for (const auto& [job, planned] : plan(reading.sure)) {
        ops::log_event(ops::Level::info, "planned", "slots planned",
                       {{"job", job},
                        {"slots", planned.count},
                        {"first", planned.first},
                        {"last", planned.last}});
      }
      watch_retention(reading.sure);
      start_due_work(now, nullptr);
      if (retry_uploads_now_) {
        store_.resume_uploads(now);
        retry_uploads_now_ = false;
      }
      start_due_uploads(now, nullptr);
      prune_local(now);
      // Sleep until the next slot is due, the next slot becomes ready, or a worker ends;
      // another process's commit wakes it too (queue_watch.hpp; polled every 2 s without
      // inotify).
      if (const auto next_due = store_.next_due(); next_due && *next_due > now) {
        deadline = std::min(deadline, *next_due);
      }
      for (const config::Job& job : config().jobs) {
        deadline = std::min(deadline, now + (next_plan_time(job, reading.sure) - reading.sure));
      }
      if (const auto held = ask_hold_left()) {
        deadline = std::min(deadline, now + *held);
      }
      if (!store_trouble_.empty()) {
        ops::log_event(ops::Level::info, "state_db_ok", "the state database answers again", {});
        store_trouble_.clear();
      }
      if (std::exchange(loop_locked, false)) {
        store_waits_.answered();
      }
    } catch (const state::StateError& error) {
      if (error.busy()) {
        // Another process holds the database: tried again soon, and never waited for in
        // SQLite on the loop's thread; StoreWaits warns once when it lasts.
        loop_locked = true;
        store_waits_.busy();
        deadline = now + kLockedRetry;
      } else {
        // A full disk, a failing file: not a reason to stop, since nothing is lost while
        // the loop waits; no slot is asked meanwhile (pause.cpp).
        note_store_trouble(error.what());
        deadline = now + kStoreRetry;
      }
    }
    // Sleep until the deadline; commands of other processes wake the loop as they
    // commit (watch_queue), or are polled for where that cannot be watched.
    const auto wake_at = steady_deadline(deadline, now);
    const bool polling = !queue_watch_->active();
    for (;;) {
      const auto check_at = polling ? asio::steady_timer::clock_type::now() + kQueueCheckEvery
                                    : asio::steady_timer::time_point::max();
      asleep_until_ = std::min(wake_at, check_at);
      const bool woken = co_await wake_.wait_until(asleep_until_);
      alive_at_ = asio::steady_timer::clock_type::now();
      asleep_until_ = {};
      if (std::exchange(queue_changed_, false)) {
        log_queue_change();
        break;
      }
      if (woken || stopping_ || check_at >= wake_at) {
        break;
      }
      if (queue_changed_elsewhere()) {
        log_queue_change();
        break;
      }
    }
  }
  spdlog::info("stopping: {} slot(s) in flight are left for the next start", in_flight_.size());
}

}  // namespace gio::scheduler
