#include "ops/process_metrics.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

namespace gio::ops {
namespace {

constexpr std::string_view kCpu = "process_cpu_seconds_total";
constexpr std::string_view kResident = "process_resident_memory_bytes";
constexpr std::string_view kVirtual = "process_virtual_memory_bytes";
constexpr std::string_view kOpenFds = "process_open_fds";
constexpr std::string_view kMaxFds = "process_max_fds";
constexpr std::string_view kStartTime = "process_start_time_seconds";

// Fields of /proc/<pid>/stat counted from 1 (proc(5)); the first after the command
// name's ')' is field 3.
constexpr std::size_t kUtime = 14;
constexpr std::size_t kStime = 15;
constexpr std::size_t kStartTicks = 22;
constexpr std::size_t kVsize = 23;
constexpr std::size_t kRss = 24;

// Not an ifstream: libstdc++ opens those without O_CLOEXEC.
std::optional<std::string> read_text(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::nullopt;
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0) {
      ::close(fd);
      return got == 0 ? std::optional{text} : std::nullopt;
    }
    text.append(buffer, static_cast<std::size_t>(got));
  }
}

std::optional<double> number(std::string_view text) {
  long long value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return static_cast<double>(value);
}

// Entries of /proc/self/fd, the one the listing itself holds included (as the Go
// client counts them).
std::optional<double> open_fds() {
  std::error_code error;
  std::filesystem::directory_iterator entries{"/proc/self/fd", error};
  if (error) {
    return std::nullopt;
  }
  double count = 0;
  for (const auto& entry : entries) {
    (void)entry;
    ++count;
  }
  return count;
}

}  // namespace

std::optional<ProcStat> parse_proc_stat(std::string_view text, long ticks_per_second,
                                        long page_size) {
  const std::size_t name_end = text.rfind(')');
  if (name_end == std::string_view::npos || ticks_per_second <= 0) {
    return std::nullopt;
  }
  std::vector<std::string_view> fields;  // fields[0] is field 3
  for (std::size_t at = name_end + 1; at < text.size();) {
    at = text.find_first_not_of(" \n", at);
    if (at == std::string_view::npos) {
      break;
    }
    const std::size_t end = std::min(text.find_first_of(" \n", at), text.size());
    fields.push_back(text.substr(at, end - at));
    at = end;
  }
  const auto field = [&fields](std::size_t number_from_1) -> std::optional<double> {
    if (number_from_1 - 3 >= fields.size()) {
      return std::nullopt;
    }
    return number(fields[number_from_1 - 3]);
  };
  const auto utime = field(kUtime);
  const auto stime = field(kStime);
  const auto start = field(kStartTicks);
  const auto vsize = field(kVsize);
  const auto rss = field(kRss);
  if (!utime || !stime || !start || !vsize || !rss) {
    return std::nullopt;
  }
  const auto ticks = static_cast<double>(ticks_per_second);
  return ProcStat{.cpu_seconds = (*utime + *stime) / ticks,
                  .virtual_bytes = *vsize,
                  .resident_bytes = *rss * static_cast<double>(page_size),
                  .start_after_boot_s = *start / ticks};
}

double boot_time_seconds() {
  // CLOCK_BOOTTIME is what /proc/<pid>/stat's starttime counts from. Whole seconds, as
  // the kernel's btime: the start time then reads the same at every scrape.
  timespec wall{};
  timespec since_boot{};
  clock_gettime(CLOCK_REALTIME, &wall);
  clock_gettime(CLOCK_BOOTTIME, &since_boot);
  const double boot = static_cast<double>(wall.tv_sec - since_boot.tv_sec) +
                      static_cast<double>(wall.tv_nsec - since_boot.tv_nsec) * 1e-9;
  return std::round(boot);
}

void declare_process_metrics(Registry& registry) {
  // The HELP texts of the Prometheus client libraries.
  registry.declare(std::string{kCpu}, Kind::counter,
                   "Total user and system CPU time spent in seconds.");
  registry.declare(std::string{kResident}, Kind::gauge, "Resident memory size in bytes.");
  registry.declare(std::string{kVirtual}, Kind::gauge, "Virtual memory size in bytes.");
  registry.declare(std::string{kOpenFds}, Kind::gauge, "Number of open file descriptors.");
  registry.declare(std::string{kMaxFds}, Kind::gauge, "Maximum number of open file descriptors.");
  registry.declare(std::string{kStartTime}, Kind::gauge,
                   "Start time of the process since unix epoch in seconds.");
}

void update_process_metrics(Registry& registry) {
  const auto stat_text = read_text("/proc/self/stat");
  const auto stat =
      stat_text ? parse_proc_stat(*stat_text, sysconf(_SC_CLK_TCK), getpagesize()) : std::nullopt;
  if (stat) {
    registry.advance_to(kCpu, {}, stat->cpu_seconds);
    registry.set(kResident, {}, stat->resident_bytes);
    registry.set(kVirtual, {}, stat->virtual_bytes);
    // Read once: a wall clock set later must not move the start.
    static const double boot = boot_time_seconds();
    registry.set(kStartTime, {}, boot + stat->start_after_boot_s);
  }
  if (const auto fds = open_fds()) {
    registry.set(kOpenFds, {}, *fds);
  }
  if (rlimit limit{}; getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    registry.set(kMaxFds, {}, static_cast<double>(limit.rlim_cur));
  }
}

}  // namespace gio::ops
