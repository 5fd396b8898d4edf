// Holding the API asks while the daemon cannot use their answers: during a download
// pause (a full disk) every FINISHED answer would fail to download, and while the state
// database fails no answer can be recorded. Either way each ask would count an attempt
// and spend the API budget for nothing, and log one failure per slot.

#include <algorithm>

#include "ops/logging.hpp"
#include "scheduler/scheduler.hpp"

namespace gio::scheduler {
namespace {

using std::chrono::seconds;

// How often the loop looks again while asks are held for the database.
constexpr seconds kStoreProbeEvery{5};

}  // namespace

bool Scheduler::asks_held() const {
  return !store_trouble_.empty() || downloads_.paused();
}

std::size_t Scheduler::asks_allowed_in_flight(std::size_t cap) const {
  if (asks_held()) {
    return 0;
  }
  // The pause lapsed but no download has succeeded since: one slot finds out whether
  // the disk has room again, instead of every due slot asking at once.
  return downloads_.troubled() ? 1 : cap;
}

std::optional<seconds> Scheduler::ask_hold_left() const {
  if (!store_trouble_.empty()) {
    return kStoreProbeEvery;
  }
  if (downloads_.paused()) {
    return std::max(seconds{1}, std::chrono::ceil<seconds>(downloads_.pause_left()));
  }
  return std::nullopt;
}

void Scheduler::note_store_trouble(const std::string& reason) {
  if (store_trouble_ == reason) {
    return;
  }
  store_trouble_ = reason;
  ops::log_event(
      ops::Level::error, "state_db_error",
      "the state database fails: no slot is asked until it can be written",
      {{"retry_in", std::to_string(kStoreProbeEvery.count()) + "s"}, {"reason", reason}});
}

}  // namespace gio::scheduler
