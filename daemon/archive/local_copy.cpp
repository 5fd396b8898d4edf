// The local copy of a slot whose job lands on a sink (issue 15): what there is to land,
// and removing it once landed and kept long enough (keep_local).

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "archive/archive.hpp"
#include "archive/partition.hpp"
#include "archive/scrub.hpp"

namespace gio::archive {
namespace {

namespace fs = std::filesystem;

// The entries of an open folder (its own descriptor is left open).
std::vector<std::string> entries_of(int folder, const fs::path& path) {
  const int fd = ::openat(folder, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    throw ArchiveError("cannot list", path, errno);
  }
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    const int error = errno;
    ::close(fd);
    throw ArchiveError("cannot list", path, error);
  }
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") {
      names.emplace_back(name);
    }
  }
  ::closedir(dir);
  return names;
}

// Removes `name` from `folder` unless it is a folder; the bytes of a regular file.
std::uint64_t remove_entry(int folder, const fs::path& path, const std::string& name) {
  struct stat info {};
  if (::fstatat(folder, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) {
      return 0;
    }
    throw ArchiveError("cannot stat", path / name, errno);
  }
  if (S_ISDIR(info.st_mode)) {
    return 0;  // the archive never writes a folder here: not ours to remove
  }
  if (::unlinkat(folder, name.c_str(), 0) != 0 && errno != ENOENT) {
    throw ArchiveError("cannot remove", path / name, errno);
  }
  return S_ISREG(info.st_mode) ? static_cast<std::uint64_t>(info.st_size) : 0;
}

// rmdir of `name` in `parent`, which may hold something that is not ours: kept then.
bool remove_folder_if_empty(int parent, const fs::path& parent_path, const std::string& name) {
  if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) == 0) {
    sync_folder(parent, parent_path);
    return true;
  }
  if (errno == ENOTEMPTY || errno == EEXIST || errno == ENOENT) {
    return false;
  }
  throw ArchiveError("cannot remove folder", parent_path / name, errno);
}

}  // namespace

std::vector<LocalPartition> Archive::slot_partitions(std::string_view job, const Slot& slot) const {
  std::vector<LocalPartition> partitions;
  for (std::string& type : partitions_on_disk(root_, job, slot)) {
    LocalPartition partition{.data_type = type, .dir = partition_dir(job, type, slot)};
    partition.complete = is_complete(job, type, slot);
    partition.manifest = read_manifest(job, type, slot);
    partitions.push_back(std::move(partition));
  }
  return partitions;
}

std::uint64_t Archive::remove_partition(std::string_view job, std::string_view data_type,
                                        const Slot& slot) const {
  std::vector<std::string> components = partition_components(job, data_type, slot);
  const std::string leaf = components.back();
  components.pop_back();
  const auto parent = walk(root_fd_, root_, components, /*create=*/false);
  if (!parent) {
    return 0;
  }
  const fs::path path = parent->path / leaf;
  const Fd folder = open_folder_at(parent->folder.get(), leaf, path, /*missing_ok=*/true);
  if (!folder) {
    return 0;
  }
  // The marker goes first and durably: a crash halfway leaves a partition readers skip.
  std::uint64_t bytes = remove_entry(folder.get(), path, std::string{kSuccessName});
  sync_folder(folder.get(), path);
  for (const std::string& name : entries_of(folder.get(), path)) {
    bytes += remove_entry(folder.get(), path, name);
  }
  sync_folder(folder.get(), path);
  if (remove_folder_if_empty(parent->folder.get(), parent->path, leaf) &&
      slot.granularity() == Granularity::hour) {
    // An hour's partition leaves its day's folder empty after the day's last hour.
    const auto day = walk(root_fd_, root_, {std::string{job}, std::string{data_type}},
                          /*create=*/false);
    if (day) {
      remove_folder_if_empty(day->folder.get(), day->path, components.back());
    }
  }
  return bytes;
}

}  // namespace gio::archive
