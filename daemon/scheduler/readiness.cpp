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

// The earliest any ask goes, and the origin of the delays.
Instant floor_of(const config::Job& job, const Slot& slot) {
  return slot.end() + job.ready_after;
}

// Today's closest spacing, the step of the candidate asks.
seconds step_of(const config::Job& job) {
  return std::max(seconds{1}, job.poll_every / 2);
}

// The first candidate after `after` (offsets from the floor) whose chance of readiness
// since `after` reaches kAskChance, or `cap` when none before it does.
seconds ask_offset(const config::Job& job, const Distribution& distribution, seconds after,
                   seconds cap) {
  const double ready_before = distribution.at_most(after);
  const double left = 1.0 - ready_before;
  const seconds step = step_of(job);
  // Candidates on the grid of today's spacing from the floor (0, step, 2 step, ...).
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
  if (slot.granularity() == Granularity::day) {
    return "day";
  }
  return is_late_hour(slot) ? "late_hour" : "hour";
}

std::optional<RegimeShift> regime_shift(std::span<const seconds> delays,
                                        std::string_view readiness_class) {
  const std::size_t shortest = readiness_class == "day" ? 1 : kRegimeRun;
  if (delays.size() < kReadinessMinimum + shortest) {
    return std::nullopt;
  }
  // The longest run first: once a change is a few slots old, its first delays belong
  // to it too (each loop is over at most kReadinessKept delays).
  for (std::size_t run = delays.size() - kReadinessMinimum; run >= shortest; --run) {
    std::vector<seconds> older{delays.begin() + static_cast<std::ptrdiff_t>(run), delays.end()};
    std::ranges::sort(older);
    // A single day must lie beyond all the older days, a run beyond 80% of them (the
    // vendor's own tail, 10% spread up to 2 h, must not hide a change in its range).
    const std::size_t tail = run == 1 ? 0 : older.size() / 5;
    const seconds low = older[tail], high = older[older.size() - 1 - tail];
    const auto latest = delays.first(run);
    const bool slower = std::ranges::all_of(latest, [&](seconds d) { return d > high; });
    const bool faster = std::ranges::all_of(latest, [&](seconds d) { return d < low; });
    if (slower || faster) {
      std::vector<seconds> recent{latest.begin(), latest.end()};
      std::ranges::sort(recent);
      const seconds by = recent[recent.size() / 2] - older[older.size() / 2];
      if (by >= kRegimeMinimum || -by >= kRegimeMinimum) {
        return RegimeShift{.run = run, .by = by};
      }
    }
  }
  return std::nullopt;
}

std::vector<seconds> follow_shift(std::span<const seconds> delays, const RegimeShift& shift) {
  std::vector<seconds> moved{delays.begin(), delays.end()};
  for (std::size_t i = shift.run; i < moved.size(); ++i) {
    moved[i] = std::max(seconds{0}, moved[i] + shift.by);
  }
  return moved;
}

namespace {

std::vector<seconds> delays_of(std::span<const state::StateStore::ReadinessSeen> seen) {
  std::vector<seconds> delays;
  delays.reserve(seen.size());
  for (const auto& one : seen) {
    delays.push_back(one.delay);
  }
  return delays;
}

}  // namespace

std::vector<seconds> readiness_sample(state::StateStore& store, const std::string& job,
                                      const Slot& slot) {
  std::string_view name = readiness_class(slot);
  std::vector<state::StateStore::ReadinessSeen> seen = store.readiness_seen(job, name);
  if (seen.size() < kReadinessMinimum && name == "late_hour") {
    name = "hour";
    seen = store.readiness_seen(job, name);
  }
  const std::vector<seconds> delays = delays_of(seen);
  if (const auto shift = regime_shift(delays, name)) {
    return follow_shift(delays, *shift);
  }
  if (name != "late_hour") {
    return delays;
  }
  // 3 late hours a day would take a day to show a change themselves: until they have
  // kRegimeRun delays seen since the other hours' change began, they follow it.
  const std::vector<state::StateStore::ReadinessSeen> hours = store.readiness_seen(job, "hour");
  const auto shift = regime_shift(delays_of(hours), "hour");
  if (!shift) {
    return delays;
  }
  const Instant began = hours[shift->run - 1].seen_at;
  const auto own = static_cast<std::size_t>(
      std::ranges::count_if(seen, [&](const auto& one) { return one.seen_at >= began; }));
  if (own >= kRegimeRun) {
    return delays;  // their own evidence, which showed no change of their own
  }
  return follow_shift(delays, {.run = own, .by = shift->by});
}

Instant first_ask(const config::Job& job, const Slot& slot, std::span<const seconds> delays) {
  if (delays.size() < kReadinessMinimum) {
    return ready_at(job, slot);
  }
  // An export ready by the floor is seen by the naive poller there: asked by then plus
  // poll_every.
  const Distribution distribution{delays};
  const seconds offset = distribution.at_most(seconds{0}) >= kAskChance
                             ? seconds{0}
                             : ask_offset(job, distribution, seconds{0}, job.poll_every);
  return floor_of(job, slot) + offset;
}

Instant PlannedFirstAsk::operator()(const Slot& slot) {
  const std::string_view name = readiness_class(slot);
  auto sample = samples_.find(name);
  if (sample == samples_.end()) {
    sample = samples_.emplace(name, readiness_sample(store_, job_.name, slot)).first;
  }
  return first_ask(job_, slot, sample->second);
}

Instant next_ask(const config::Job& job, const Slot& slot, std::span<const seconds> delays,
                 Instant now) {
  if (delays.size() < kReadinessMinimum) {
    return now + poll_delay(job, slot, now);
  }
  const Instant floor = floor_of(job, slot);
  const seconds offset = std::chrono::duration_cast<seconds>(now - floor);
  // The naive poller's next ask after now (its grid: floor + k poll_every); an export
  // ready just after now is seen by it there at the earliest: asked by then + poll_every.
  const seconds every = std::max(seconds{1}, job.poll_every);
  const seconds naive = offset < seconds{0} ? seconds{0} : (offset / every + 1) * every;
  const seconds at = ask_offset(job, Distribution{delays}, offset, naive + every);
  return floor + std::max(at, offset + seconds{1});
}

std::optional<seconds> observed_delay(const config::Job& job, const Slot& slot,
                                      const state::SlotRecord& before, Instant now) {
  const Instant ready = ready_at(job, slot);
  const Instant floor = floor_of(job, slot);
  // Longer than the widest gap the model leaves between asks means the daemon was away.
  const seconds widest = 2 * std::max(seconds{1}, job.poll_every) + step_of(job);
  if (before.attempts == 0) {
    if (now - ready > widest) {
      return std::nullopt;  // a catch-up: ready long before, when is unknown
    }
    return std::chrono::duration_cast<seconds>(std::max(floor, now - step_of(job)) - floor);
  }
  if (before.state != state::SlotState::waiting || now - before.updated_at > widest) {
    return std::nullopt;
  }
  const Instant middle = before.updated_at + (now - before.updated_at) / 2;
  return std::chrono::duration_cast<seconds>(middle - floor);
}

}  // namespace gio::scheduler
