#pragma once

// One slot of a chart job: every chart id asked for, every finished answer archived
// as <job>/<chart_id>/dt=.../[hour=HH/]{chart.json, chart.csv, _manifest.json, _SUCCESS}.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "api/client.hpp"
#include "archive/archive.hpp"
#include "config/config.hpp"
#include "slot/slot.hpp"
#include "state/state_store.hpp"

namespace gio::chart {

enum class SlotResult {
  done,         // every chart id is archived
  waiting,      // at least one chart is still "doing": ask again after poll_every
  retry_later,  // a transient failure (network, 5xx, 429, a garbled answer)
  failed,       // the request itself is wrong (credentials, unknown chart id)
};

struct SlotOutcome {
  SlotResult result = SlotResult::done;
  std::string error;  // why, for retry_later and failed; never a secret
  std::optional<std::chrono::seconds> retry_after{};
  int asked = 0;            // API calls made in this pass
  int archived = 0;         // charts archived in this pass
  int waiting = 0;          // charts still "doing"
  std::uint64_t bytes = 0;  // bytes archived in this pass (both files)
};

// Asks for each chart id of `chart_job` that is not archived yet (an earlier, interrupted
// pass may have archived some: those are recorded in the state store's files table
// with data_type = chart id and are never fetched again), and archives each finished
// one: both files staged with fsync, recorded, published, then the manifest and
// _SUCCESS. Stops at the first failure; charts archived before it stay archived.
// `turn` is the slot's place in the project's rate-limit queue.
boost::asio::awaitable<SlotOutcome> archive_slot(api::Client& api, const archive::Archive& archive,
                                                 state::StateStore& store, const Clock& clock,
                                                 const config::Job& job,
                                                 const config::ChartJob& chart_job,
                                                 const config::Project& project, const Slot& slot,
                                                 api::Turn turn);

}  // namespace gio::chart
