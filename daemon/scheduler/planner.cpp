#include "scheduler/planner.hpp"

#include <algorithm>

namespace gio::scheduler {
namespace {

constexpr std::chrono::minutes kLateHourExtra{20};

}  // namespace

bool is_late_hour(const Slot& slot) {
  if (slot.granularity() != Granularity::hour) {
    return false;
  }
  const std::string hour = slot.hour();
  return hour == "23" || hour == "00" || hour == "01";
}

Instant ready_at(const config::Job& job, const Slot& slot) {
  return slot.end() + job.ready_after +
         (is_late_hour(slot) ? std::chrono::seconds{kLateHourExtra} : std::chrono::seconds{0});
}

Instant give_up_at(const config::Job& job, const Slot& slot, Instant planned_at) {
  return std::max(ready_at(job, slot), planned_at) + job.give_up_after;
}

Slot first_in_window(const config::Job& job, Instant now) {
  // The slot containing now - backfill starts before the window: take the next one,
  // unless the window starts exactly on a slot boundary.
  const Instant window_start = now - job.backfill;
  const Slot slot = Slot::containing(window_start, job.granularity);
  return slot.start() == window_start ? slot : slot.next();
}

std::vector<state::PlannedSlot> plan_slots(const config::Job& job, Instant from, Instant now) {
  std::vector<state::PlannedSlot> planned;
  const Slot first = first_in_window(job, now);
  Slot slot = from > first.start() ? Slot::containing(from, job.granularity) : first;
  for (; ready_at(job, slot) <= now; slot = slot.next()) {
    planned.push_back({.slot = slot.name(), .start = slot.start(), .next_at = ready_at(job, slot)});
  }
  return planned;
}

std::chrono::seconds poll_delay(const config::Job& job, const Slot& slot, Instant now) {
  if (now < ready_at(job, slot) + kEagerPolling) {
    return std::max(std::chrono::seconds{1}, job.poll_every / 2);
  }
  return job.poll_every;
}

Instant next_ready(const config::Job& job, const Slot& last_planned) {
  return ready_at(job, last_planned.next());
}

Slot next_to_become_ready(const config::Job& job, Instant now) {
  // The slot before the one holding this instant is ready by now, whatever its hour:
  // start there and step to the first that is not (a step or two).
  const Instant surely_ready = now - job.ready_after - kLateHourExtra;
  Slot slot = Slot::containing(surely_ready, job.granularity).previous();
  while (ready_at(job, slot) <= now) {
    slot = slot.next();
  }
  return slot;
}

}  // namespace gio::scheduler
