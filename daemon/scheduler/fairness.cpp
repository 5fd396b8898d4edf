#include "scheduler/fairness.hpp"

#include <algorithm>

#include "api/raw_export.hpp"
#include "scheduler/planner.hpp"

namespace gio::scheduler {

using std::chrono::seconds;

std::string_view not_exists_status() {
  return api::to_string(api::ExportStatus::not_exists);
}

bool is_backlog(const state::SlotRecord& record) {
  return record.attempts > 0 && record.api_status == not_exists_status();
}

std::size_t backlog_share(std::size_t in_flight_cap) {
  // Half: the other half is always free for fresh slots, and the backlog still moves
  // whenever the fresh work leaves the budget idle.
  return std::max<std::size_t>(1, in_flight_cap / 2);
}

Instant next_not_exists_ask(const config::Job& job, const Slot& slot, Instant planned_at,
                            bool later_finished, Instant now) {
  const Instant regular = now + poll_delay(job, slot, now);
  const Instant grace_ends = ready_at(job, slot) + job.not_exists_grace;
  if (now < grace_ends) {
    return regular;  // the vendor may simply not have started the export yet
  }
  const auto missing = std::chrono::duration_cast<seconds>(now - grace_ends);
  const seconds poll = job.poll_every;
  const seconds wait =
      later_finished
          ? std::clamp<seconds>(4 * missing, poll,
                                std::max<seconds>(poll, kNotExistsMaxWaitAfterLater))
          : std::clamp<seconds>(missing, poll, std::max<seconds>(poll, kNotExistsMaxWait));
  Instant next = now + wait;
  // Asked once more before it is lost, and failed on time by give_up_after.
  next = std::min(next, std::max(regular, slot.lost_at() - kLastAskBeforeLoss));
  next = std::min(next, std::max(regular, give_up_at(job, slot, planned_at)));
  return next;
}

}  // namespace gio::scheduler
