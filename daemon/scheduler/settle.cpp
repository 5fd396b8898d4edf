// One pass on one slot, and the one place where its outcome is recorded: the slot's
// state, its event line, its metrics and its hook.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "ops/exporter_metrics.hpp"
#include "scheduler/notices.hpp"
#include "scheduler/planner.hpp"
#include "scheduler/scheduler.hpp"
#include "work/slot_work.hpp"

namespace gio::scheduler {
namespace {

namespace asio = boost::asio;
using std::chrono::seconds;

// Fresh links asked for in one pass when links keep expiring mid-download.
constexpr int kMaxLinkRefreshes = 3;
// A slot this close to the vendor's retention is asked about before newer work.
constexpr std::chrono::hours kNearLoss{48};

// Where a call about `record` queues on the project's rate limiter: fresh links for a
// download under way first (a slot whose links lapse may lose its partial work), then
// slots close to their loss, then first asks, then polls and retries.
api::Turn turn_for(const state::SlotRecord& record, const Slot& slot, Instant now) {
  api::Priority priority = api::Priority::poll;
  if (record.state == state::SlotState::downloading) {
    priority = api::Priority::fresh_links;
  } else if (slot.lost_at() - now <= kNearLoss) {
    priority = api::Priority::near_loss;
  } else if (record.attempts == 0) {
    priority = api::Priority::first_ask;
  }
  return {.priority = priority, .slot_start = slot.start()};
}

// Exponential backoff with jitter for transient failures, capped at poll_every.
seconds backoff(const config::Job& job, int attempts) {
  const int exponent = std::clamp(attempts, 0, 10);
  const seconds base = std::min<seconds>(job.poll_every, seconds{5} * (1 << exponent));
  static std::minstd_rand random{std::random_device{}()};
  std::uniform_real_distribution<double> jitter{0.8, 1.0};
  return std::max(seconds{1}, seconds{static_cast<long>(base.count() * jitter(random))});
}

}  // namespace

// The slot's files and its `downloading` mark, in the state store.
class Scheduler::StoredLedger final : public work::Ledger {
 public:
  StoredLedger(Scheduler& scheduler, const config::Job& job, const Slot& slot)
      : scheduler_(scheduler), job_(job), slot_(slot) {}

  std::vector<work::RecordedFile> recorded() override {
    std::vector<work::RecordedFile> files;
    for (state::ArchivedFile& file : scheduler_.store_.files(job_.name, slot_.name())) {
      files.push_back({.data_type = std::move(file.data_type),
                       .file = {.name = std::move(file.name),
                                .bytes = file.bytes,
                                .sha256 = std::move(file.sha256)}});
    }
    return files;
  }
  void record(const work::RecordedFile& file) override {
    scheduler_.store_.record_file({.job = job_.name,
                                   .slot = slot_.name(),
                                   .data_type = file.data_type,
                                   .name = file.file.name,
                                   .bytes = file.file.bytes,
                                   .sha256 = file.file.sha256,
                                   .archived_at = scheduler_.clock_.now()});
  }
  void downloading(std::string_view api_status) override {
    const Instant now = scheduler_.clock_.now();
    scheduler_.store_.update(job_.name, slot_.name(),
                             {.state = state::SlotState::downloading,
                              .next_at = now + job_.poll_every,
                              .api_status = std::string{api_status},
                              .count_attempt = true},
                             now);
    downloading_ = true;
  }
  // A new round of asking (after links expired): its attempt is not counted yet.
  void start_round() { downloading_ = false; }
  // This round recorded the slot as downloading, which counted its attempt.
  bool downloading() const { return downloading_; }

