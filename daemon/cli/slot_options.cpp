// --from, --to and --slot of backfill, retry and verify: slot names of the job's
// granularity, checked in this one place.

#include <iostream>

#include "cli/commands.hpp"

namespace gio::cli {

std::optional<Slot> parse_slot_option(const config::Job& job, std::string_view option,
                                      std::string_view text) {
  auto slot = Slot::parse(text, job.granularity);
  if (!slot) {
    std::cerr << "gio-exporter: " << option << " " << text << " is not a slot of job " << job.name
              << " (" << to_string(job.granularity) << " slots are named like "
              << (job.granularity == Granularity::hour ? "2026-11-22T03" : "2026-11-22")
              << ", Beijing time)\n";
  }
  return slot;
}

std::optional<SlotRange> parse_slot_range(const config::Job& job, std::string_view from_text,
                                          std::string_view to_text) {
  const auto from = parse_slot_option(job, "--from", from_text);
  const auto to = parse_slot_option(job, "--to", to_text);
  if (!from || !to) {
    return std::nullopt;
  }
  if (*to < *from) {
    std::cerr << "gio-exporter: --from " << from_text << " is after --to " << to_text << "\n";
    return std::nullopt;
  }
  return SlotRange{*from, *to};
}

}  // namespace gio::cli
