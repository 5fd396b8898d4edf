// One pass on one slot, and the one place where its outcome is recorded: the slot's
// state, its event line, its metrics and its hook.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <random>

#include "ops/exporter_metrics.hpp"
#include "ops/logging.hpp"
#include "scheduler/fairness.hpp"
#include "scheduler/notices.hpp"
#include "scheduler/planner.hpp"
#include "scheduler/readiness.hpp"
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
// slots close to their loss, then first asks, then polls and retries, then the backlog
// of slots the vendor answered NOT_EXISTS (even close to their loss: they will most
// likely never exist, and must not starve the hours that do).
api::Turn turn_for(const state::SlotRecord& record, const Slot& slot, Instant now) {
  api::Priority priority = api::Priority::poll;
  if (record.state == state::SlotState::downloading) {
    priority = api::Priority::fresh_links;
  } else if (is_backlog(record)) {
    priority = api::Priority::backlog;  // after every fresh slot (fairness.hpp)
  } else if (slot.lost_at() - now <= kNearLoss) {
    priority = api::Priority::near_loss;
  } else if (record.attempts == 0) {
    priority = api::Priority::first_ask;
  }
  return {.priority = priority, .slot_start = slot.start()};
}

// The work's own " charts=N"-style pairs, as fields; whole numbers typed as numbers.
void add_pairs(ops::Fields& fields, std::string_view pairs) {
  while (!pairs.empty()) {
    const auto start = pairs.find_first_not_of(' ');
    if (start == std::string_view::npos) {
      return;
    }
    pairs.remove_prefix(start);
    const std::string_view pair = pairs.substr(0, pairs.find(' '));
    pairs.remove_prefix(pair.size());
    const auto equals = pair.find('=');
    if (equals == std::string_view::npos) {
      continue;
    }
    const std::string_view key = pair.substr(0, equals);
    const std::string_view value = pair.substr(equals + 1);
    std::int64_t number = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), number);
    if (error == std::errc{} && end == value.data() + value.size()) {
      fields.emplace_back(key, number);
    } else {
      fields.emplace_back(key, value);
    }
  }
}

// How `retry` queues a failed slot again, for the operator reading the line.
std::string requeue_command(std::string_view job, std::string_view slot) {
  return "gio-exporter retry --job " + std::string{job} + " --slot " + std::string{slot};
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
  // `before`: the slot's row as this pass found it (the readiness model reads it).
  StoredLedger(Scheduler& scheduler, const config::Job& job, const Slot& slot,
               const state::SlotRecord& before)
      : scheduler_(scheduler), job_(job), slot_(slot), before_(before) {}

  std::vector<work::RecordedFile> recorded() override {
    std::vector<work::RecordedFile> files;
    for (state::ArchivedFile& file : scheduler_.store_.files(job_.name, slot_.name())) {
      files.push_back({.data_type = std::move(file.data_type),
                       .file = {.name = std::move(file.name),
                                .bytes = file.bytes,
                                .sha256 = std::move(file.sha256),
                                .rows = file.rows,
                                .rows_by_hour = std::move(file.rows_by_hour)},
                       .object = std::move(file.object)});
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
                                   .archived_at = scheduler_.clock_.now(),
                                   .object = file.object,
                                   .rows = file.file.rows,
                                   .rows_by_hour = file.file.rows_by_hour});
  }
  void downloading(std::string_view api_status) override {
    const Instant now = scheduler_.clock_.now();
    // The first FINISHED answer tells when the export became ready (readiness.hpp); a
    // slot already downloading (links refreshed, a resumed download) was seen before.
    if (const auto delay = before_.state == state::SlotState::downloading
                               ? std::nullopt
                               : observed_delay(job_, slot_, before_, now)) {
      scheduler_.store_.record_readiness(job_.name, readiness_class(slot_), slot_.name(), *delay,
                                         now, kReadinessKept);
    }
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
  const state::SlotRecord& before_;
  bool downloading_ = false;
};

