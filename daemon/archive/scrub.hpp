#pragma once

// Scrubbing: re-reading archived partitions against their manifests, for
// `gio-exporter verify`. Read-only (apart from remove_success_marker), never follows a
// symlink below the archive root, and needs no Archive object: the CLI must not take
// the staging folder's lock, which the running daemon holds.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "archive/verify_mode.hpp"
#include "slot/slot.hpp"

namespace gio::archive {

// One thing wrong with a partition.
struct Damage {
  // The file at fault, or "" when the partition as a whole cannot be trusted (folder
  // missing, manifest missing or unreadable): then none of its files can be.
  std::string file;
  std::string problem;  // "sha256 abc..., manifest says def...", "missing", ...

  friend bool operator==(const Damage&, const Damage&) = default;
};

struct PartitionScrub {
  std::string data_type;
  std::filesystem::path path;
  std::vector<Damage> damage;  // empty: the partition is intact
  std::size_t files = 0;       // files the manifest lists
  std::uint64_t bytes = 0;     // bytes read back

  bool intact() const { return damage.empty(); }
};

// Checks one partition of `slot` under `root`: the folder exists (a symlink anywhere
// on the path is damage), _manifest.json is a regular file that parses and names this
// job, data type and slot, _SUCCESS is a regular file, and every file the manifest
// lists is a regular file (lstat) with the listed size and sha256 and, in gzip mode, a
// gzip stream that inflates to its end. Files are streamed in fixed-size blocks, so
// memory stays flat whatever their size. Files in the folder that the manifest does
// not list are damage too (Hive-style readers would take them as data). Damage is
// reported, never thrown; throws ArchiveError only when the root cannot be opened.
PartitionScrub scrub_partition(const std::filesystem::path& root, std::string_view job,
                               std::string_view data_type, const Slot& slot, VerifyMode mode);

// The data types (folder names below <root>/<job>/) that have a folder (or anything
// else, e.g. a planted symlink) at this slot's partition path: partitions the archive
// holds for the slot whether or not the state store knows about them. Sorted.
std::vector<std::string> partitions_on_disk(const std::filesystem::path& root, std::string_view job,
                                            const Slot& slot);

// Removes the partition's _SUCCESS marker (readers stop trusting a partition that is
// to be fetched again) and fsyncs the folder; nothing to do when the partition or the
// marker is missing, or a path component is a symlink (nothing of ours to unmark).
void remove_success_marker(const std::filesystem::path& root, std::string_view job,
                           std::string_view data_type, const Slot& slot);

}  // namespace gio::archive
