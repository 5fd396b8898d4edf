#pragma once

// Wall-clock jumps. Deadlines (the vendor's retention, give_up_after, readiness) are wall
// time, but the wall clock can jump: an operator, a bad NTP server, a VM restored from a
// snapshot. A slot marked lost or failed on one wrong reading is never asked again, so
// the scheduler never acts irreversibly on a reading the steady clock does not bear out.
//
// ClockWatch compares how far the wall clock and the steady clock moved between two
// readings. A difference beyond kJumpTolerance is a jump. After one, the wall clock is
// believed again only once it has kept pace with the steady clock for kClockConfirmation;
// until then, verdicts use the last believed reading plus the steady time since, never
// later than the wall clock (the "sure" time: an instant known to have passed).

#include <chrono>
#include <optional>

#include "slot/slot.hpp"

namespace gio::scheduler {

// Readings are whole seconds and NTP slews at most 0.5 ms/s: a few seconds is far above
// both, and far below any jump that could decide a slot's fate.
inline constexpr std::chrono::seconds kJumpTolerance{5};
// How long a wall clock that jumped must keep pace with the steady clock to be believed
// again (a jump and its return are most often minutes apart, not hours).
inline constexpr std::chrono::minutes kClockConfirmation{10};

class ClockWatch {
 public:
  explicit ClockWatch(const Clock& clock);

  struct Reading {
    Instant wall;   // the wall clock now: what due times are compared with
    Instant sure;   // what verdicts and planning go by (equals wall when believed)
    bool believed;  // no jump, or the wall clock kept pace long enough since the last one
  };
  // Reads both clocks and notes a jump since the previous reading. The first reading
  // of a process is believed: there is nothing yet to compare it with.
  Reading read();
  // The jumps seen since the last take (the loop re-plans after each): by how much the
  // wall clock moved beyond the steady clock, summed; nullopt when none.
  std::optional<std::chrono::seconds> take_jump();
  std::optional<std::chrono::seconds> pending_jump() const { return unhandled_; }

 private:
  const Clock& clock_;
  Instant last_wall_;
  Clock::SteadyTime last_steady_;
  // The last believed reading, from which `sure` is projected on the steady clock.
  Instant anchor_wall_;
  Clock::SteadyTime anchor_steady_;
  std::optional<Clock::SteadyTime> jumped_at_;  // steady time of the last jump
  std::optional<std::chrono::seconds> unhandled_;
};

}  // namespace gio::scheduler