asio::awaitable<void> Scheduler::process(std::shared_ptr<const Generation> generation,
                                         state::SlotRecord record) {
  const config::Job& job = *generation->config->find_job(record.job);
  const auto parsed = Slot::parse(record.slot, job.granularity);
  if (!parsed) {
    // The job's granularity changed under slots planned before (a reload or an edit).
    const std::string reason = "slot name does not match the job's granularity";
    // Each write of a pass's end waits out a lock held by another process (StoreWaits).
    co_await store_waits_.retry([&] {
      store_.update(
          record.job, record.slot,
          {.state = state::SlotState::failed, .next_at = clock_.now(), .last_error = reason},
          clock_.now());
    });
    count(ops::kSlotFailures, record.job);
    ++ended_.failed;
    ops::log_event(ops::Level::error, "slot_failed", "slot failed: not asked again until re-queued",
                   {{"job", record.job},
                    {"slot", record.slot},
                    {"reason", reason},
                    {"requeue", requeue_command(record.job, record.slot)}});
    co_return;
  }
  const Slot slot = *parsed;
  StoredLedger ledger{*this, job, slot, record};
  api::Turn turn = turn_for(record, slot, clock_.now());
  turn.hold = [this] { return asks_held(); };  // pause.cpp
  for (int refresh = 0;; ++refresh) {
    // Judged by the sure time, which a wall clock that jumped ahead does not move
    // (clock_watch.hpp): a slot is lost or given up on for good.
    const ClockWatch::Reading reading = read_clock();
    if (reading.sure >= slot.lost_at()) {
      co_await store_waits_.retry([&] { mark_lost(record, reading.wall); });
      co_return;
    }
    // Only a slot that has been asked about can be given up on: a backlog found at
    // start (or after an outage) gets its full give_up_after from then on.
    if (record.attempts > 0 && reading.sure >= give_up_at(job, slot, record.created_at)) {
      const std::string reason = "gave up after " + config::format_duration(job.give_up_after);
      co_await store_waits_.retry([&] { fail_slot(job, slot, record, reason, false); });
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
      ++record.attempts;  // as the store counted it
    }
    const auto* retry = std::get_if<work::Retry>(&outcome.result);
    if (retry == nullptr || retry->kind != work::RetryClass::links_expired) {
      const bool counted = ledger.downloading();
      co_await store_waits_.retry([&] { settle(job, slot, record, outcome, counted); });
      if (std::holds_alternative<work::Done>(outcome.result)) {
        co_await watch_schemas_after(job, slot);
      }
      co_return;
    }
    record.last_error = retry->reason;
    if (refresh == kMaxLinkRefreshes) {
      outcome.result =
          work::Retry{.reason = "download links kept expiring before the downloads finished"};
      co_await store_waits_.retry([&] { settle(job, slot, record, outcome, true); });
      co_return;
    }
    // Asked again at once, ahead of other work: the parts archived so far stay.
    turn.priority = api::Priority::fresh_links;
  }
}

