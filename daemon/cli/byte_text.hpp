#pragma once

// Byte counts, rates and durations as people read them: `verify`'s summary, `status`'s
// downloading slots and `fetch`'s progress line share one way of writing them.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace gio::cli {

// "512 bytes", "412 MiB", "1.0 GiB".
std::string human_bytes(std::uint64_t bytes);
// "3 MiB/s" (a negative rate reads as 0).
std::string human_rate(double bytes_per_second);
// "4:05", "1:02:03": a time left or taken, as a clock shows it.
std::string clock_text(std::chrono::seconds span);
// "412 MiB of 1.0 GiB", or "412 MiB" when the total is not known.
std::string bytes_of(std::uint64_t done, std::optional<std::uint64_t> total);

}  // namespace gio::cli
