#include "ops/service.hpp"

#include <systemd/sd-daemon.h>

namespace gio::ops {

void notify(std::string_view state) {
  sd_notify(0, std::string{state}.c_str());
}

std::string reloading_state() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const long long usec = static_cast<long long>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1'000;
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
}

std::optional<std::chrono::microseconds> watchdog_interval() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    return std::chrono::microseconds{usec};
  }
  return std::nullopt;
}

}  // namespace gio::ops
