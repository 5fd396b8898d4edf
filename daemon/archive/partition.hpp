#pragma once

// Inside archive/ only: walking to a partition folder by descriptors, one component at a
// time, never following a symlink below the root; and reading a partition's manifest.
// Shared by Archive, the staged file and the scrubber so that each rule exists once.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "archive/fd.hpp"
#include "slot/slot.hpp"

namespace gio::archive {

// <job>/<data_type>/dt=YYYY-MM-DD[/hour=HH]: the folders below the root, in order.
std::vector<std::string> partition_components(std::string_view job, std::string_view data_type,
                                              const Slot& slot);

// fsync of a folder, so that the entries just made in it survive a crash.
void sync_folder(int fd, const std::filesystem::path& path);

// Opens `name` below `parent` as a folder without following a symlink. ENOENT is
// returned as an empty Fd when `missing_ok`; a symlink or non-folder is refused.
Fd open_folder_at(int parent, const std::string& name, const std::filesystem::path& path,
                  bool missing_ok);

struct Partition {
  Fd folder;
  std::filesystem::path path;
  // Folders that got a new entry (a folder created in them) and need an fsync too.
  std::vector<std::pair<Fd, std::filesystem::path>> changed_parents;
};

// Opens (creating when `create`) the partition folder component by component from the
// root, refusing symlinks at every step. nullopt when !create and a folder is missing.
// `folder_mode`: given to the folders it creates (0 when !create).
std::optional<Partition> walk(int root_fd, const std::filesystem::path& root,
                              const std::vector<std::string>& components, bool create,
                              unsigned folder_mode = 0);

// walk() creating what is missing, then fsyncs the parents of the folders it created,
// nearest the root first.
Partition create_partition(int root_fd, const std::filesystem::path& root,
                           const std::vector<std::string>& components, unsigned folder_mode);

// _manifest.json read from a partition folder, never through a symlink.
struct ManifestText {
  std::string text;
  std::string_view failed;  // "" when read whole; else "cannot open" or "cannot read"
  int error = 0;            // errno of `failed`: ENOENT when missing, ELOOP when a symlink
  bool too_large = false;   // larger than any manifest we write: not ours
};
ManifestText read_manifest_text(int folder);

}  // namespace gio::archive
