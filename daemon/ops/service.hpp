#pragma once

// The daemon's face to its service manager and to monitoring: systemd's notification
// protocol (READY, STATUS, RELOADING, STOPPING, WATCHDOG), and the answers of the
// metrics listener (/metrics, /healthz). Everything here runs on the event loop.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "ops/registry.hpp"
#include "ops/server.hpp"
#include "state/state_store.hpp"

namespace gio::ops {

// sd_notify(): a no-op unless systemd (or a test) set NOTIFY_SOCKET.
void notify(std::string_view state);
// "RELOADING=1" with the MONOTONIC_USEC systemd wants alongside it.
std::string reloading_state();
// The watchdog interval systemd asked for (WATCHDOG_USEC), if any.
std::optional<std::chrono::microseconds> watchdog_interval();

// "12 slots waiting, 2 downloading, 0 failed, 0 at risk": the unit's STATUS line.
std::string status_line(const config::Config& config, state::StateStore& store, Instant now);

// Sets the gauges from the state store, then answers with every family.
Reply scrape(const config::Config& config, state::StateStore& store, Registry& registry,
             Instant now);

// What /healthz knows of the scheduler's loop (Scheduler::alive_at, loop_alive): plain
// values, because the scheduler is built on ops/ and not the other way round.
struct LoopHealth {
  std::chrono::steady_clock::time_point alive_at;
  bool alive = false;
};

// 200 when the scheduler's loop went round lately and the database takes a write;
// 503 otherwise. A short JSON body says which.
Reply health(LoopHealth loop, state::StateStore& store, Instant now);

}  // namespace gio::ops
