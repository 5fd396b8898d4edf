#pragma once

// Short texts for spans of time, shared by `status`, `gaps` and the calendar.

#include <chrono>
#include <string>

namespace gio::report {

// "2d3h", "5h10m", "5m": how long before the vendor drops a slot, as format_in writes
// it; "none" when it has.
std::string format_left(std::chrono::seconds left);

// "12m", "1h5m", "2d3h": how far off the next ask is ("<1m" under a minute).
std::string format_in(std::chrono::seconds span);

}  // namespace gio::report
