#pragma once

// The readiness model (issue 18): when to ask the vendor about a slot, learned from
// when the job's earlier slots were first seen FINISHED. Pure functions of the job, the
// slot, the recorded delays and "now" (the scheduler records and reads the delays in
// the state store; the tests drive them with a simulated clock), and readiness_sample.
//
// A delay is measured from the slot's floor: its end plus ready_after, the earliest
// any ask goes. Samples are per readiness class (the vendor's docs: an hour is ready
// after about 40 min, the late hours 23-01 Beijing after 60, a day after 2-4 h).
//
// The bounds: never before the floor; never later than poll_every past the naive poller
// that asks at the floor and every poll_every after (so an ask in every
// (g, g + 2 poll_every] of its grid); asks on the grid of today's closest spacing
// (poll_every / 2 from the floor). With fewer than kReadinessMinimum delays the schedule
// is today's: the first ask at ready_at, then poll_delay (planner.hpp).

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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

// A regime change: the latest delays all beyond the older ones' range (above their 80th
// percentile or below their 20th, and their median kRegimeMinimum or more away from the
// older ones'), kRegimeRun of them in a row (one for days: a day
// job sees one a day, and a change must be followed within a day of slots; a single
// day then has to lie beyond all of the older ones). The older delays are then moved by
// the difference of the medians, so the model takes the new regime's place at once
// instead of waiting for the weights to fade the old one out.
inline constexpr std::size_t kRegimeRun = 3;
struct RegimeShift {
  std::size_t run = 0;  // the latest delays that are the new regime
  std::chrono::seconds by{0};
};
// Smaller moves than kRegimeMinimum are left to the weights.
inline constexpr std::chrono::seconds kRegimeMinimum{300};
std::optional<RegimeShift> regime_shift(std::span<const std::chrono::seconds> delays,
                                        std::string_view readiness_class);
// `delays` with the ones older than the shift's run moved by it (never below 0).
std::vector<std::chrono::seconds> follow_shift(std::span<const std::chrono::seconds> delays,
                                               const RegimeShift& shift);

// The sample a slot belongs to: "hour", "late_hour" (Beijing 23-01) or "day".
std::string_view readiness_class(const Slot& slot);

// The delays the model uses for `slot`, latest first: its class's, or while the late
// hours have too few of their own (3 a day), the other hours'; moved by a regime change
// of their own or, for the late hours, by one the other hours show, until the late hours
// have kRegimeRun delays of their own seen since it began.
std::vector<std::chrono::seconds> readiness_sample(state::StateStore& store, const std::string& job,
                                                   const Slot& slot);

// When the first ask of a slot goes, within [floor, floor + poll_every]; ready_at with
// too few delays. `delays`: readiness_sample's.
Instant first_ask(const config::Job& job, const Slot& slot,
                  std::span<const std::chrono::seconds> delays);

// A slot's planned first ask, as the scheduler plans it (first_ask with the job's
// readiness_sample) and as the status views show it: the one place both read it from.
// Reads each readiness class's sample once, since a plan or a view covers many slots.
class PlannedFirstAsk {
 public:
  PlannedFirstAsk(state::StateStore& store, const config::Job& job) : store_(store), job_(job) {}
  Instant operator()(const Slot& slot);

 private:
  state::StateStore& store_;
  const config::Job& job_;
  std::map<std::string_view, std::vector<std::chrono::seconds>, std::less<>> samples_;
};

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
