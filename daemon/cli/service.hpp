#pragma once

// The daemon's face to its service manager and to monitoring: systemd's notification
// protocol (READY, STATUS, RELOADING, STOPPING, WATCHDOG), and the answers of the
// metrics listener (/metrics, /healthz). Everything here runs on the event loop.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "metrics/registry.hpp"
#include "metrics/server.hpp"
#include "scheduler/scheduler.hpp"
#include "state/state_store.hpp"

namespace gio::cli {

// sd_notify(): a no-op unless systemd (or a test) set NOTIFY_SOCKET.
void notify(std::string_view state);
// "RELOADING=1" with the MONOTONIC_USEC systemd wants alongside it.
std::string reloading_state();
// The watchdog interval systemd asked for (WATCHDOG_USEC), if any.
std::optional<std::chrono::microseconds> watchdog_interval();

// "12 slots waiting, 2 downloading, 0 failed, 0 at risk": the unit's STATUS line.
std::string status_line(const config::Config& config, state::StateStore& store, Instant now);

// Sets the gauges from the state store, then answers with every family.
metrics::Reply scrape(const config::Config& config, state::StateStore& store,
                      metrics::Registry& registry, Instant now);

// 200 when the scheduler's loop went round lately and the database takes a write;
// 503 otherwise. A short JSON body says which.
metrics::Reply health(const scheduler::Scheduler& scheduler, state::StateStore& store, Instant now);

}  // namespace gio::cli
