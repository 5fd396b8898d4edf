#include "scheduler/scheduler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <random>

#include "chart/chart.hpp"
#include "chart/slot_work.hpp"
#include "ops/exporter_metrics.hpp"
#include "scheduler/planner.hpp"

namespace gio::scheduler {
namespace {

namespace asio = boost::asio;
using std::chrono::seconds;

// Slots worked on at once; their API calls queue on the rate limiter and their
// downloads on the download semaphore, so this only bounds memory and open files.
constexpr std::size_t kMaxSlotsInFlight = 16;
// Fresh links asked for in one go when links keep expiring mid-download.
constexpr int kMaxLinkRefreshes = 3;
// Downloads of one part tried in one go before the slot is retried later.
constexpr int kMaxDownloadTries = 3;
// The loop looks at the clock at least this often (wall-clock jumps, new work).
constexpr seconds kMaxSleep{60};
// How often the loop asks the database whether another process queued work
// (backfill, retry, verify --repair): one cheap PRAGMA, so well inside a poll interval.
constexpr seconds kQueueCheckEvery{2};
// How often slots are checked against the vendor's retention.
constexpr seconds kRetentionWatchEvery{60};
// A failed local write (disk full, I/O error) pauses every download this long (or for
// the job's poll_every, when shorter).
constexpr seconds kLocalFaultPause{30};
// A state database the loop cannot use (locked by another process past the busy
// timeout, a full disk) is tried again after this long.
constexpr seconds kStoreRetry{5};

// Once-only log events already written for a slot (the store's `notices` bitmask), so
// a restart or the next poll does not repeat them.
constexpr int kNoticeWaiting = 1;    // event=slot_waiting
constexpr int kNoticeAtRisk72h = 2;  // event=slot_at_risk, 72 h before loss
constexpr int kNoticeAtRisk24h = 4;  // event=slot_at_risk, 24 h before loss
constexpr int kNoticeNotExists = 8;  // event=slot_not_exists: NOT_EXISTS past the grace
constexpr std::chrono::hours kAtRisk72h{72};
constexpr std::chrono::hours kAtRisk24h{24};

std::string key(std::string_view job, std::string_view slot) {
  return std::string{job} + "/" + std::string{slot};
}

// Exponential backoff with jitter for transient failures, capped at poll_every.
seconds backoff(const config::Job& job, int attempts) {
  const int exponent = std::clamp(attempts, 0, 10);
  const seconds base = std::min<seconds>(job.poll_every, seconds{5} * (1 << exponent));
  static std::minstd_rand random{std::random_device{}()};
  std::uniform_real_distribution<double> jitter{0.8, 1.0};
  return std::max(seconds{1}, seconds{static_cast<long>(base.count() * jitter(random))});
}

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

// A slot this close to the vendor's retention is asked about before newer work.
constexpr std::chrono::hours kNearLoss{48};

// Where a call about `record` queues on the project's rate limiter: fresh links for a
// download under way first (a slot whose links lapse may lose its partial work), then
// slots close to their loss, then first asks, then polls and retries.
api::Turn turn_for(const state::SlotRecord& record, const Slot& slot, Instant now,
                   bool refreshing_links) {
  api::Priority priority = api::Priority::poll;
  if (refreshing_links || record.state == state::SlotState::downloading) {
    priority = api::Priority::fresh_links;
  } else if (slot.lost_at() - now <= kNearLoss) {
    priority = api::Priority::near_loss;
  } else if (record.attempts == 0) {
    priority = api::Priority::first_ask;
  }
  return {.priority = priority, .slot_start = slot.start()};
}

// The raw export of `slot` as one answer. A job that names its data types asks the
// per-type endpoint once per type and gets their links merged; a job of all types
// asks the all-types endpoint once.
asio::awaitable<boost::system::result<api::RawExport, api::Error>> ask_raw_export(
    api::Client& api, const config::Job& job, const Slot& slot, api::Turn turn) {
  const auto expire = std::chrono::duration_cast<std::chrono::minutes>(job.link_expire);
  if (job.data_types.empty()) {
    co_return co_await api.raw_export(slot, expire, turn);
  }
  api::RawExport merged;
  merged.status = api::ExportStatus::finished;
  for (const std::string& type : job.data_types) {
    auto answer = co_await api.raw_export_type(slot, type, expire, turn);
    if (!answer) {
      co_return answer.error();
    }
    if (answer->status != api::ExportStatus::finished) {
      // The slot can only be downloaded once every type is FINISHED, so it follows the
      // first type that is not; asking the rest now would only spend the project's
      // few requests per second.
      co_return std::move(*answer);
    }
    merged.links.merge(answer->links);
  }
  co_return merged;
}

std::string format_hours(std::chrono::seconds left) {
  return std::to_string(std::chrono::duration_cast<std::chrono::hours>(left).count()) + "h";
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
  check(running.limits.parallel_downloads == next.limits.parallel_downloads,
        "limits.parallel_downloads");
  check(running.metrics.listen == next.metrics.listen, "metrics.listen");
  return changes;
}

struct Scheduler::Generation {
  std::shared_ptr<const config::Config> config;
  std::vector<std::string> job_names;
  std::map<std::string, std::shared_ptr<api::RateLimiter>> limiters;  // by project
  std::map<std::string, std::unique_ptr<api::Client>> apis;           // by project
};

Scheduler::Scheduler(asio::any_io_executor executor, std::shared_ptr<const config::Config> config,
                     const Clock& clock, state::StateStore& store, archive::Archive& archive,
                     http::Client& http, download::Downloader& downloader, ops::Registry& metrics)
    : executor_(executor),
      clock_(clock),
      store_(store),
      archive_(archive),
      http_(http),
      downloader_(downloader),
      metrics_(metrics),
      codes_(std::make_unique<StoredCodes>(store)),
      downloads_(executor, config->limits.parallel_downloads),
      wake_(executor),
      workers_(executor),
      hooks_(executor) {
  reload(std::move(config));
}

void Scheduler::reload(std::shared_ptr<const config::Config> config) {
  auto next = std::make_shared<Generation>();
  next->config = std::move(config);
  for (const config::Job& job : next->config->jobs) {
    next->job_names.push_back(job.name);
  }
  for (const config::Project& project : next->config->projects) {
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
  generation_ = std::move(next);
  // A changed window or readiness re-plans from scratch; slots already in the store
  // keep their rows (planning only inserts what is missing), so nothing done is redone.
  planned_until_.clear();
  wake_.notify();
}

const config::Config& Scheduler::config() const {
  return *generation_->config;
}

void Scheduler::stop() {
  stopping_ = true;
  wake_.notify();
}

std::map<std::string, Scheduler::Planned> Scheduler::plan(Instant now) {
  std::map<std::string, Planned> planned;
  // One commit for every job (a commit per job cost 200 fsyncs at start with 200 jobs);
  // how far each job is planned moves on only once the rows are in.
  std::map<std::string, Instant> planned_until;
  std::optional<state::StateStore::Batch> batch;  // opened by the first job with slots
  for (const config::Job& job : config().jobs) {
    const auto known = planned_until_.find(job.name);
    const Instant from = known == planned_until_.end() ? Instant{} : known->second;
    auto slots = plan_slots(job, from, now);
    if (slots.empty()) {
      continue;
    }
    if (!batch) {
      batch.emplace(store_);
    }
    planned_until[job.name] = Slot::containing(slots.back().start, job.granularity).next().start();
    if (known == planned_until_.end()) {
      // The first planning since start (or a reload) covers the whole window: the rows
      // already there are left out, so that what is reported is what is new.
      std::set<std::string> existing;
      for (const state::SlotRecord& record :
           store_.slots(job.name, slots.front().start, slots.back().start + seconds{1})) {
        existing.insert(record.slot);
      }
      std::erase_if(slots, [&existing](const state::PlannedSlot& slot) {
        return existing.contains(slot.slot);
      });
    }
    if (const int added = slots.empty() ? 0 : store_.plan(job.name, slots, now); added > 0) {
      planned[job.name] = {.first = slots.front().slot, .last = slots.back().slot, .count = added};
    }
  }
  if (batch) {
    batch->commit();
  }
  for (auto& [job, until] : planned_until) {
    planned_until_[job] = until;
  }
  return planned;
}

void Scheduler::log_catch_up(const std::map<std::string, Planned>& planned_at_start) {
  // The slots that became ready while the daemon was not running (or never ran).
  for (const auto& [job, planned] : planned_at_start) {
    spdlog::info("event=catch_up job={} slots={} first={} last={}", job, planned.count,
                 planned.first, planned.last);
  }
}

void Scheduler::watch_retention(Instant now) {
  const auto steady_now = asio::steady_timer::clock_type::now();
  if (steady_now < next_retention_watch_) {
    return;
  }
  next_retention_watch_ = steady_now + kRetentionWatchEvery;
  const Generation& generation = *generation_;
  // After an outage thousands of slots can come at risk or be lost at once: they are
  // stored in one commit (one each kept the loop busy for half a minute with 200 jobs),
  // and announced after it.
  std::vector<state::SlotRecord> lost;
  std::vector<state::SlotRecord> at_risk;
  std::optional<state::StateStore::Batch> batch;  // opened by the first notice to store
  for (state::SlotRecord& record :
       store_.not_done_before(now - kRetention + kAtRisk72h, generation.job_names)) {
    if (in_flight_.contains(key(record.job, record.slot))) {
      continue;  // its worker decides; a download under way may still finish in time
    }
    const Instant lost_at = record.start + kRetention;
    const bool gone = now >= lost_at;
    const int notice = now >= lost_at - kAtRisk24h ? kNoticeAtRisk24h : kNoticeAtRisk72h;
    if (!gone && (record.notices & notice) != 0) {
      continue;  // this warning was given already
    }
    if (!batch) {
      batch.emplace(store_);
    }
    if (gone) {
      store_lost(record, now);
      lost.push_back(std::move(record));
      continue;
    }
    store_.update(record.job, record.slot,
                  {.state = record.state,
                   .next_at = record.next_at,
                   .notices = record.notices | notice | kNoticeAtRisk72h},
                  now);
    at_risk.push_back(std::move(record));
  }
  if (batch) {
    batch->commit();
  }
  for (const state::SlotRecord& record : lost) {
    announce_lost(record);
  }
  for (const state::SlotRecord& record : at_risk) {
    const Instant lost_at = record.start + kRetention;
    const std::string last = record.last_error.empty() ? record.api_status : record.last_error;
    spdlog::warn(
        "event=slot_at_risk job={} slot={} state={} left={} lost_at={} attempts={} "
        "reason=\"{}\"",
        record.job, record.slot, to_string(record.state), format_hours(lost_at - now),
        format_utc(lost_at), record.attempts, last.empty() ? std::string{"not asked yet"} : last);
    if (const config::Job* job = generation.config->find_job(record.job)) {
      run_hook(*job, "slot_at_risk", record.slot, record.start,
               {{"GIO_STATE", std::string{to_string(record.state)}},
                {"GIO_SECONDS_LEFT", std::to_string((lost_at - now).count())},
                {"GIO_REASON", last}});
    }
  }
}

bool Scheduler::queue_changed_elsewhere() {
  const std::int64_t version = store_.data_version();
  const bool changed = version != data_version_;
  data_version_ = version;
  return changed;
}

Instant Scheduler::next_plan_time(const config::Job& job, Instant now) const {
  const auto planned = planned_until_.find(job.name);
  const Slot next = planned == planned_until_.end()
                        ? first_in_window(job, now)
                        : Slot::containing(planned->second, job.granularity);
  return ready_at(job, next);
}

void Scheduler::start_due_work(Instant now, std::set<std::string>* started_once) {
  const std::size_t limit =
      kMaxSlotsInFlight + in_flight_.size() + (started_once != nullptr ? started_once->size() : 0);
  const auto steady_now = asio::steady_timer::clock_type::now();
  const std::shared_ptr<const Generation> generation = generation_;
  for (state::SlotRecord& record : store_.due(now, limit, generation->job_names)) {
    if (in_flight_.size() >= kMaxSlotsInFlight || stopping_) {
      return;
    }
    std::string slot_key = key(record.job, record.slot);
    if (const auto cooling = cool_down_.find(slot_key); cooling != cool_down_.end()) {
      if (cooling->second > steady_now) {
        continue;
      }
      cool_down_.erase(cooling);
    }
    if (in_flight_.contains(slot_key) ||
        (started_once != nullptr && !started_once->insert(slot_key).second)) {
      continue;
    }
    in_flight_.insert(slot_key);
    workers_.spawn(
        [this, generation, record = std::move(record), slot_key]() -> asio::awaitable<void> {
          const config::Job& job = *generation->config->find_job(record.job);
          try {
            co_await process(generation, record);
          } catch (const std::exception& error) {
            // A worker must never take the daemon down. The slot is put off like any
            // transient failure; if even that cannot be recorded (the database or disk
            // is failing), it is held back in memory so it cannot spin.
            spdlog::error("event=slot_error job={} slot={} reason=\"{}\"", record.job, record.slot,
                          error.what());
            try {
              retry_later(job, record, error.what(), std::nullopt, false);
            } catch (const std::exception&) {
              cool_down_[slot_key] = asio::steady_timer::clock_type::now() + job.poll_every;
            }
          }
          in_flight_.erase(slot_key);
          wake_.notify();
        });
  }
}

asio::awaitable<void> Scheduler::run_once() {
  const Instant now = clock_.now();
  store_.resume_downloads(now);
  log_catch_up(plan(now));
  watch_retention(now);
  std::set<std::string> started;
  // Later rounds pick up the due slots that did not fit under the cap; each slot is
  // worked on at most once per pass.
  for (;;) {
    start_due_work(clock_.now(), &started);
    if (in_flight_.empty()) {
      break;
    }
    co_await wake_.wait_until(asio::steady_timer::time_point::max());
  }
  co_await workers_.wait();
  co_await hooks_.wait();
}

asio::awaitable<void> Scheduler::run() {
  const Instant start = clock_.now();
  const int resumed = store_.resume_downloads(start);
  if (resumed > 0) {
    spdlog::info("event=resume slots={} (downloads interrupted by the last stop)", resumed);
  }
  log_catch_up(plan(start));
  queue_changed_elsewhere();
  std::string store_trouble;  // the last database failure of the loop, logged once
  while (!stopping_) {
    alive_at_ = asio::steady_timer::clock_type::now();
    const Instant now = clock_.now();
    Instant deadline = now + kMaxSleep;
    try {
      // A wall clock that jumped forward plans the slots it skipped; one that jumped
      // back plans nothing (planning inserts only missing rows, after the last one).
      for (const auto& [job, planned] : plan(now)) {
        spdlog::info("event=planned job={} slots={} first={} last={}", job, planned.count,
                     planned.first, planned.last);
      }
      watch_retention(now);
      start_due_work(now, nullptr);
      // Sleep until the next slot is due, the next slot becomes ready, or a worker ends;
      // every few seconds, look whether another process queued work.
      if (const auto next_due = store_.next_due(); next_due && *next_due > now) {
        deadline = std::min(deadline, *next_due);
      }
      for (const config::Job& job : config().jobs) {
        deadline = std::min(deadline, next_plan_time(job, now));
      }
      if (!store_trouble.empty()) {
        spdlog::info("event=state_db_ok the state database answers again");
        store_trouble.clear();
      }
    } catch (const state::StateError& error) {
      // Locked by another process past the busy timeout, or a full disk: not a reason
      // to stop, since nothing is lost while the loop waits.
      if (store_trouble != error.what()) {
        store_trouble = error.what();
        spdlog::error("event=state_db_error retry_in={}s reason=\"{}\"", kStoreRetry.count(),
                      store_trouble);
      }
      deadline = now + kStoreRetry;
    }
    const auto wake_at = steady_deadline(deadline, now);
    for (;;) {
      const auto check_at = asio::steady_timer::clock_type::now() + kQueueCheckEvery;
      const bool woken = co_await wake_.wait_until(std::min(wake_at, check_at));
      alive_at_ = asio::steady_timer::clock_type::now();
      if (woken || stopping_ || check_at >= wake_at || queue_changed_elsewhere()) {
        break;
      }
    }
  }
  spdlog::info("stopping: {} slot(s) in flight are left for the next start", in_flight_.size());
}

asio::awaitable<void> Scheduler::process(std::shared_ptr<const Generation> generation,
                                         state::SlotRecord record) {
  const config::Job& job = *generation->config->find_job(record.job);
  const auto parsed = Slot::parse(record.slot, job.granularity);
  if (!parsed) {
    // The job's granularity changed under slots planned before (a reload or an edit).
    const std::string reason = "slot name does not match the job's granularity";
    store_.update(
        record.job, record.slot,
        {.state = state::SlotState::failed, .next_at = clock_.now(), .last_error = reason},
        clock_.now());
    count(ops::kSlotFailures, record.job);
    spdlog::error("event=slot_failed job={} slot={} reason=\"{}\"", record.job, record.slot,
                  reason);
    co_return;
  }
  const Slot slot = *parsed;
  api::Client& api = *generation->apis.at(job.project);

  for (int refresh = 0; refresh <= kMaxLinkRefreshes; ++refresh) {
    Instant now = clock_.now();
    if (now >= slot.lost_at()) {
      mark_lost(record, now);
      co_return;
    }
    // Only a slot that has been asked about can be given up on: a backlog found at
    // start (or after an outage) gets its full give_up_after from then on.
    if (record.attempts > 0 && now >= give_up_at(job, slot, record.created_at)) {
      const std::string reason =
          "gave up after " + config::format_duration(job.give_up_after) +
          "; last: " + (record.last_error.empty() ? record.api_status : record.last_error);
      fail_slot(job, slot, reason, false);
      co_return;
    }

    if (job.kind == config::JobKind::chart && config::is_user_list(job.resource)) {
      // True when download links expired or were refused: the lists are asked again.
      if (co_await process_user_lists(*generation, job, slot, record)) {
        continue;
      }
      co_return;
    }
    if (job.kind == config::JobKind::chart) {
      co_await process_chart(*generation, job, slot, record);
      co_return;
    }

    auto answer = co_await ask_raw_export(api, job, slot, turn_for(record, slot, now, refresh > 0));
    now = clock_.now();
    if (!answer) {
      const api::Error& error = answer.error();
      if (error.transient) {
        retry_later(job, record, error.message, error.retry_after, true);
      } else {
        fail_slot(job, slot, error.message, true);
      }
      co_return;
    }

    const std::string status{api::to_string(answer->status)};
    switch (answer->status) {
      case api::ExportStatus::running:
      case api::ExportStatus::not_exists:
        keep_waiting(job, slot, record, status, true, "");
        co_return;
      case api::ExportStatus::error: {
        // The vendor re-runs failed exports, so ERROR is asked again until give_up_after.
        const std::string message =
            "the export failed (ERROR" +
            (answer->error_message.empty() ? std::string{} : ": " + answer->error_message) + ")";
        store_.update(job.name, slot.name(),
                      {.state = state::SlotState::pending,
                       .next_at = now + job.poll_every,
                       .api_status = status,
                       .last_error = message,
                       .count_attempt = true},
                      now);
        count(ops::kRetries, job.name);
        spdlog::warn("event=slot_retry job={} slot={} reason=\"{}\"", job.name, slot.name(),
                     message);
        co_return;
      }
      case api::ExportStatus::finished:
        break;
    }

    // Recorded before the first byte moves, so a crash resumes the downloads.
    store_.update(job.name, slot.name(),
                  {.state = state::SlotState::downloading,
                   .next_at = now + job.poll_every,
                   .api_status = status,
                   .count_attempt = true},
                  now);
    record.state = state::SlotState::downloading;
    const SlotDownload outcome = co_await download_slot(job, slot, *answer);
    now = clock_.now();
    switch (outcome.result) {
      case DownloadResult::done:
        store_.update(job.name, slot.name(),
                      {.state = state::SlotState::done, .next_at = now, .last_error = ""}, now);
        spdlog::info("event=slot_done job={} slot={} files={} bytes={}", job.name, slot.name(),
                     outcome.files, outcome.bytes);
        run_done_hook(job, slot, outcome.files, outcome.bytes);
        co_return;
      case DownloadResult::links_expired:
        spdlog::info(
            "job={} slot={}: download links expired or were refused; asking for fresh ones",
            job.name, slot.name());
        record.last_error = outcome.error;
        continue;
      case DownloadResult::retry_later:
        retry_later(job, record, outcome.error, std::nullopt, false);
        co_return;
      case DownloadResult::failed:
        fail_slot(job, slot, outcome.error, false);
        co_return;
    }
  }
  retry_later(job, record, "download links kept expiring before the downloads finished",
              std::nullopt, false);
}

asio::awaitable<void> Scheduler::process_chart(const Generation& generation, const config::Job& job,
                                               const Slot& slot, const state::SlotRecord& record) {
  const chart::SlotOutcome outcome = co_await chart::archive_slot(
      *generation.apis.at(job.project), archive_, store_, clock_, job,
      generation.config->project_of(job), slot, turn_for(record, slot, clock_.now(), false));
  const Instant now = clock_.now();
  const bool asked = outcome.asked > 0;
  switch (outcome.result) {
    case chart::SlotResult::done:
      store_.update(job.name, slot.name(),
                    {.state = state::SlotState::done,
                     .next_at = now,
                     .api_status = asked ? std::optional<std::string>{"done"} : std::nullopt,
                     .last_error = "",
                     .count_attempt = asked},
                    now);
      // Each chart is two files, chart.json and chart.csv.
      count(ops::kArchivedFiles, job.name, 2.0 * outcome.archived);
      count(ops::kArchivedBytes, job.name, static_cast<double>(outcome.bytes));
      spdlog::info("event=slot_done job={} slot={} charts={} bytes={}", job.name, slot.name(),
                   job.charts.size(), outcome.bytes);
      run_done_hook(job, slot, 2 * static_cast<std::size_t>(outcome.archived), outcome.bytes);
      co_return;
    case chart::SlotResult::waiting:
      // Charts archived in this pass stay archived; only the "doing" ones are asked again.
      keep_waiting(job, slot, record, "doing", true,
                   " charts_doing=" + std::to_string(outcome.waiting));
      co_return;
    case chart::SlotResult::retry_later:
      retry_later(job, record, outcome.error, outcome.retry_after, asked);
      co_return;
    case chart::SlotResult::failed:
      fail_slot(job, slot, outcome.error, asked);
      co_return;
  }
}

asio::awaitable<bool> Scheduler::process_user_lists(const Generation& generation,
                                                    const config::Job& job, const Slot& slot,
                                                    state::SlotRecord& record) {
  api::Client& api = *generation.apis.at(job.project);
  const config::Project& project = generation.config->project_of(job);
  const auto expire = std::chrono::duration_cast<std::chrono::minutes>(job.link_expire);
  // The done lists of this pass, in the raw answer's shape: list id -> links, so they
  // take the raw download path (same Downloader, verification, archive and manifests).
  api::RawExport ready;
  ready.status = api::ExportStatus::finished;
  int doing = 0;
  std::string failure;
  for (const std::string& list_id : job.charts) {
    if (archive_.is_complete(job.name, list_id, slot)) {
      continue;  // archived by an earlier pass: never asked again
    }
    auto response =
        co_await api.get(chart::user_list_path(job, project.project_uid, list_id, expire),
                         turn_for(record, slot, clock_.now(), false));
    if (!response) {
      const api::Error& error = response.error();
      const std::string message =
          std::string{config::to_string(job.resource)} + " " + list_id + ": " + error.message;
      if (error.transient) {
        retry_later(job, record, message, error.retry_after, true);
      } else {
        fail_slot(job, slot, message, true);
      }
      co_return false;
    }
    auto answer = chart::parse_user_list(response->body);
    if (!answer) {
      // A garbled answer: asked again later, until give_up_after.
      retry_later(job, record,
                  "project " + project.name + ": " + std::string{config::to_string(job.resource)} +
                      " " + list_id + " of " + slot.name() + ": " + answer.error(),
                  std::nullopt, true);
      co_return false;
    }
    switch (answer->status) {
      case chart::UserListStatus::doing:
        ++doing;
        break;
      case chart::UserListStatus::failed:
        // Like a raw ERROR: asked again every poll_every until give_up_after.
        failure = std::string{config::to_string(job.resource)} + " " + list_id +
                  ": the export failed" +
                  (answer->error_message.empty() ? std::string{} : ": " + answer->error_message);
        break;
      case chart::UserListStatus::done:
        ready.links[list_id] = std::move(answer->links);
        break;
    }
  }

  Instant now = clock_.now();
  bool counted = false;
  SlotDownload outcome;
  if (!ready.links.empty()) {
    // Recorded before the first byte moves, so a crash resumes the downloads.
    store_.update(job.name, slot.name(),
                  {.state = state::SlotState::downloading,
                   .next_at = now + job.poll_every,
                   .api_status = "done",
                   .count_attempt = true},
                  now);
    counted = true;
    record.state = state::SlotState::downloading;
    outcome = co_await download_slot(job, slot, ready);
    now = clock_.now();
    switch (outcome.result) {
      case DownloadResult::done:
        break;
      case DownloadResult::links_expired:
        spdlog::info(
            "job={} slot={}: download links expired or were refused; asking for fresh ones",
            job.name, slot.name());
        record.last_error = outcome.error;
        co_return true;
      case DownloadResult::retry_later:
        retry_later(job, record, outcome.error, std::nullopt, false);
        co_return false;
      case DownloadResult::failed:
        fail_slot(job, slot, outcome.error, false);
        co_return false;
    }
  }

  if (!failure.empty()) {
    store_.update(job.name, slot.name(),
                  {.state = state::SlotState::pending,
                   .next_at = now + job.poll_every,
                   .api_status = "failed",
                   .last_error = failure,
                   .count_attempt = !counted},
                  now);
    count(ops::kRetries, job.name);
    spdlog::warn("event=slot_retry job={} slot={} reason=\"{}\"", job.name, slot.name(), failure);
    co_return false;
  }
  if (doing > 0) {
    // Lists archived in this pass stay archived; only the "doing" ones are asked again.
    keep_waiting(job, slot, record, "doing", !counted, " lists_doing=" + std::to_string(doing));
    co_return false;
  }
  store_.update(job.name, slot.name(),
                {.state = state::SlotState::done,
                 .next_at = now,
                 .api_status = std::optional<std::string>{"done"},
                 .last_error = "",
                 .count_attempt = !counted},
                now);
  spdlog::info("event=slot_done job={} slot={} lists={} files={} bytes={}", job.name, slot.name(),
               job.charts.size(), outcome.files, outcome.bytes);
  run_done_hook(job, slot, outcome.files, outcome.bytes);
  co_return false;
}

void Scheduler::keep_waiting(const config::Job& job, const Slot& slot,
                             const state::SlotRecord& record, const std::string& api_status,
                             bool count_attempt, std::string_view detail) {
  const Instant now = clock_.now();
  int notices = record.notices;
  const bool first_wait = (notices & kNoticeWaiting) == 0;
  notices |= kNoticeWaiting;
  // NOT_EXISTS is normal until the export could have been produced; long after that
  // it is an anomaly (export switched off, the vendor lost the hour): said once, and
  // still polled, since give_up_after decides when to stop.
  const Instant anomalous_after = ready_at(job, slot) + job.not_exists_grace;
  const bool anomaly =
      api_status == "NOT_EXISTS" && now >= anomalous_after && (notices & kNoticeNotExists) == 0;
  if (anomaly) {
    notices |= kNoticeNotExists;
  }
  const Instant next_poll = now + poll_delay(job, slot, now);
  store_.update(job.name, slot.name(),
                {.state = state::SlotState::waiting,
                 .next_at = next_poll,
                 .api_status = api_status,
                 .last_error = "",
                 .count_attempt = count_attempt,
                 .notices = notices},
                now);
  if (first_wait) {
    spdlog::info("event=slot_waiting job={} slot={} status={}{} next_poll={}", job.name,
                 slot.name(), api_status, detail, format_utc(next_poll));
  }
  if (anomaly) {
    spdlog::warn(
        "event=slot_not_exists job={} slot={} expected_by={} reason=\"the API still answers "
        "NOT_EXISTS {} after the export was expected; polling until give_up_after\"",
        job.name, slot.name(), format_utc(ready_at(job, slot)),
        config::format_duration(std::chrono::duration_cast<seconds>(now - ready_at(job, slot))));
  }
}

void Scheduler::pause_downloads(const std::string& reason, seconds pause) {
  if (downloads_paused_reason_.empty()) {
    spdlog::error("event=downloads_paused retry_in={}s reason=\"{}\"", pause.count(), reason);
  }
  downloads_paused_reason_ = reason;
  downloads_paused_until_ = asio::steady_timer::clock_type::now() + pause;
}

void Scheduler::run_hook(const config::Job& job, std::string_view event,
                         const std::string& slot_name, Instant slot_start,
                         ops::HookVariables extra) {
  const std::string* command = event == "slot_done"     ? &job.hooks.on_slot_done
                               : event == "slot_failed" ? &job.hooks.on_slot_failed
                                                        : &job.hooks.on_slot_at_risk;
  if (command->empty()) {
    return;
  }
  ops::HookVariables variables{{"GIO_EVENT", std::string{event}},
                               {"GIO_JOB", job.name},
                               {"GIO_SLOT", slot_name},
                               {"GIO_SLOT_START", format_utc(slot_start)},
                               {"GIO_LOST_AT", format_utc(slot_start + kRetention)}};
  variables.insert(variables.end(), std::make_move_iterator(extra.begin()),
                   std::make_move_iterator(extra.end()));
  hooks_.run(*command, job.hooks.timeout, std::move(variables));
}

void Scheduler::run_done_hook(const config::Job& job, const Slot& slot, std::size_t files,
                              std::uint64_t bytes) {
  run_hook(job, "slot_done", slot.name(), slot.start(),
           {{"GIO_FILES", std::to_string(files)},
            {"GIO_BYTES", std::to_string(bytes)},
            {"GIO_ARCHIVE_DIR", (archive_.root() / job.name).string()}});
}

void Scheduler::count(std::string_view counter, const std::string& job, double by) {
  metrics_.add(counter, {{"gio_job", job}}, by);
}

bool Scheduler::downloads_paused() {
  return !downloads_paused_reason_.empty() &&
         asio::steady_timer::clock_type::now() < downloads_paused_until_;
}

void Scheduler::mark_lost(const state::SlotRecord& record, Instant now) {
  store_lost(record, now);
  announce_lost(record);
}

void Scheduler::store_lost(const state::SlotRecord& record, Instant now) {
  store_.update(record.job, record.slot,
                {.state = state::SlotState::lost,
                 .next_at = now,
                 .last_error = "the vendor's 15-day retention has passed"},
                now);
}

void Scheduler::announce_lost(const state::SlotRecord& record) {
  count(ops::kSlotsLost, record.job);
  spdlog::error("event=slot_lost job={} slot={} state={} reason=\"retention passed; last: {}\"",
                record.job, record.slot, to_string(record.state),
                record.last_error.empty() ? record.api_status : record.last_error);
}

void Scheduler::fail_slot(const config::Job& job, const Slot& slot, const std::string& reason,
                          bool count_attempt) {
  const Instant now = clock_.now();
  store_.update(job.name, slot.name(),
                {.state = state::SlotState::failed,
                 .next_at = now,
                 .last_error = reason,
                 .count_attempt = count_attempt},
                now);
  count(ops::kSlotFailures, job.name);
  spdlog::error("event=slot_failed job={} slot={} reason=\"{}\"", job.name, slot.name(), reason);
  run_hook(job, "slot_failed", slot.name(), slot.start(), {{"GIO_REASON", reason}});
}

void Scheduler::retry_later(const config::Job& job, const state::SlotRecord& record,
                            const std::string& error, std::optional<seconds> retry_after,
                            bool count_attempt) {
  const Instant now = clock_.now();
  seconds delay = backoff(job, record.attempts);
  if (retry_after) {
    delay = std::max(delay, *retry_after);
  }
  store_.update(
      record.job, record.slot,
      {.state = record.state == state::SlotState::downloading ? state::SlotState::downloading
                                                              : state::SlotState::pending,
       .next_at = now + delay,
       .last_error = error,
       .count_attempt = count_attempt},
      now);
  count(ops::kRetries, record.job);
  spdlog::warn("event=slot_retry job={} slot={} in={}s reason=\"{}\"", record.job, record.slot,
               delay.count(), error);
}

asio::awaitable<Scheduler::SlotDownload> Scheduler::download_slot(const config::Job& job,
                                                                  const Slot& slot,
                                                                  const api::RawExport& answer) {
  struct Part {
    std::string data_type, name, url;
  };
  std::vector<Part> missing;
  std::vector<std::string> types;
  std::set<std::pair<std::string, std::string>> current;  // (type, name) of this answer's parts
  SlotDownload outcome;

  // A finished export always lists its data types; one missing is an anomaly of the
  // answer, not an empty type, so the slot is asked for again.
  if (answer.links.empty()) {
    outcome.result = DownloadResult::retry_later;
    outcome.error = "FINISHED answer lists no data types";
    co_return outcome;
  }
  for (const std::string& type : job.data_types) {
    if (!answer.links.contains(type)) {
      outcome.result = DownloadResult::retry_later;
      outcome.error = "FINISHED answer does not list data type " + type;
      co_return outcome;
    }
  }

  // Files verified and archived by an earlier, interrupted attempt are kept.
  std::set<std::pair<std::string, std::string>> archived;
  for (const state::ArchivedFile& file : store_.files(job.name, slot.name())) {
    // A planted symlink must not pass for an archived part: look at the entry itself.
    std::error_code ec;
    const auto path = archive_.partition_dir(job.name, file.data_type, slot) / file.name;
    if (std::filesystem::is_regular_file(std::filesystem::symlink_status(path, ec)) &&
        std::filesystem::file_size(path, ec) == file.bytes && !ec) {
      archived.emplace(file.data_type, file.name);
    }
  }

  for (const auto& [type, urls] : answer.links) {
    if (!job.data_types.empty() &&
        std::find(job.data_types.begin(), job.data_types.end(), type) == job.data_types.end()) {
      continue;
    }
    // A chart job's "types" are its list ids, validated as folder names by the config.
    if (job.kind == config::JobKind::raw && !archive::is_safe_data_type(type)) {
      outcome.result = DownloadResult::failed;
      outcome.error = "the API named a data type that is not a safe folder name";
      co_return outcome;
    }
    types.push_back(type);
    const std::vector<std::string> names = archive::file_names_for_links(urls);
    for (std::size_t i = 0; i < urls.size(); ++i) {
      current.emplace(type, names[i]);
      if (!archived.contains({type, names[i]})) {
        missing.push_back({type, names[i], urls[i]});
      }
    }
  }

  bool links_expired = false;
  std::size_t failed_parts = 0;
  std::string last_error;
  TaskGroup group{executor_};
  for (const Part& part : missing) {
    group.spawn([&, part]() -> asio::awaitable<void> {
      auto permit = co_await downloads_.hold();
      for (int attempt = 1; attempt <= kMaxDownloadTries && !links_expired && !stopping_;
           ++attempt) {
        if (downloads_paused()) {
          last_error = "downloads are paused: " + downloads_paused_reason_;
          break;
        }
        const auto started = std::chrono::steady_clock::now();
        auto fetched = co_await downloader_.fetch(part.url, archive_.staging_dir(), job.verify);
        if (fetched) {
          metrics_.add(ops::kDownloadBytes, {}, static_cast<double>(fetched->bytes));
          metrics_.add(
              ops::kDownloadSeconds, {},
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
          if (!downloads_paused_reason_.empty()) {
            spdlog::info("event=downloads_resumed job={} slot={}", job.name, slot.name());
            downloads_paused_reason_.clear();
          }
          // Until it is published, the staging file is this task's to remove.
          struct StagedFileGuard {
            const std::filesystem::path* path;
            ~StagedFileGuard() {
              if (path != nullptr) {
                std::error_code ignored;
                std::filesystem::remove(*path, ignored);
              }
            }
          } staged{&fetched->path};
          // Recorded before the rename: a crash in between finds the record, sees no
          // file of that size in the partition, and downloads it again.
          store_.record_file({.job = job.name,
                              .slot = slot.name(),
                              .data_type = part.data_type,
                              .name = part.name,
                              .bytes = fetched->bytes,
                              .sha256 = fetched->sha256,
                              .archived_at = clock_.now()});
          archive_.publish(fetched->path, job.name, part.data_type, slot, part.name);
          staged.path = nullptr;
          count(ops::kArchivedFiles, job.name);
          count(ops::kArchivedBytes, job.name, static_cast<double>(fetched->bytes));
          co_return;
        }
        const download::Error& error = fetched.error();
        last_error = part.data_type + "/" + part.name + ": " +
                     std::string{download::to_string(error.kind)} + ": " + error.message;
        spdlog::warn("job={} slot={} download of {} failed (try {} of {}): {}", job.name,
                     slot.name(), part.name, attempt, kMaxDownloadTries, last_error);
        if (error.kind == download::Failure::link_rejected) {
          links_expired = true;
          break;
        }
        if (error.kind == download::Failure::local) {
          // The disk, not the network: every part would fail the same way.
          pause_downloads(error.message, std::min(kLocalFaultPause, job.poll_every));
          break;
        }
        if (attempt < kMaxDownloadTries) {
          asio::steady_timer pause{executor_, seconds{attempt}};
          co_await pause.async_wait(asio::use_awaitable);
        }
      }
      ++failed_parts;
    });
  }
  co_await group.wait();

  if (links_expired) {
    outcome.result = DownloadResult::links_expired;
    outcome.error = last_error;
    co_return outcome;
  }
  if (failed_parts > 0) {
    outcome.result = DownloadResult::retry_later;
    outcome.error = std::to_string(failed_parts) + " part(s) not archived; last error: " +
                    (last_error.empty() ? "stopped" : last_error);
    co_return outcome;
  }

  // The manifests list exactly the parts of this answer, as recorded when archived.
  std::map<std::string, std::vector<archive::ManifestFile>> files_by_type;
  for (const std::string& type : types) {
    files_by_type[type];
  }
  for (const state::ArchivedFile& file : store_.files(job.name, slot.name())) {
    if (current.contains({file.data_type, file.name})) {
      files_by_type[file.data_type].push_back(
          {.name = file.name, .bytes = file.bytes, .sha256 = file.sha256});
    }
  }

  // Every part is in place: write each partition's manifest, then its _SUCCESS.
  const Instant now = clock_.now();
  for (const std::string& type : types) {
    archive::Manifest manifest{.job = job.name,
                               .data_type = type,
                               .slot = slot.name(),
                               .export_date = slot.export_date(),
                               .archived_at = now,
                               .files = files_by_type[type]};
    for (const auto& file : manifest.files) {
      ++outcome.files;
      outcome.bytes += file.bytes;
    }
    archive_.complete_partition(manifest, slot);
  }
  co_return outcome;
}

}  // namespace gio::scheduler
