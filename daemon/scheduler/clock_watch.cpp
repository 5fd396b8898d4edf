// Wall-clock jumps: ClockWatch, and what the scheduler does after one (re-basing the
// next_at values that a jump left far beyond any schedule).

#include "scheduler/clock_watch.hpp"

#include <algorithm>
#include <cmath>

#include "ops/logging.hpp"
#include "scheduler/fairness.hpp"
#include "scheduler/notices.hpp"
#include "scheduler/scheduler.hpp"

namespace gio::scheduler {
namespace {

using std::chrono::seconds;

// Beyond now + poll_every (the longest wait a poll or a backoff sets), plus this much
// for rounding, a next_at was not set by this clock's schedule.
constexpr seconds kScheduleSlack{60};

std::string signed_seconds(seconds by) {
  return (by.count() >= 0 ? "+" : "") + std::to_string(by.count()) + "s";
}

}  // namespace

ClockWatch::ClockWatch(const Clock& clock)
    : clock_(clock),
      last_wall_(clock.now()),
      last_steady_(clock.steady()),
      anchor_wall_(last_wall_),
      anchor_steady_(last_steady_) {}

ClockWatch::Reading ClockWatch::read() {
  const Instant wall = clock_.now();
  const Clock::SteadyTime steady = clock_.steady();
  const std::chrono::duration<double> drift =
      (wall - last_wall_) - std::chrono::duration<double>(steady - last_steady_);
  if (std::abs(drift.count()) > static_cast<double>(kJumpTolerance.count())) {
    jumped_at_ = steady;
    const seconds by{std::lround(drift.count())};
    unhandled_ = unhandled_.value_or(seconds{0}) + by;
  }
  last_wall_ = wall;
  last_steady_ = steady;
  if (!jumped_at_ || steady - *jumped_at_ >= kClockConfirmation) {
    anchor_wall_ = wall;
    anchor_steady_ = steady;
    return {.wall = wall, .sure = wall, .believed = true};
  }
  const Instant projected = anchor_wall_ + std::chrono::floor<seconds>(steady - anchor_steady_);
  return {.wall = wall, .sure = std::min(wall, projected), .believed = false};
}

std::optional<seconds> ClockWatch::take_jump() {
  return std::exchange(unhandled_, std::nullopt);
}

ClockWatch::Reading Scheduler::read_clock() {
  const ClockWatch::Reading reading = clock_watch_.read();
  if (clock_watch_.pending_jump()) {
    wake_.notify();  // a worker saw it: the loop re-plans
  }
  return reading;
}

void Scheduler::handle_clock_jump(const ClockWatch::Reading& reading) {
  const auto jump = clock_watch_.pending_jump();
  if (!jump) {
    return;
  }
  // Taken only once the next_at values are pulled in: a database that fails now (the
  // loop retries in a few seconds) must not make the loop forget the jump.
  pull_in_next_at(reading.wall);
  clock_watch_.take_jump();
  ops::log_event(ops::Level::warning, "clock_jump",
                 "the wall clock jumped: no slot is lost or given up on by it until it has "
                 "kept pace with the steady clock for " +
                     std::to_string(kClockConfirmation.count()) + "m",
                 {{"by", signed_seconds(*jump)},
                  {"wall", format_utc(reading.wall)},
                  {"judged_by", format_utc(reading.sure)}});
}

void Scheduler::pull_in_next_at(Instant now) {
  // A next_at set before a jump back (or by a clock that was ahead) can lie hours or
  // days ahead; waited for, it stops the slot's polling until the clock gets there.
  std::optional<state::StateStore::Batch> batch;
  int pulled = 0;
  for (const config::Job& job : config().jobs) {
    if (!batch) {
      batch.emplace(store_);
    }
    // The NOT_EXISTS backlog is backed off for hours on purpose (fairness.hpp).
    const state::StateStore::Backlog backlog{
        .status = not_exists_status(),
        .beyond = now +
                  std::max<std::chrono::seconds>(job.poll_every, kNotExistsMaxWaitAfterLater) +
                  kScheduleSlack};
    pulled += store_.pull_in_next_at(job.name, now + job.poll_every + kScheduleSlack, backlog, now);
    if (!job.sink.empty()) {
      // An upload is never backed off longer than kMaxUploadBackoff (uploads.cpp).
      pulled += store_.pull_in_uploads(job.name, now + kMaxUploadBackoff + kScheduleSlack, now);
    }
  }
  if (batch) {
    batch->commit();
  }
  if (pulled > 0) {
    ops::log_event(ops::Level::info, "next_at_pulled_in",
                   "slots due far beyond their schedule (a clock jump) are due now",
                   {{"slots", pulled}, {"now", format_utc(now)}});
    wake_.notify();
  }
}

}  // namespace gio::scheduler
