#pragma once

// The process_* metrics every Prometheus client library exposes (CPU time, memory, file
// descriptors, start time), with their standard names and meanings, read from
// /proc/self when /metrics is scraped. Dashboards made for other exporters work on
// them unchanged.

#include <optional>
#include <string_view>

#include "ops/registry.hpp"

namespace gio::ops {

// What /proc/self/stat says, in the units of the metrics.
struct ProcStat {
  double cpu_seconds = 0;         // utime + stime
  double virtual_bytes = 0;       // vsize
  double resident_bytes = 0;      // rss pages * page size
  double start_after_boot_s = 0;  // starttime, seconds after boot
};

// Parses the text of /proc/<pid>/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from its last ')'. nullopt when it is cut short.
std::optional<ProcStat> parse_proc_stat(std::string_view text, long ticks_per_second,
                                        long page_size);

// When the machine booted (unix seconds, whole), from the clocks: /proc/stat's btime
// is hidden from the unit (ProcSubset=pid).
double boot_time_seconds();

// Declares process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds and
// process_start_time_seconds.
void declare_process_metrics(Registry& registry);

// Reads /proc/self (and RLIMIT_NOFILE) into the families above. A file that cannot be
// read leaves its metrics out of this scrape rather than failing it.
void update_process_metrics(Registry& registry);

}  // namespace gio::ops
