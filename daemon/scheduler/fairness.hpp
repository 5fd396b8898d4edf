#pragma once

// Fair use of a project's API budget when a backlog outgrows it. Hours the vendor knows
// nothing about (NOT_EXISTS: raw export was switched on recently, so older hours will
// never exist) would otherwise be asked oldest-first every poll_every; once there are
// more of them than the rate serves in a poll interval, fresh hours (first asks
// included) would wait until give_up_after. So:
//  - the backlog (slots asked before whose last answer was NOT_EXISTS) is picked after
//    every other due slot, queues last on the rate limiter, and holds at most a share
//    of the slots in flight, so a fresh slot always finds a place;
//  - a NOT_EXISTS past the job's grace backs off exponentially (each wait as long as
//    the slot has been missing past its grace), capped, and harder when later hours of
//    the job were exported; never past the last useful ask before retention or the
//    give-up time.
// Pure functions of their arguments: the unit tests drive them with a manual clock.

#include <chrono>
#include <cstddef>
#include <string_view>

#include "config/config.hpp"
#include "slot/slot.hpp"
#include "state/state_store.hpp"

namespace gio::scheduler {

// The longest wait between two asks about a slot answering NOT_EXISTS past its grace,
// and the longer one once a later hour of the job was exported.
inline constexpr std::chrono::hours kNotExistsMaxWait{2};
inline constexpr std::chrono::hours kNotExistsMaxWaitAfterLater{6};
// The last ask before the vendor's retention takes a slot is at least this long before
// it: time enough to download a slot that appears at the very end.
inline constexpr std::chrono::hours kLastAskBeforeLoss{1};

// The status text of the answer that makes a slot backlog (api::to_string of
// ExportStatus::not_exists).
std::string_view not_exists_status();

// Whether `record` is backlog: asked before, and its last answer was NOT_EXISTS.
bool is_backlog(const state::SlotRecord& record);

// How many slots in flight the backlog may hold while `in_flight_cap` bounds them all.
std::size_t backlog_share(std::size_t in_flight_cap);

// When to ask again about a slot that just answered NOT_EXISTS at `now` (planned_at:
// the row's created_at, for give_up_after). Within the job's not_exists_grace after
// the slot's ready time: the regular poll. Past it: now + the time since the grace
// ended (so the waits double), at least poll_every, at most kNotExistsMaxWait; with
// `later_finished`, four times that, at most kNotExistsMaxWaitAfterLater. Never later
// than the last useful ask before the retention, nor than the give-up time.
Instant next_not_exists_ask(const config::Job& job, const Slot& slot, Instant planned_at,
                            bool later_finished, Instant now);

}  // namespace gio::scheduler
