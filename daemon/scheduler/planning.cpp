// Planning each job's slots into the state store, and the retention watch.

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <tuple>

#include "ops/logging.hpp"
#include "scheduler/notices.hpp"
#include "scheduler/planner.hpp"
#include "scheduler/readiness.hpp"
#include "scheduler/scheduler.hpp"

namespace gio::scheduler {
namespace {

namespace asio = boost::asio;
using std::chrono::seconds;

// How often slots are checked against the vendor's retention.
constexpr seconds kRetentionWatchEvery{60};

std::string format_hours(std::chrono::seconds left) {
  return std::to_string(std::chrono::duration_cast<std::chrono::hours>(left).count()) + "h";
}

// The job's slots from `from` on whose first ask is due by `now`, each due then: the
// ready ones (plan_slots), at the first ask the job's readiness history says
// (readiness.hpp; ready_at without one; a slot planned late is due at once anyway), and
// the next one when its history has it asked before its ready_at (a late hour that
// proves no later than the others). A sample per readiness class.
std::vector<state::PlannedSlot> due_slots(state::StateStore& store, const config::Job& job,
                                          Instant from, Instant now) {
  auto slots = plan_slots(job, from, now);
  PlannedFirstAsk ask_at{store, job};
  for (state::PlannedSlot& planned_slot : slots) {
    planned_slot.next_at = ask_at(Slot::containing(planned_slot.start, job.granularity));
  }
  const Slot next = next_to_become_ready(job, now);
  if (next.start() >= from && is_late_hour(next) && ask_at(next) <= now) {
    slots.push_back({.slot = next.name(), .start = next.start(), .next_at = ask_at(next)});
  }
  return slots;
}

}  // namespace

std::map<std::string, Scheduler::Planned> Scheduler::plan(Instant now) {
  std::map<std::string, Planned> planned;
  // One commit for every job (a commit per job cost 200 fsyncs at start with 200 jobs);
  // how far each job is planned moves on only once the rows are in.
  std::map<std::string, Instant> planned_until;
  std::optional<state::StateStore::Batch> batch;  // opened by the first job with slots
  for (const config::Job& job : config().jobs) {
    const auto known = planned_until_.find(job.name);
    const Instant from = known == planned_until_.end() ? Instant{} : known->second;
    auto slots = due_slots(store_, job, from, now);
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
    ops::log_event(
        ops::Level::info, "catch_up", "slots to catch up on",
        {{"job", job}, {"slots", planned.count}, {"first", planned.first}, {"last", planned.last}});
  }
}

// What a retention watch found at risk, for announce_at_risk: the slots warned about or
// hooked one by one are kept whole; those never asked about, thousands at a first start
// with a backlog, are a span per job (a line each).
struct Scheduler::AtRisk {
  struct Unasked {
    int slots = 0;
    std::string first, last;
    Instant first_start{}, last_start{};
  };
  std::vector<state::SlotRecord> each;
  std::map<std::string, Unasked> unasked;

  void add(state::SlotRecord record, bool hooked) {
    const bool asked =
        record.attempts != 0 || !record.last_error.empty() || !record.api_status.empty();
    if (!asked) {
      Unasked& span = unasked[record.job];
      if (span.slots++ == 0 || record.start < span.first_start) {
        span.first = record.slot;
        span.first_start = record.start;
      }
      if (span.slots == 1 || record.start > span.last_start) {
        span.last = record.slot;
        span.last_start = record.start;
      }
    }
    if (asked || hooked) {
      each.push_back(std::move(record));
    }
  }
};

void Scheduler::watch_retention(Instant now) {
  const auto steady_now = asio::steady_timer::clock_type::now();
  if (steady_now < next_retention_watch_) {
    return;
  }
  const Generation& generation = *generation_;
  // After an outage thousands of slots can come at risk or be lost at once: they are
  // stored in one commit (one each kept the loop busy for half a minute with 200 jobs),
  // and announced after it. Read a job at a time: every job's rows at once (14,400 at a
  // first start of 200 jobs with a 15-day backlog) held more memory than the rest of the
  // daemon.
  std::vector<state::SlotRecord> lost;
  AtRisk at_risk;
  std::optional<state::StateStore::Batch> batch;  // opened by the first notice to store
  for (const config::Job& job : generation.config->jobs) {
    const bool hooked = !job.hooks.on_slot_at_risk.empty();
    for (state::SlotRecord& record : store_.not_done_before(
             now - kRetention + kAtRisk72h, std::span<const std::string>{&job.name, 1})) {
      if (in_flight_.contains(slot_key(record.job, record.slot))) {
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
      at_risk.add(std::move(record), hooked);
    }
  }
  if (batch) {
    batch->commit();
  }
  // Only a watch that went through waits for the next: one that failed (the database
  // locked by another process, a full disk) is tried again at the loop's next round.
  next_retention_watch_ = steady_now + kRetentionWatchEvery;
  // Announced oldest first across jobs, as one query over every job gave them.
  const auto by_start = [](const state::SlotRecord& record) {
    return std::tie(record.start, record.job);
  };
  std::ranges::sort(lost, {}, by_start);
  for (const state::SlotRecord& record : lost) {
    announce_lost(record);
  }
  std::ranges::sort(at_risk.each, {}, by_start);
  announce_at_risk(at_risk, now);
}

void Scheduler::announce_at_risk(const AtRisk& at_risk, Instant now) {
  // Slots never asked about yet (a backlog at first start) are one line per job: a
  // warning per slot would bury the ones that did fail.
  const Generation& generation = *generation_;
  for (const state::SlotRecord& record : at_risk.each) {
    const Instant lost_at = record.start + kRetention;
    const std::string last = record.last_error.empty() ? record.api_status : record.last_error;
    if (record.attempts != 0 || !last.empty()) {
      ops::log_event(ops::Level::warning, "slot_at_risk", "slot at risk of the vendor's retention",
                     {{"job", record.job},
                      {"slot", record.slot},
                      {"state", to_string(record.state)},
                      {"left", format_hours(lost_at - now)},
                      {"lost_at", format_utc(lost_at)},
                      {"attempts", record.attempts},
                      {"reason", last}});
    }
    if (const config::Job* job = generation.config->find_job(record.job)) {
      run_hook(*job, "slot_at_risk", record.slot, record.start,
               {{"GIO_STATE", std::string{to_string(record.state)}},
                {"GIO_SECONDS_LEFT", std::to_string((lost_at - now).count())},
                {"GIO_REASON", last}});
    }
  }
  for (const auto& [job, span] : at_risk.unasked) {
    const Instant lost_at = span.first_start + kRetention;
    ops::log_event(ops::Level::warning, "slots_at_risk_unasked",
                   "slots not asked about yet are close to the vendor's retention",
                   {{"job", job},
                    {"slots", span.slots},
                    {"first", span.first},
                    {"last", span.last},
                    {"left", format_hours(lost_at - now)},
                    {"lost_at", format_utc(lost_at)},
                    {"reason", "not asked yet"}});
  }
}

Instant Scheduler::next_plan_time(const config::Job& job, Instant now) const {
  const auto planned = planned_until_.find(job.name);
  const Slot next = planned == planned_until_.end()
                        ? first_in_window(job, now)
                        : Slot::containing(planned->second, job.granularity);
  // Only a late hour may be asked before its ready_at (readiness.hpp): elsewhere
  // ready_at is the floor, and no store read is needed.
  if (!is_late_hour(next)) {
    return ready_at(job, next);
  }
  return std::min(ready_at(job, next), PlannedFirstAsk{store_, job}(next));
}

}  // namespace gio::scheduler
