#pragma once

// What the daemon tells monitoring about its slots, read from the state store: the
// unit's STATUS line, the gauges of /metrics, and /healthz.

#include <chrono>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "ops/registry.hpp"
#include "ops/server.hpp"
#include "state/state_store.hpp"

namespace gio::cli {

// "12 slots waiting, 2 downloading, 0 failed, 0 at risk": the unit's STATUS line.
std::string status_line(const config::Config& config, state::StateStore& store, Instant now);

// Sets the gauges from the state store, then answers with every family.
ops::Reply scrape(const config::Config& config, state::StateStore& store, ops::Registry& registry,
                  Instant now);

// What /healthz knows of the scheduler's loop (Scheduler::alive_at, loop_alive): plain
// values, so that this file needs the scheduler's loop and nothing else of it.
struct LoopHealth {
  std::chrono::steady_clock::time_point alive_at;
  bool alive = false;
  // How long the scheduler's writes have found the database locked by another process
  // (Scheduler::database_locked_for); nullopt when they go through.
  std::optional<std::chrono::steady_clock::duration> database_locked_for{};
};

// 200 when the scheduler's loop went round lately and the database takes a write, or
// is locked by another process for less than kLockedUnhealthyAfter (the daemon waits
// for it: a backup or a `retry` is no reason to restart it); 503 otherwise. A short
// JSON body says which. It never waits for the lock itself: /healthz answers at once.
ops::Reply health(LoopHealth loop, state::StateStore& store, Instant now);

// 503 naming `why`: the state database the daemon has open is no longer the one its
// path names (deleted or replaced), and the daemon is about to stop.
ops::Reply unhealthy_database(const std::string& why);

}  // namespace gio::cli
