#include "scheduler/readiness.hpp"

#include <algorithm>
#include <cmath>

#include "scheduler/planner.hpp"

namespace gio::scheduler {
namespace {

using std::chrono::seconds;

// The weighted share of delays at or below `offset`, latest delays weighing most.
class Distribution {
 public:
  explicit Distribution(std::span<const seconds> delays) : delays_(delays) {
    for (std::size_t i = 0; i < delays_.size(); ++i) {
      total_ += weight(i);
    }
  }
  double at_most(seconds offset) const {
    double share = 0;
    for (std::size_t i = 0; i < delays_.size(); ++i) {
      if (delays_[i] <= offset) {
        share += weight(i);
      }
    }
    return share / total_;
  }

 private:
  static double weight(std::size_t age) {
    return std::exp2(-static_cast<double>(age) / kReadinessHalfLife);
  }
  std::span<const seconds> delays_;
  double total_ = 0;
};

// Today's closest spacing, the step of the candidate asks.
seconds step_of(const config::Job& job) { return std::max(seconds{1}, job.poll_every / 2); }

// The first candidate after `after` (offsets from ready_at) whose chance of readiness
// since `after` reaches kAskChance, or `cap` when none before it does.
seconds ask_offset(const config::Job& job, const Distribution& distribution, seconds after,
                   seconds cap) {
  const double ready_before = distribution.at_most(after);
  const double left = 1.0 - ready_before;
  const seconds step = step_of(job);
  // Candidates on the grid of today's spacing from ready_at (0, step, 2 step, ...).
  seconds candidate = after < seconds{0} ? seconds{0} : (after / step + 1) * step;
  for (; left > 1e-9 && candidate < cap; candidate += step) {
    if ((distribution.at_most(candidate) - ready_before) / left >= kAskChance) {
      return candidate;
    }
  }
  return cap;
}

}  // namespace

std::string_view readiness_class(const Slot& slot) {
  return slot.granularity() == Granularity::hour ? "hour" : "day";
}

seconds first_ask_offset(const config::Job& job, std::span<const seconds> delays) {
  if (delays.size() < kReadinessMinimum) {
    return seconds{0};
  }
  // An export ready by ready_at is seen by the naive poller at ready_at: asked by then
  // plus poll_every. An ask at 0 needs no look at the sample.
  const Distribution distribution{delays};
  if (distribution.at_most(seconds{0}) >= kAskChance) {
    return seconds{0};
  }
  return ask_offset(job, distribution, seconds{0}, job.poll_every);
}

Instant next_ask(const config::Job& job, const Slot& slot, std::span<const seconds> delays,
                 Instant now) {
  if (delays.size() < kReadinessMinimum) {
    return now + poll_delay(job, slot, now);
  }
  const Instant ready = ready_at(job, slot);
  const seconds offset = std::chrono::duration_cast<seconds>(now - ready);
  // The naive poller's next ask after now (its grid: ready_at + k poll_every); an export
  // ready just after now is seen by it there at the earliest: asked by then + poll_every.
  const seconds every = std::max(seconds{1}, job.poll_every);
  const seconds naive = offset < seconds{0} ? seconds{0} : (offset / every + 1) * every;
  const seconds at = ask_offset(job, Distribution{delays}, offset, naive + every);
  return ready + std::max(at, offset + seconds{1});
}

std::optional<seconds> observed_delay(const config::Job& job, const Slot& slot,
                                      const state::SlotRecord& before, Instant now) {
  const Instant ready = ready_at(job, slot);
  // Longer than the widest gap the model leaves between asks means the daemon was away.
  const seconds widest = 2 * std::max(seconds{1}, job.poll_every) + step_of(job);
  if (before.attempts == 0) {
    if (now - ready > widest) {
      return std::nullopt;  // a catch-up: ready long before, when is unknown
    }
    return std::chrono::duration_cast<seconds>(now - step_of(job) - ready);
  }
  if (before.state != state::SlotState::waiting || now - before.updated_at > widest) {
    return std::nullopt;
  }
  const Instant middle = before.updated_at + (now - before.updated_at) / 2;
  return std::chrono::duration_cast<seconds>(middle - ready);
}

}  // namespace gio::scheduler
