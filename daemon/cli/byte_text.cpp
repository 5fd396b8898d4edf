#include "cli/byte_text.hpp"

#include <cstdio>

namespace gio::cli {

std::string human_bytes(std::uint64_t bytes) {
  if (bytes >= (1ull << 30)) {
    return std::to_string(bytes >> 30) + "." + std::to_string((bytes >> 20) % 1024 * 10 / 1024) +
           " GiB";
  }
  if (bytes >= (1ull << 20)) {
    return std::to_string(bytes >> 20) + " MiB";
  }
  return std::to_string(bytes) + " bytes";
}

std::string human_rate(double bytes_per_second) {
  if (bytes_per_second < 0) {
    bytes_per_second = 0;
  }
  return human_bytes(static_cast<std::uint64_t>(bytes_per_second)) + "/s";
}

std::string clock_text(std::chrono::seconds span) {
  const auto total = std::max<std::int64_t>(0, span.count());
  char text[32];
  if (total >= 3600) {
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(total / 3600),
                  static_cast<long long>(total / 60 % 60), static_cast<long long>(total % 60));
  } else {
    std::snprintf(text, sizeof text, "%lld:%02lld", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  }
  return text;
}

std::string bytes_of(std::uint64_t done, std::optional<std::uint64_t> total) {
  return total ? human_bytes(done) + " of " + human_bytes(*total) : human_bytes(done);
}

}  // namespace gio::cli
