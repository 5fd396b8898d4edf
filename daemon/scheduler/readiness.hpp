#pragma once

// The readiness model (issue 18): when to ask the vendor about a slot, learned from
// when the job's earlier slots were first seen FINISHED. Pure functions of the job, the
// slot, the recorded delays and "now": the scheduler records and reads the delays
// (state::StateStore::readiness), the tests drive these with made-up histories.
//
// A delay is measured from the slot's nominal ready time (planner.hpp's ready_at: the
// end plus ready_after, +20 min for the late hours), so the hours of a day share one
// sample and a change of regime is followed within a day of slots.
//
// The bounds: never before ready_at; never later than poll_every past the naive poller
// that asks at ready_at and every poll_every after (an ask in every (g, g + 2 poll_every]
// of its grid); asks on the grid of today's closest spacing (poll_every / 2 from
// ready_at). With fewer than
// kReadinessMinimum delays the schedule is today's (first ask at ready_at, poll_delay).

#include <chrono>
#include <optional>
#include <span>
#include <string_view>

#include "config/config.hpp"
#include "slot/slot.hpp"
#include "state/state_store.hpp"

namespace gio::scheduler {

// Delays kept per job and class, and how many it takes to replace the fixed schedule.
inline constexpr int kReadinessKept = 48;
inline constexpr std::size_t kReadinessMinimum = 8;
// A delay's weight halves every kReadinessHalfLife newer ones: after a +30 min change
// the new regime outweighs the old after about 6 slots, and the old fades within a day.
inline constexpr double kReadinessHalfLife = 6.0;
// An ask goes when the chance that the export became ready since the last one reaches
// this (the first ask: the chance that it is ready at all). Lower asks more often.
inline constexpr double kAskChance = 0.4;

// The sample a slot belongs to: its granularity ("hour" or "day").
std::string_view readiness_class(const Slot& slot);

// How long after ready_at the first ask of a slot goes (0 with too few delays), within
// [0, poll_every]. `delays`: the class's recorded delays, latest first.
std::chrono::seconds first_ask_offset(const config::Job& job,
                                      std::span<const std::chrono::seconds> delays);

// When a slot whose export was not ready at `now` is asked next.
Instant next_ask(const config::Job& job, const Slot& slot,
                 std::span<const std::chrono::seconds> delays, Instant now);

// The delay to record when `slot` is seen FINISHED at `now` for the first time, with
// `before` the slot's row before this ask; nothing when the ask tells little about when
// it became ready (a catch-up long after ready_at, a pause, a retry after an error).
// After a "not ready" answer: the middle of the two asks; at the first ask: half a
// poll_every before it (so that a vendor grown faster pulls the first ask earlier).
std::optional<std::chrono::seconds> observed_delay(const config::Job& job, const Slot& slot,
                                                   const state::SlotRecord& before, Instant now);

}  // namespace gio::scheduler
