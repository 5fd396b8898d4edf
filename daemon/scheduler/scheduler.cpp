#include "scheduler/scheduler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <random>

#include "chart/chart.hpp"
#include "chart/slot_work.hpp"
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

}  // namespace

Scheduler::Scheduler(asio::any_io_executor executor, const config::Config& config,
                     const Clock& clock, state::StateStore& store, archive::Archive& archive,
                     http::Client& http, download::Downloader& downloader)
    : executor_(executor),
      config_(config),
      clock_(clock),
      store_(store),
      archive_(archive),
      downloader_(downloader),
      codes_(std::make_unique<StoredCodes>(store)),
      downloads_(executor, config.limits.parallel_downloads),
      wake_(executor),
      workers_(executor) {
  for (const config::Job& job : config.jobs) {
    job_names_.push_back(job.name);
  }
  for (const config::Project& project : config.projects) {
    auto& limiter = limiters_[project.name] =
        std::make_unique<api::RateLimiter>(executor, config.limits.api_requests_per_second);
    apis_[project.name] = std::make_unique<api::Client>(http, config.http.api_base, project,
                                                        *limiter, clock, codes_.get());
  }
}

void Scheduler::stop() {
  stopping_ = true;
  wake_.notify();
}

void Scheduler::plan(Instant now) {
  for (const config::Job& job : config_.jobs) {
    const auto known = planned_until_.find(job.name);
    const Instant from = known == planned_until_.end() ? Instant{} : known->second;
    const auto slots = plan_slots(job, from, now);
    if (slots.empty()) {
      continue;
    }
    const int added = store_.plan(job.name, slots, now);
    planned_until_[job.name] = Slot::containing(slots.back().start, job.granularity).next().start();
    if (added > 0) {
      spdlog::info("event=planned job={} slots={} first={} last={}", job.name, added,
                   slots.front().slot, slots.back().slot);
    }
  }
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
  for (state::SlotRecord& record : store_.due(now, limit, job_names_)) {
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
    workers_.spawn([this, record = std::move(record), slot_key]() -> asio::awaitable<void> {
      try {
        co_await process(record);
      } catch (const std::exception& error) {
        // A worker must never take the daemon down. The slot is put off like any
        // transient failure; if even that cannot be recorded (the database or disk
        // is failing), it is held back in memory so it cannot spin.
        spdlog::error("event=slot_error job={} slot={} reason=\"{}\"", record.job, record.slot,
                      error.what());
        try {
          retry_later(*config_.find_job(record.job), record, error.what(), std::nullopt, false);
        } catch (const std::exception&) {
          cool_down_[slot_key] =
              asio::steady_timer::clock_type::now() + config_.find_job(record.job)->poll_every;
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
  plan(now);
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
}

asio::awaitable<void> Scheduler::run() {
  const Instant start = clock_.now();
  const int resumed = store_.resume_downloads(start);
  if (resumed > 0) {
    spdlog::info("event=resume slots={} (downloads interrupted by the last stop)", resumed);
  }
  while (!stopping_) {
    const Instant now = clock_.now();
    plan(now);
    start_due_work(now, nullptr);

    // Sleep until the next slot is due, the next slot becomes ready, or a worker ends.
    Instant deadline = now + kMaxSleep;
    if (const auto next_due = store_.next_due(); next_due && *next_due > now) {
      deadline = std::min(deadline, *next_due);
    }
    for (const config::Job& job : config_.jobs) {
      deadline = std::min(deadline, next_plan_time(job, now));
    }
    co_await wake_.wait_until(steady_deadline(deadline, now));
  }
  spdlog::info("stopping: {} slot(s) in flight are left for the next start", in_flight_.size());
}

asio::awaitable<void> Scheduler::process(state::SlotRecord record) {
  const config::Job& job = *config_.find_job(record.job);
  const auto parsed = Slot::parse(record.slot, job.granularity);
  if (!parsed) {
    store_.update(record.job, record.slot,
                  {.state = state::SlotState::failed,
                   .next_at = clock_.now(),
                   .last_error = "slot name does not match the job's granularity"},
                  clock_.now());
    co_return;
  }
  const Slot slot = *parsed;
  api::Client& api = *apis_.at(job.project);

  for (int refresh = 0; refresh <= kMaxLinkRefreshes; ++refresh) {
    Instant now = clock_.now();
    if (now >= slot.lost_at()) {
      store_.update(job.name, slot.name(),
                    {.state = state::SlotState::lost,
                     .next_at = now,
                     .last_error = "the vendor's 15-day retention has passed"},
                    now);
      spdlog::error("event=slot_lost job={} slot={} reason=\"retention passed; last: {}\"",
                    job.name, slot.name(),
                    record.last_error.empty() ? record.api_status : record.last_error);
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
      if (co_await process_user_lists(job, slot, record)) {
        continue;
      }
      co_return;
    }
    if (job.kind == config::JobKind::chart) {
      co_await process_chart(job, slot, record);
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
        store_.update(job.name, slot.name(),
                      {.state = state::SlotState::waiting,
                       .next_at = now + job.poll_every,
                       .api_status = status,
                       .last_error = "",
                       .count_attempt = true},
                      now);
        if (record.state != state::SlotState::waiting || record.api_status != status) {
          spdlog::info("event=slot_waiting job={} slot={} status={} next_poll={}", job.name,
                       slot.name(), status, format_utc(now + job.poll_every));
        }
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

asio::awaitable<void> Scheduler::process_chart(const config::Job& job, const Slot& slot,
                                               const state::SlotRecord& record) {
  const chart::SlotOutcome outcome = co_await chart::archive_slot(
      *apis_.at(job.project), archive_, store_, clock_, job, config_.project_of(job), slot,
      turn_for(record, slot, clock_.now(), false));
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
      spdlog::info("event=slot_done job={} slot={} charts={} bytes={}", job.name, slot.name(),
                   job.charts.size(), outcome.bytes);
      co_return;
    case chart::SlotResult::waiting:
      // Charts archived in this pass stay archived; only the "doing" ones are asked again.
      store_.update(job.name, slot.name(),
                    {.state = state::SlotState::waiting,
                     .next_at = now + job.poll_every,
                     .api_status = "doing",
                     .last_error = "",
                     .count_attempt = true},
                    now);
      if (record.state != state::SlotState::waiting || record.api_status != "doing") {
        spdlog::info("event=slot_waiting job={} slot={} status=doing charts_doing={} next_poll={}",
                     job.name, slot.name(), outcome.waiting, format_utc(now + job.poll_every));
      }
      co_return;
    case chart::SlotResult::retry_later:
      retry_later(job, record, outcome.error, outcome.retry_after, asked);
      co_return;
    case chart::SlotResult::failed:
      fail_slot(job, slot, outcome.error, asked);
      co_return;
  }
}

asio::awaitable<bool> Scheduler::process_user_lists(const config::Job& job, const Slot& slot,
                                                    state::SlotRecord& record) {
  api::Client& api = *apis_.at(job.project);
  const config::Project& project = config_.project_of(job);
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
    spdlog::warn("event=slot_retry job={} slot={} reason=\"{}\"", job.name, slot.name(), failure);
    co_return false;
  }
  if (doing > 0) {
    // Lists archived in this pass stay archived; only the "doing" ones are asked again.
    store_.update(job.name, slot.name(),
                  {.state = state::SlotState::waiting,
                   .next_at = now + job.poll_every,
                   .api_status = "doing",
                   .last_error = "",
                   .count_attempt = !counted},
                  now);
    if (record.state != state::SlotState::waiting || record.api_status != "doing") {
      spdlog::info("event=slot_waiting job={} slot={} status=doing lists_doing={} next_poll={}",
                   job.name, slot.name(), doing, format_utc(now + job.poll_every));
    }
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
  co_return false;
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
  spdlog::error("event=slot_failed job={} slot={} reason=\"{}\"", job.name, slot.name(), reason);
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
        auto fetched = co_await downloader_.fetch(part.url, archive_.staging_dir(), job.verify);
        if (fetched) {
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
          break;  // the disk, not the network: retrying at once won't help
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
