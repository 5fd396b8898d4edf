#include "archive/archive.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include "archive/fd.hpp"

namespace gio::archive {
namespace {

namespace fs = std::filesystem;

// A manifest lists a few hundred parts at most; anything far larger is not ours.
constexpr std::size_t kMaxManifestBytes = 16 * 1024 * 1024;

[[noreturn]] void fail(std::string_view what, const fs::path& path, int error) {
  throw ArchiveError(what, path, error);
}

void sync_folder(int fd, const fs::path& path) {
  if (::fsync(fd) != 0) {
    fail("cannot fsync folder", path, errno);
  }
}

// One folder below the root: never a symlink, never a way up.
void check_component(std::string_view component, const fs::path& where) {
  if (component.empty() || component == "." || component == ".." ||
      component.find('/') != std::string_view::npos ||
      component.find('\0') != std::string_view::npos) {
    throw ArchiveError("refusing unsafe path component in " + where.string());
  }
}

// Opens `name` below `parent` as a folder without following a symlink. ENOENT is
// returned as an empty Fd when `missing_ok`; a symlink or non-folder is refused.
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
  fail("cannot open folder", path, error);
}

void write_all(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    const ssize_t written = ::write(fd, data.data(), data.size());
    if (written < 0) {
      if (errno == EINTR) {
        continue;
      }
      fail("cannot write", path, errno);
    }
    data.remove_prefix(static_cast<std::size_t>(written));
  }
}

std::vector<std::string> partition_components(std::string_view job, std::string_view data_type,
                                              const Slot& slot) {
  std::vector<std::string> components{std::string{job}, std::string{data_type},
                                      "dt=" + slot.date()};
  if (slot.granularity() == Granularity::hour) {
    components.push_back("hour=" + slot.hour());
  }
  return components;
}

}  // namespace

ArchiveError::ArchiveError(std::string_view what, const std::filesystem::path& path, int error)
    : std::runtime_error(std::string{what} + " " + path.string() + ": " + std::strerror(error)) {}

// ---------------------------------------------------------------------------------------
// Walking down a partition

