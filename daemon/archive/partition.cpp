#include "archive/partition.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "archive/archive.hpp"

namespace gio::archive {
namespace {

namespace fs = std::filesystem;

// A manifest lists a few hundred parts at most; anything far larger is not ours.
constexpr std::size_t kMaxManifestBytes = 16 * 1024 * 1024;

// One folder below the root: never a symlink, never a way up.
void check_component(std::string_view component, const fs::path& where) {
  if (component.empty() || component == "." || component == ".." ||
      component.find('/') != std::string_view::npos ||
      component.find('\0') != std::string_view::npos) {
    throw ArchiveError("refusing unsafe path component in " + where.string());
  }
}

}  // namespace

std::vector<std::string> partition_components(std::string_view job, std::string_view data_type,
                                              const Slot& slot) {
  std::vector<std::string> components{std::string{job}, std::string{data_type},
                                      "dt=" + slot.date()};
  if (slot.granularity() == Granularity::hour) {
    components.push_back("hour=" + slot.hour());
  }
  return components;
}

void sync_folder(int fd, const fs::path& path) {
  if (::fsync(fd) != 0) {
    throw ArchiveError("cannot fsync folder", path, errno);
  }
}

Fd open_folder_at(int parent, const std::string& name, const fs::path& path, bool missing_ok) {
  const int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    return Fd{fd};
  }
  const int error = errno;
  if (error == ENOENT && missing_ok) {
    return Fd{};
  }
  if (error == ELOOP || error == ENOTDIR) {
    throw ArchiveError("refusing " + path.string() + ": a symlink or not a folder");
  }
  throw ArchiveError("cannot open folder", path, error);
}

std::optional<Partition> walk(int root_fd, const fs::path& root,
                              const std::vector<std::string>& components, bool create,
                              unsigned folder_mode) {
  Partition partition;
  partition.path = root;
  Fd current{::fcntl(root_fd, F_DUPFD_CLOEXEC, 0)};  // not dup(): close-on-exec
  if (!current) {
    throw ArchiveError("cannot duplicate descriptor of", root, errno);
  }
  for (const std::string& component : components) {
    check_component(component, partition.path / component);
    const fs::path path = partition.path / component;
    bool created = false;
    if (create) {
      if (::mkdirat(current.get(), component.c_str(), folder_mode) == 0) {
        created = true;
      } else if (errno != EEXIST) {
        throw ArchiveError("cannot create folder", path, errno);
      }
    }
    Fd next = open_folder_at(current.get(), component, path, !create);
    if (!next) {
      return std::nullopt;
    }
    if (created) {
      // mkdirat's mode passed through the process umask; the archive's is exact.
      if (::fchmod(next.get(), folder_mode) != 0) {
        throw ArchiveError("cannot set the mode of", path, errno);
      }
      partition.changed_parents.emplace_back(std::move(current), partition.path);
    }
    current = std::move(next);
    partition.path = path;
  }
  partition.folder = std::move(current);
  return partition;
}

Partition create_partition(int root_fd, const fs::path& root,
                           const std::vector<std::string>& components, unsigned folder_mode) {
  auto partition = walk(root_fd, root, components, true, folder_mode);
  // Parents first: a synced file in a folder whose own entry is lost is lost too.
  for (auto it = partition->changed_parents.rbegin(); it != partition->changed_parents.rend();
       ++it) {
    sync_folder(it->first.get(), it->second);
  }
  partition->changed_parents.clear();
  return std::move(*partition);
}

ManifestText read_manifest_text(int folder) {
  ManifestText result;
  // O_NONBLOCK: a FIFO planted in its place must not hang the reader.
  const Fd file{::openat(folder, std::string{kManifestName}.c_str(),
                         O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
  if (!file) {
    result.failed = "cannot open";
    result.error = errno;
    return result;
  }
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t got = ::read(file.get(), buffer, sizeof buffer);
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      result.failed = "cannot read";
      result.error = errno;
      return result;
    }
    if (got == 0) {
      return result;
    }
    result.text.append(buffer, static_cast<std::size_t>(got));
    if (result.text.size() > kMaxManifestBytes) {
      result.too_large = true;
      return result;
    }
  }
}

}  // namespace gio::archive
