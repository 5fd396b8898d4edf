#pragma once

// The daemon's face to its service manager: systemd's notification protocol (READY,
// STATUS, RELOADING, STOPPING, WATCHDOG).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace gio::ops {

// sd_notify(): a no-op unless systemd (or a test) set NOTIFY_SOCKET.
void notify(std::string_view state);
// "RELOADING=1" with the MONOTONIC_USEC systemd wants alongside it.
std::string reloading_state();
// The watchdog interval systemd asked for (WATCHDOG_USEC), if any.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace gio::ops