namespace {

struct Partition {
  Fd folder;
  fs::path path;
  // Folders that got a new entry (a folder created in them) and need an fsync too.
  std::vector<std::pair<Fd, fs::path>> changed_parents;
};

// Opens (creating when `create`) the partition folder component by component from the
// root, refusing symlinks at every step. nullopt when !create and a folder is missing.
// `folder_mode`: given to the folders it creates (0 when !create).
std::optional<Partition> walk(int root_fd, const fs::path& root,
                              const std::vector<std::string>& components, bool create,
                              mode_t folder_mode = 0) {
  Partition partition;
  partition.path = root;
  Fd current{::dup(root_fd)};
  if (!current) {
    fail("cannot duplicate descriptor of", root, errno);
  }
  for (const std::string& component : components) {
    check_component(component, partition.path / component);
    const fs::path path = partition.path / component;
    bool created = false;
    if (create) {
      if (::mkdirat(current.get(), component.c_str(), folder_mode) == 0) {
        created = true;
      } else if (errno != EEXIST) {
        fail("cannot create folder", path, errno);
      }
    }
    Fd next = open_folder_at(current.get(), component, path, !create);
    if (!next) {
      return std::nullopt;
    }
    if (created) {
      // mkdirat's mode passed through the process umask; the archive's is exact.
      if (::fchmod(next.get(), folder_mode) != 0) {
        fail("cannot set the mode of", path, errno);
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
                           const std::vector<std::string>& components, mode_t folder_mode) {
  auto partition = walk(root_fd, root, components, true, folder_mode);
  // Parents first: a synced file in a folder whose own entry is lost is lost too.
  for (auto it = partition->changed_parents.rbegin(); it != partition->changed_parents.rend();
       ++it) {
    sync_folder(it->first.get(), it->second);
  }
  partition->changed_parents.clear();
  return std::move(*partition);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Archive

Archive::Archive(std::filesystem::path root, unsigned umask) {
  if ((umask & 0700) != 0 || umask > 0777) {
    throw ArchiveError("archive umask " + std::to_string(umask) +
                       " must leave the owner read, write and search");
  }
  file_mode_ = 0666 & ~umask;
  folder_mode_ = 0777 & ~umask;
  root_ = fs::absolute(root).lexically_normal();
  if (!root_.has_filename() && root_.has_parent_path() && root_ != root_.root_path()) {
    root_ = root_.parent_path();  // "/a/b/" -> "/a/b"
  }

  // The root and its parents; the root itself may be a symlink the operator chose.
  fs::path prefix;
  for (const fs::path& part : root_) {
    prefix /= part;
    if (prefix == prefix.root_path()) {
      continue;
    }
    if (::mkdir(prefix.c_str(), folder_mode_) == 0) {
      if (::chmod(prefix.c_str(), folder_mode_) != 0) {  // exact, whatever the process umask
        fail("cannot set the mode of", prefix, errno);
      }
    } else if (errno != EEXIST) {
      fail("cannot create archive folder", prefix, errno);
    }
  }
  Fd root_fd{::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (!root_fd) {
    fail("cannot open archive root", root_, errno);
  }
  if (::faccessat(root_fd.get(), ".", W_OK | X_OK, AT_EACCESS) != 0) {
    fail("archive root is not writable:", root_, errno);
  }

  const fs::path staging = staging_dir();
  bool staging_created = true;
  if (::mkdirat(root_fd.get(), std::string{kStagingName}.c_str(), folder_mode_) != 0) {
    if (errno != EEXIST) {
      fail("cannot create staging folder", staging, errno);
    }
    staging_created = false;
  }
  Fd staging_fd =
      open_folder_at(root_fd.get(), std::string{kStagingName}, staging, /*missing_ok=*/false);
  if (staging_created && ::fchmod(staging_fd.get(), folder_mode_) != 0) {
    fail("cannot set the mode of", staging, errno);
  }
  if (::faccessat(staging_fd.get(), ".", W_OK | X_OK, AT_EACCESS) != 0) {
    fail("staging folder is not writable:", staging, errno);
  }
  struct stat root_stat {};
  struct stat staging_stat {};
  if (::fstat(root_fd.get(), &root_stat) != 0) {
    fail("cannot stat", root_, errno);
  }
  if (::fstat(staging_fd.get(), &staging_stat) != 0) {
    fail("cannot stat", staging, errno);
  }
  // rename() is atomic only within one file system.
  if (root_stat.st_dev != staging_stat.st_dev) {
    throw ArchiveError("staging folder " + staging.string() +
                       " is on another file system than the archive root");
  }

  // Leftovers are partial downloads of a crashed run; but while another Archive (the
  // daemon, if this is a CLI command) holds the lock, they are its live downloads.
  if (::flock(staging_fd.get(), LOCK_EX | LOCK_NB) == 0) {
    exclusive_ = true;
    std::size_t removed = 0;
    std::error_code error;
    for (fs::directory_iterator it{staging, error}, end; !error && it != end; it.increment(error)) {
      const fs::path leftover = it->path();
      fs::remove_all(leftover, error);
      if (error) {
        fail("cannot remove leftover", leftover, error.value());
      }
      ++removed;
    }
    if (error) {
      fail("cannot list staging folder", staging, error.value());
    }
    if (removed > 0) {
      spdlog::info("archive: removed {} leftover entr{} from {}", removed,
                   removed == 1 ? "y" : "ies", staging.string());
    }
  } else if (errno == EWOULDBLOCK) {
    spdlog::info("archive: {} is held by another running Archive; leaving its files alone",
                 staging.string());
  } else {
    fail("cannot lock staging folder", staging, errno);
  }

  root_fd_ = root_fd.release();
  staging_fd_ = staging_fd.release();
}

Archive::~Archive() {
  if (staging_fd_ >= 0) {
    ::close(staging_fd_);  // also releases the flock
  }
  if (root_fd_ >= 0) {
    ::close(root_fd_);
  }
}

Archive::Archive(Archive&& other) noexcept
    : root_(std::move(other.root_)),
      root_fd_(std::exchange(other.root_fd_, -1)),
      staging_fd_(std::exchange(other.staging_fd_, -1)),
      exclusive_(std::exchange(other.exclusive_, false)),
      file_mode_(other.file_mode_),
      folder_mode_(other.folder_mode_) {}

Archive& Archive::operator=(Archive&& other) noexcept {
  if (this != &other) {
    if (staging_fd_ >= 0) {
      ::close(staging_fd_);
    }
    if (root_fd_ >= 0) {
      ::close(root_fd_);
    }
    root_ = std::move(other.root_);
    root_fd_ = std::exchange(other.root_fd_, -1);
    staging_fd_ = std::exchange(other.staging_fd_, -1);
    exclusive_ = std::exchange(other.exclusive_, false);
    file_mode_ = other.file_mode_;
    folder_mode_ = other.folder_mode_;
  }
  return *this;
}

std::filesystem::path Archive::staging_dir() const {
  return root_ / kStagingName;
}

std::filesystem::path Archive::partition_dir(std::string_view job, std::string_view data_type,
                                             const Slot& slot) const {
  fs::path path = root_;
  for (const std::string& component : partition_components(job, data_type, slot)) {
    path /= component;
  }
  return path;
}

std::filesystem::path Archive::publish(const std::filesystem::path& staged, std::string_view job,
                                       std::string_view data_type, const Slot& slot,
                                       std::string_view name) const {
  if (!is_safe_file_name(name)) {
    throw ArchiveError("refusing to publish under an unsafe file name in " +
                       partition_dir(job, data_type, slot).string());
  }
  // Opened without following a symlink, so the mode is set on the file itself.
  const Fd staged_fd{::open(staged.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
  if (!staged_fd) {
    if (errno == ELOOP) {
      throw ArchiveError("refusing to publish " + staged.string() + ": not a regular file");
    }
    fail("cannot open staged file", staged, errno);
  }
  struct stat staged_stat {};
  if (::fstat(staged_fd.get(), &staged_stat) != 0) {
    fail("cannot stat staged file", staged, errno);
  }
  if (!S_ISREG(staged_stat.st_mode)) {
    throw ArchiveError("refusing to publish " + staged.string() + ": not a regular file");
  }
  if ((staged_stat.st_mode & 07777) != file_mode_ && ::fchmod(staged_fd.get(), file_mode_) != 0) {
    fail("cannot set the mode of", staged, errno);
  }

  const Partition partition =
      create_partition(root_fd_, root_, partition_components(job, data_type, slot), folder_mode_);
  const std::string target{name};
  const fs::path final_path = partition.path / target;
  // rename() replaces a planted symlink at the target itself; it never writes through one.
  if (::renameat(AT_FDCWD, staged.c_str(), partition.folder.get(), target.c_str()) != 0) {
    fail("cannot move " + staged.string() + " to", final_path, errno);
  }
  sync_folder(partition.folder.get(), partition.path);
  return final_path;
}

namespace {

// Writes `content` into a new file in the staging folder, fsyncs it and renames it to
// `name` in `folder`: readers see the old file or the whole new one, never a part.
void write_atomically(int staging_fd, const fs::path& staging, int folder,
                      const fs::path& folder_path, const std::string& name,
                      std::string_view content, mode_t file_mode) {
  static std::atomic<unsigned> counter = 0;
  std::string temp;
  Fd file;
  for (;;) {
    temp = name + "." + std::to_string(::getpid()) + "." + std::to_string(++counter) + ".tmp";
    file = Fd{::openat(staging_fd, temp.c_str(),
                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, file_mode)};
    if (file) {
      break;
    }
    if (errno != EEXIST) {
      fail("cannot create", staging / temp, errno);
    }
  }
  try {
    if (::fchmod(file.get(), file_mode) != 0) {  // exact, whatever the process umask
      fail("cannot set the mode of", staging / temp, errno);
    }
    write_all(file.get(), content, staging / temp);
    if (::fsync(file.get()) != 0) {
      fail("cannot fsync", staging / temp, errno);
    }
    if (::close(file.release()) != 0) {
      fail("cannot close", staging / temp, errno);
    }
    if (::renameat(staging_fd, temp.c_str(), folder, name.c_str()) != 0) {
      fail("cannot rename " + (staging / temp).string() + " to", folder_path / name, errno);
    }
  } catch (...) {
    ::unlinkat(staging_fd, temp.c_str(), 0);
    throw;
  }
}

// Removes the files of `folder` that `manifest` does not list (parts of an earlier
// answer whose names changed): Hive-style readers take every file in a partition, so
// a stale part would be read twice as data.
void remove_unlisted(int folder, const fs::path& folder_path, const Manifest& manifest) {
  std::set<std::string, std::less<>> keep{std::string{kManifestName}, std::string{kSuccessName}};
  for (const ManifestFile& file : manifest.files) {
    keep.insert(file.name);
  }
  Fd listing{::openat(folder, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (!listing) {
    fail("cannot open", folder_path, errno);
  }
  DIR* dir = ::fdopendir(listing.get());
  if (dir == nullptr) {
    fail("cannot list", folder_path, errno);
  }
  listing.release();  // owned by dir now
  std::vector<std::string> stale;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != ".." && !keep.contains(name)) {
      stale.emplace_back(name);
    }
  }
  ::closedir(dir);
  for (const std::string& name : stale) {
    // Only files: a folder here is not ours to judge.
    if (::unlinkat(folder, name.c_str(), 0) != 0) {
      if (errno == EISDIR || errno == ENOENT) {
        continue;
      }
      fail("cannot remove stale file", folder_path / name, errno);
    }
    spdlog::info("archive: removed {}, a part no longer in the partition's manifest",
                 (folder_path / name).string());
  }
  if (!stale.empty()) {
    sync_folder(folder, folder_path);
  }
}

}  // namespace

void Archive::complete_partition(const Manifest& manifest, const Slot& slot) const {
  const Partition partition = create_partition(
      root_fd_, root_, partition_components(manifest.job, manifest.data_type, slot), folder_mode_);
  remove_unlisted(partition.folder.get(), partition.path, manifest);
  const fs::path staging = staging_dir();
  write_atomically(staging_fd_, staging, partition.folder.get(), partition.path,
                   std::string{kManifestName}, to_json(manifest), file_mode_);
  // The manifest must be durable before _SUCCESS can be: readers trust the marker.
  sync_folder(partition.folder.get(), partition.path);
  write_atomically(staging_fd_, staging, partition.folder.get(), partition.path,
                   std::string{kSuccessName}, "", file_mode_);
  sync_folder(partition.folder.get(), partition.path);
}

bool Archive::is_complete(std::string_view job, std::string_view data_type,
                          const Slot& slot) const {
  const auto partition =
      walk(root_fd_, root_, partition_components(job, data_type, slot), /*create=*/false);
  if (!partition) {
    return false;
  }
  struct stat marker {};
  if (::fstatat(partition->folder.get(), std::string{kSuccessName}.c_str(), &marker,
                AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) {
      return false;
    }
    fail("cannot stat", partition->path / kSuccessName, errno);
  }
  return S_ISREG(marker.st_mode);
}

std::optional<Manifest> Archive::read_manifest(std::string_view job, std::string_view data_type,
                                               const Slot& slot) const {
  const auto partition =
      walk(root_fd_, root_, partition_components(job, data_type, slot), /*create=*/false);
  if (!partition) {
    return std::nullopt;
  }
  const fs::path path = partition->path / kManifestName;
  Fd file{::openat(partition->folder.get(), std::string{kManifestName}.c_str(),
                   O_RDONLY | O_NOFOLLOW | O_CLOEXEC)};
  if (!file) {
    if (errno == ENOENT || errno == ELOOP) {
      return std::nullopt;  // missing, or a symlink we did not write
    }
    fail("cannot open", path, errno);
  }
  std::string content;
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t got = ::read(file.get(), buffer, sizeof buffer);
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      fail("cannot read", path, errno);
    }
    if (got == 0) {
      break;
    }
    content.append(buffer, static_cast<std::size_t>(got));
    if (content.size() > kMaxManifestBytes) {
      return std::nullopt;
    }
  }
  return parse_manifest(content);
}

void Archive::reopen_partition(std::string_view job, std::string_view data_type,
                               const Slot& slot) const {
  const auto partition =
      walk(root_fd_, root_, partition_components(job, data_type, slot), /*create=*/false);
  if (!partition) {
    return;
  }
  if (::unlinkat(partition->folder.get(), std::string{kSuccessName}.c_str(), 0) != 0) {
    if (errno == ENOENT) {
      return;
    }
    fail("cannot remove", partition->path / kSuccessName, errno);
  }
  sync_folder(partition->folder.get(), partition->path);
}

}  // namespace gio::archive