void Scheduler::settle(const config::Job& job, const Slot& slot, const state::SlotRecord& record,
                       const work::Outcome& outcome, bool counted) {
  if (const auto* retry = std::get_if<work::Retry>(&outcome.result);
      retry != nullptr && retry->kind == work::RetryClass::held && !counted) {
    return;  // nothing was asked: the row stays as it is, due, until the hold ends
  }
  // An attempt is one round of asking the API, counted once.
  const bool count_attempt = outcome.progress.asked && !counted;
  const int attempt = record.attempts + (count_attempt ? 1 : 0);
  std::visit(
      config::Overloaded{
          [&](const work::Done& done) {
            if (!job.sink.empty()) {
              downloaded_for_sink(job, slot, done, count_attempt);
              note_recovery(job, slot, attempt, "uploading", done.api_status.value_or(""));
              return;
            }
            const Instant now = clock_.now();
            store_.update(job.name, slot.name(),
                          {.state = state::SlotState::done,
                           .next_at = now,
                           .api_status = done.api_status,
                           .last_error = "",
                           .count_attempt = count_attempt},
                          now);
            note_recovery(job, slot, attempt, "done", done.api_status.value_or(""));
            ops::Fields fields{{"job", job.name}, {"slot", slot.name()}};
            add_pairs(fields, done.items);
            fields.emplace_back("files", done.files);
            fields.emplace_back("bytes", done.bytes);
            ops::log_event(ops::Level::info, "slot_done", "slot archived", fields);
            run_hook(job, "slot_done", slot.name(), slot.start(),
                     {{"GIO_FILES", std::to_string(done.files)},
                      {"GIO_BYTES", std::to_string(done.bytes)},
                      {"GIO_ARCHIVE_DIR", (archive_.root() / job.name).string()}});
            if (done_listener_) {
              done_listener_(config(), job, slot);
            }
          },
          [&](const work::Wait& wait) { keep_waiting(job, slot, record, wait, count_attempt); },
          [&](const work::Retry& retry) { retry_later(job, record, retry, count_attempt); },
          [&](const work::Failed& failed) {
            fail_slot(job, slot, record, failed.reason, count_attempt, false);
          },
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
  const Instant next_poll =
      wait.not_exists ? next_not_exists_ask(job, slot, record.created_at,
                                            store_.has_later_finished(job.name, slot.start()), now)
                      : next_ask(job, slot, readiness_sample(store_, job.name, slot), now);
  store_.update(job.name, slot.name(),
                {.state = state::SlotState::waiting,
                 .next_at = next_poll,
                 .api_status = wait.api_status,
                 .last_error = "",
                 .count_attempt = count_attempt,
                 .notices = notices},
                now);
  note_recovery(job, slot, record.attempts + (count_attempt ? 1 : 0), "waiting", wait.api_status);
  if (first_wait) {
    ops::Fields fields{{"job", job.name}, {"slot", slot.name()}, {"status", wait.api_status}};
    add_pairs(fields, wait.detail);
    fields.emplace_back("next_poll", format_utc(next_poll));
    ops::log_event(ops::Level::info, "slot_waiting", "the export is not ready yet", fields);
  }
  if (anomaly) {
    ops::log_event(
        ops::Level::warning, "slot_not_exists", "the export is still missing past its grace",
        {{"job", job.name},
         {"slot", slot.name()},
         {"expected_by", format_utc(ready_at(job, slot))},
         {"reason", "the API still answers " + wait.api_status + " " +
                        config::format_duration(
                            std::chrono::duration_cast<seconds>(now - ready_at(job, slot))) +
                        " after the export was expected; polling until give_up_after"}});
  }
}

void Scheduler::retry_later(const config::Job& job, const state::SlotRecord& record,
                            const work::Retry& retry, bool count_attempt) {
  const Instant now = clock_.now();
  const int attempt = record.attempts + (count_attempt ? 1 : 0);
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
    warn_retry(record, retry.reason, attempt, now + job.poll_every, std::nullopt);
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
  warn_retry(record, retry.reason, attempt, now + delay, delay);
}

void Scheduler::warn_retry(const state::SlotRecord& record, const std::string& reason, int attempt,
                           Instant next_try, std::optional<seconds> delay) {
  // One warning per problem: the first, then a new reason (naming the one before), or a
  // reminder an hour on with how many retries went unsaid. The metric counts them all.
  const Instant now = clock_.now();
  const std::string key = slot_key(record.job, record.slot);
  const auto known = retry_notes_.find(key);
  ops::Fields fields{{"job", record.job}, {"slot", record.slot}, {"attempt", attempt}};
  if (delay) {
    fields.emplace_back("in", std::to_string(delay->count()) + "s");
  }
  fields.emplace_back("next_try", format_utc(next_try));
  fields.emplace_back("reason", reason);
  if (known == retry_notes_.end()) {
    if (!record.last_error.empty() && record.last_error != reason) {
      fields.emplace_back("previous", record.last_error);  // from before a restart
    }
  } else if (known->second.reason != reason) {
    fields.emplace_back("previous", known->second.reason);
    fields.emplace_back("repeated", known->second.repeated);
  } else if (now - known->second.warned_at < kRetryReminderEvery) {
    ++known->second.repeated;
    return;
  } else {
    fields.emplace_back("repeated", known->second.repeated);
  }
  retry_notes_[key] = {.reason = reason, .warned_at = now, .repeated = 0};
  ops::log_event(ops::Level::warning, "slot_retry", "slot retried later", fields);
}

void Scheduler::note_recovery(const config::Job& job, const Slot& slot, int attempt,
                              std::string_view state, const std::string& api_status) {
  const auto known = retry_notes_.find(slot_key(job.name, slot.name()));
  if (known == retry_notes_.end()) {
    return;  // no retry was warned about (in this run)
  }
  ops::Fields fields{
      {"job", job.name}, {"slot", slot.name()}, {"attempt", attempt}, {"state", state}};
  if (!api_status.empty()) {
    fields.emplace_back("status", api_status);
  }
  fields.emplace_back("previous", known->second.reason);
  fields.emplace_back("repeated", known->second.repeated);
  ops::log_event(ops::Level::info, "slot_recovered", "the slot's problem is over", fields);
  retry_notes_.erase(known);
}

void Scheduler::run_hook(const config::Job& job, std::string_view event,
                         const std::string& slot_name, Instant slot_start,
                         ops::HookVariables extra) {
  const std::string* command = event == "slot_done"        ? &job.hooks.on_slot_done
                               : event == "slot_failed"    ? &job.hooks.on_slot_failed
                               : event == "schema_changed" ? &job.hooks.on_schema_change
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
  retry_notes_.erase(slot_key(record.job, record.slot));
  const std::string last = record.last_error.empty() ? record.api_status : record.last_error;
  ops::log_event(ops::Level::error, "slot_lost", "slot lost to the vendor's retention",
                 {{"job", record.job},
                  {"slot", record.slot},
                  {"state", to_string(record.state)},
                  {"attempts", record.attempts},
                  {"reason", last.empty() ? std::string{"retention passed before it was asked"}
                                          : "retention passed; last: " + last}});
}

void Scheduler::fail_slot(const config::Job& job, const Slot& slot, const state::SlotRecord& record,
                          const std::string& reason, bool count_attempt, bool with_last) {
  const Instant now = clock_.now();
  const std::string last = record.last_error.empty() ? record.api_status : record.last_error;
  // The stored error keeps the last answer; the line names it apart, so that the
  // vendor's words ("it will be re-run") are not read as the daemon's plan.
  const std::string stored = with_last && !last.empty() ? reason + "; last: " + last : reason;
  store_.update(job.name, slot.name(),
                {.state = state::SlotState::failed,
                 .next_at = now,
                 .last_error = stored,
                 .count_attempt = count_attempt},
                now);
  count(ops::kSlotFailures, job.name);
  ++ended_.failed;
  retry_notes_.erase(slot_key(job.name, slot.name()));
  ops::Fields fields{{"job", job.name},
                     {"slot", slot.name()},
                     {"attempts", record.attempts + (count_attempt ? 1 : 0)},
                     {"reason", reason}};
  if (with_last && !last.empty()) {
    fields.emplace_back("last_answer", last);
  }
  fields.emplace_back("requeue", requeue_command(job.name, slot.name()));
  ops::log_event(ops::Level::error, "slot_failed", "slot failed: not asked again until re-queued",
                 fields);
  run_hook(job, "slot_failed", slot.name(), slot.start(), {{"GIO_REASON", stored}});
}

}  // namespace gio::scheduler
