#pragma once

// Which slots a job has, and when each can first be asked for. Pure functions of the
// job and "now": the scheduler and the CLI (gaps, status) share them.

#include <vector>

#include "config/config.hpp"
#include "slot/slot.hpp"
#include "state/state_store.hpp"

namespace gio::scheduler {

// When the vendor's export of `slot` can be expected: the slot's end plus the job's
// ready_after. Hours between 23:00 and 02:00 (Beijing) take the vendor 20 minutes
// longer (growingio-api.md, section 6).
Instant ready_at(const config::Job& job, const Slot& slot);
// Whether `slot` is one of those late hours (Beijing 23, 00 and 01).
bool is_late_hour(const Slot& slot);

// After this instant a slot that is still not archived is `failed`: give_up_after
// counted from when the slot became ready, or from when it was planned if that was
// later (a slot found after an outage is not given up on before it was asked for).
Instant give_up_at(const config::Job& job, const Slot& slot, Instant planned_at);

// The oldest slot inside the job's backfill window at `now`.
Slot first_in_window(const config::Job& job, Instant now);

// The job's slots with start >= `from` (and inside the backfill window) that are
// ready by `now`, oldest first, each due at its ready time.
std::vector<state::PlannedSlot> plan_slots(const config::Job& job, Instant from, Instant now);

// How long a slot whose export is not ready yet waits for its next ask: half of
// poll_every (at least 1 s) until kEagerPolling after the slot's ready time, when the
// vendor's exports most often finish, then poll_every. Against exports ready 30 to 70
// minutes after the hour this halves the median wait from ready to archived for about
// two more asks per slot (scripts/bench.sh); a slot asked for the first time long after
// it became ready (a catch-up) is polled at poll_every from the start.
inline constexpr std::chrono::minutes kEagerPolling{20};
std::chrono::seconds poll_delay(const config::Job& job, const Slot& slot, Instant now);

// When the job's next slot after `last_planned` becomes ready: the next planning moment.
Instant next_ready(const config::Job& job, const Slot& last_planned);

// The job's oldest slot that is not ready at `now`: the next one planned, and asked for
// at its ready_at (`status` shows it when nothing is due sooner).
Slot next_to_become_ready(const config::Job& job, Instant now);

}  // namespace gio::scheduler
