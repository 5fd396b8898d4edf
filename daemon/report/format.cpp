#include "report/format.hpp"

namespace gio::report {

std::string format_in(std::chrono::seconds span) {
  if (span < std::chrono::minutes{1}) {
    return "<1m";
  }
  const auto days = std::chrono::duration_cast<std::chrono::days>(span);
  const auto hours = std::chrono::duration_cast<std::chrono::hours>(span - days);
  const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(span - days - hours);
  if (days.count() > 0) {
    return std::to_string(days.count()) + "d" + std::to_string(hours.count()) + "h";
  }
  if (hours.count() > 0) {
    return std::to_string(hours.count()) + "h" + std::to_string(minutes.count()) + "m";
  }
  return std::to_string(minutes.count()) + "m";
}

std::string format_left(std::chrono::seconds left) {
  return left <= std::chrono::seconds{0} ? "none" : format_in(left);
}

}  // namespace gio::report