 private:
  Scheduler& scheduler_;
  const config::Job& job_;
  const Slot& slot_;
  bool downloading_ = false;
};

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
    ++ended_.failed;
    spdlog::error("event=slot_failed job={} slot={} reason=\"{}\"", record.job, record.slot,
                  reason);
    co_return;
  }
  const Slot slot = *parsed;
  StoredLedger ledger{*this, job, slot};
  api::Turn turn = turn_for(record, slot, clock_.now());
  for (int refresh = 0;; ++refresh) {
    const Instant now = clock_.now();
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
    ledger.start_round();
    // A named SlotWork, not a braced temporary in the co_await: GCC 12 miscompiles the
    // latter (a temporary's lifetime across the suspension).
    const work::SlotWork pass{.job = job,
                              .project = generation->config->project_of(job),
                              .slot = slot,
                              .api = *generation->apis.at(job.project),
                              .turn = turn,
                              .ledger = ledger,
                              .archive = archive_,
                              .clock = clock_,
                              .downloads = downloads_,
                              .observer = *this};
    work::Outcome outcome = co_await work::run(pass);
    if (ledger.downloading()) {
      record.state = state::SlotState::downloading;
    }
    const auto* retry = std::get_if<work::Retry>(&outcome.result);
    if (retry == nullptr || retry->kind != work::RetryClass::links_expired) {
      settle(job, slot, record, outcome, ledger.downloading());
      co_return;
    }
    record.last_error = retry->reason;
    if (refresh == kMaxLinkRefreshes) {
      outcome.result =
          work::Retry{.reason = "download links kept expiring before the downloads finished"};
      settle(job, slot, record, outcome, true);
      co_return;
    }
    // Asked again at once, ahead of other work: the parts archived so far stay.
    turn.priority = api::Priority::fresh_links;
  }
}

void Scheduler::settle(const config::Job& job, const Slot& slot, const state::SlotRecord& record,
                       const work::Outcome& outcome, bool counted) {
  // An attempt is one round of asking the API, counted once.
  const bool count_attempt = outcome.progress.asked && !counted;
  std::visit(
      config::Overloaded{
          [&](const work::Done& done) {
            const Instant now = clock_.now();
            store_.update(job.name, slot.name(),
                          {.state = state::SlotState::done,
                           .next_at = now,
                           .api_status = done.api_status,
                           .last_error = "",
                           .count_attempt = count_attempt},
                          now);
            spdlog::info("event=slot_done job={} slot={}{}{} files={} bytes={}", job.name,
                         slot.name(), done.items.empty() ? "" : " ", done.items, done.files,
                         done.bytes);
            run_hook(job, "slot_done", slot.name(), slot.start(),
                     {{"GIO_FILES", std::to_string(done.files)},
                      {"GIO_BYTES", std::to_string(done.bytes)},
                      {"GIO_ARCHIVE_DIR", (archive_.root() / job.name).string()}});
          },
          [&](const work::Wait& wait) { keep_waiting(job, slot, record, wait, count_attempt); },
          [&](const work::Retry& retry) { retry_later(job, record, retry, count_attempt); },
          [&](const work::Failed& failed) { fail_slot(job, slot, failed.reason, count_attempt); },
      },
      outcome.result);
}

void Scheduler::keep_waiting(const config::Job& job, const Slot& slot,
                             const state::SlotRecord& record, const work::Wait& wait,
                             bool count_attempt) {
  const Instant now = clock_.now();
  int notices = record.notices;
  const bool first_wait = (notices & kNoticeWaiting) == 0;
  notices |= kNoticeWaiting;
  // NOT_EXISTS is normal until the export could have been produced; long after that
  // it is an anomaly (export switched off, the vendor lost the hour): said once, and
  // still polled, since give_up_after decides when to stop.
  const Instant anomalous_after = ready_at(job, slot) + job.not_exists_grace;
  const bool anomaly =
      wait.not_exists && now >= anomalous_after && (notices & kNoticeNotExists) == 0;
  if (anomaly) {
    notices |= kNoticeNotExists;
  }
  const Instant next_poll = now + poll_delay(job, slot, now);
  store_.update(job.name, slot.name(),
                {.state = state::SlotState::waiting,
                 .next_at = next_poll,
                 .api_status = wait.api_status,
                 .last_error = "",
                 .count_attempt = count_attempt,
                 .notices = notices},
                now);
  if (first_wait) {
    spdlog::info("event=slot_waiting job={} slot={} status={}{} next_poll={}", job.name,
                 slot.name(), wait.api_status, wait.detail, format_utc(next_poll));
  }
  if (anomaly) {
    spdlog::warn(
        "event=slot_not_exists job={} slot={} expected_by={} reason=\"the API still answers "
        "{} {} after the export was expected; polling until give_up_after\"",
        job.name, slot.name(), format_utc(ready_at(job, slot)), wait.api_status,
        config::format_duration(std::chrono::duration_cast<seconds>(now - ready_at(job, slot))));
  }
}

void Scheduler::retry_later(const config::Job& job, const state::SlotRecord& record,
                            const work::Retry& retry, bool count_attempt) {
  const Instant now = clock_.now();
  if (retry.kind == work::RetryClass::export_failed) {
    // The vendor's export failed: asked again at the next poll, until give_up_after.
    store_.update(job.name, record.slot,
                  {.state = state::SlotState::pending,
                   .next_at = now + job.poll_every,
                   .api_status = retry.api_status,
                   .last_error = retry.reason,
                   .count_attempt = count_attempt},
                  now);
    count(ops::kRetries, job.name);
    spdlog::warn("event=slot_retry job={} slot={} reason=\"{}\"", job.name, record.slot,
                 retry.reason);
    return;
  }
  seconds delay = backoff(job, record.attempts);
  if (retry.retry_after) {
    delay = std::max(delay, *retry.retry_after);
  }
  store_.update(
      record.job, record.slot,
      {.state = record.state == state::SlotState::downloading ? state::SlotState::downloading
                                                              : state::SlotState::pending,
       .next_at = now + delay,
       .last_error = retry.reason,
       .count_attempt = count_attempt},
      now);
  count(ops::kRetries, record.job);
  spdlog::warn("event=slot_retry job={} slot={} in={}s reason=\"{}\"", record.job, record.slot,
               delay.count(), retry.reason);
}

void Scheduler::archived(const config::Job& job, std::size_t files, std::uint64_t bytes) {
  count(ops::kArchivedFiles, job.name, static_cast<double>(files));
  count(ops::kArchivedBytes, job.name, static_cast<double>(bytes));
}

void Scheduler::downloaded(std::uint64_t bytes, std::chrono::duration<double> took) {
  metrics_.add(ops::kDownloadBytes, {}, static_cast<double>(bytes));
  metrics_.add(ops::kDownloadSeconds, {}, took.count());
}

void Scheduler::chart_capped(const config::Job& job, const Slot& slot, std::string_view chart_id,
                             std::size_t rows) {
  spdlog::warn(
      "event=chart_row_cap job={} slot={} chart={} rows={} (the vendor cuts a chart at {} "
      "rows: this result is probably incomplete)",
      job.name, slot.name(), chart_id, rows, api::kChartRowCap);
}

void Scheduler::paused(const std::string& reason, seconds pause) {
  spdlog::error("event=downloads_paused retry_in={}s reason=\"{}\"", pause.count(), reason);
}

void Scheduler::resumed(const config::Job& job, const Slot& slot) {
  spdlog::info("event=downloads_resumed job={} slot={}", job.name, slot.name());
}

void Scheduler::part_failed(const config::Job& job, const Slot& slot, std::string_view name,
                            int attempt, int tries, const std::string& error) {
  spdlog::warn("job={} slot={} download of {} failed (try {} of {}): {}", job.name, slot.name(),
               name, attempt, tries, error);
}

void Scheduler::links_expired(const config::Job& job, const Slot& slot) {
  spdlog::info("job={} slot={}: download links expired or were refused; asking for fresh ones",
               job.name, slot.name());
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

void Scheduler::count(std::string_view counter, const std::string& job, double by) {
  metrics_.add(counter, {{"gio_job", job}}, by);
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
  ++ended_.lost;
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
  ++ended_.failed;
  spdlog::error("event=slot_failed job={} slot={} reason=\"{}\"", job.name, slot.name(), reason);
  run_hook(job, "slot_failed", slot.name(), slot.start(), {{"GIO_REASON", reason}});
}

}  // namespace gio::scheduler
