#include "archive/archive.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "archive/checksums.hpp"
#include "archive/fd.hpp"
#include "archive/partition.hpp"

namespace gio::archive {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(std::string_view what, const fs::path& path, int error) {
  throw ArchiveError(what, path, error);
}

// Lower-case hex SHA-256 of the open file's bytes, or "" when it cannot be read.
std::string content_sha256(int fd) {
  Sha256 sha;
  std::vector<char> block(1 << 16);
  for (;;) {
    const ssize_t got = ::read(fd, block.data(), block.size());
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got < 0) {
      return {};
    }
    if (got == 0) {
      return sha.hex();
    }
    sha.update(block.data(), static_cast<std::size_t>(got));
  }
}

}  // namespace

ArchiveError::ArchiveError(std::string_view what, const std::filesystem::path& path, int error)
    : std::runtime_error(std::string{what} + " " + path.string() + ": " + std::strerror(error)) {}

// ---------------------------------------------------------------------------------------
// Archive

namespace {

// Creates the root and its parents as needed; the root itself may be a symlink the
// operator chose.
Fd open_root(const fs::path& root, unsigned folder_mode) {
  fs::path prefix;
  for (const fs::path& part : root) {
    prefix /= part;
    if (prefix == prefix.root_path()) {
      continue;
    }
    if (::mkdir(prefix.c_str(), folder_mode) == 0) {
      if (::chmod(prefix.c_str(), folder_mode) != 0) {  // exact, whatever the process umask
        fail("cannot set the mode of", prefix, errno);
      }
    } else if (errno != EEXIST) {
      fail("cannot create archive folder", prefix, errno);
    }
  }
  Fd root_fd{::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (!root_fd) {
    fail("cannot open archive root", root, errno);
  }
  if (::faccessat(root_fd.get(), ".", W_OK | X_OK, AT_EACCESS) != 0) {
    fail("archive root is not writable:", root, errno);
  }
  return root_fd;
}

// Creates <root>/.staging as needed; refuses a symlink, or a folder on another file system.
Fd open_staging(int root_fd, const fs::path& root, const fs::path& staging, unsigned folder_mode) {
  bool staging_created = true;
  if (::mkdirat(root_fd, std::string{kStagingName}.c_str(), folder_mode) != 0) {
    if (errno != EEXIST) {
      fail("cannot create staging folder", staging, errno);
    }
    staging_created = false;
  }
  Fd staging_fd = open_folder_at(root_fd, std::string{kStagingName}, staging, /*missing_ok=*/false);
  if (staging_created && ::fchmod(staging_fd.get(), folder_mode) != 0) {
    fail("cannot set the mode of", staging, errno);
  }
  if (::faccessat(staging_fd.get(), ".", W_OK | X_OK, AT_EACCESS) != 0) {
    fail("staging folder is not writable:", staging, errno);
  }
  struct stat root_stat {};
  struct stat staging_stat {};
  if (::fstat(root_fd, &root_stat) != 0) {
    fail("cannot stat", root, errno);
  }
  if (::fstat(staging_fd.get(), &staging_stat) != 0) {
    fail("cannot stat", staging, errno);
  }
  // rename() is atomic only within one file system.
  if (root_stat.st_dev != staging_stat.st_dev) {
    throw ArchiveError("staging folder " + staging.string() +
                       " is on another file system than the archive root");
  }
  return staging_fd;
}

// Takes the staging folder's lock and removes what is left in it; false when another
// Archive holds the lock. Leftovers are partial downloads of a crashed run; but while
// another Archive (the daemon, if this is a CLI command) holds the lock, they are its
// live downloads.
bool lock_staging(int staging_fd, const fs::path& staging) {
  if (::flock(staging_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      fail("cannot lock staging folder", staging, errno);
    }
    spdlog::info("archive: {} is held by another running Archive; leaving its files alone",
                 staging.string());
    return false;
  }
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
    spdlog::info("archive: removed {} leftover entr{} from {}", removed, removed == 1 ? "y" : "ies",
                 staging.string());
  }
  return true;
}

}  // namespace

// holds() runs on the download thread pool: the memo is shared, hence the lock.
struct Archive::HashMemo {
  // A file's identity and what changes with its content (a write moves mtime and ctime;
  // setting mtime back moves ctime).
  using Key = std::tuple<dev_t, ino_t, off_t, std::int64_t, std::int64_t>;
  static constexpr std::size_t kMaxEntries = 100'000;  // then forgotten, and read again

  static Key key_of(const struct stat& info) {
    const auto ns = [](const timespec& t) {
      return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
    };
    return {info.st_dev, info.st_ino, info.st_size, ns(info.st_mtim), ns(info.st_ctim)};
  }

  std::mutex mutex;
  std::map<Key, std::string> sha256;
};

Archive::Archive(std::filesystem::path root, unsigned umask) {
  hashed_ = std::make_unique<HashMemo>();
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
  Fd root_fd = open_root(root_, folder_mode_);
  Fd staging_fd = open_staging(root_fd.get(), root_, staging_dir(), folder_mode_);
  exclusive_ = lock_staging(staging_fd.get(), staging_dir());
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
      folder_mode_(other.folder_mode_),
      hashed_(std::move(other.hashed_)) {}

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
    hashed_ = std::move(other.hashed_);
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

StagedFile Archive::stage(std::string_view hint) const {
  // A fresh descriptor of .staging (not a dup: that would share, and prolong, the flock).
  Fd folder{::openat(staging_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (!folder) {
    fail("cannot open staging folder", staging_dir(), errno);
  }
  return StagedFile::create_in(std::move(folder), staging_dir(), hint, file_mode_);
}

StagedFile Archive::stage_bytes(std::string_view content) const {
  StagedFile file = stage("bytes");
  file.write(content);
  file.sync();
  return file;
}

std::filesystem::path Archive::publish(StagedFile file, std::string_view job,
                                       std::string_view data_type, const Slot& slot,
                                       std::string_view name) const {
  if (!is_safe_file_name(name)) {
    throw ArchiveError("refusing to publish under an unsafe file name in " +
                       partition_dir(job, data_type, slot).string());
  }
  // Durable before the name appears in the partition: readers may take it at once.
  file.sync();
  file.set_mode(file_mode_);
  const Partition partition =
      create_partition(root_fd_, root_, partition_components(job, data_type, slot), folder_mode_);
  const std::string target{name};
  file.rename_into(partition.folder.get(), partition.path, target);
  sync_folder(partition.folder.get(), partition.path);
  return partition.path / target;
}

bool Archive::holds(std::string_view job, std::string_view data_type, const Slot& slot,
                    const ManifestFile& file) const {
  if (!is_safe_file_name(file.name)) {
    return false;  // we never published it
  }
  std::optional<Partition> partition;
  try {
    // A planted symlink must not pass for an archived file, nor lead to one elsewhere.
    partition = walk(root_fd_, root_, partition_components(job, data_type, slot), false);
  } catch (const ArchiveError&) {
    return false;
  }
  if (!partition) {
    return false;
  }
  const Fd opened{::openat(partition->folder.get(), file.name.c_str(),
                           O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
  struct stat info {};
  if (!opened || ::fstat(opened.get(), &info) != 0 || !S_ISREG(info.st_mode) ||
      static_cast<std::uint64_t>(info.st_size) != file.bytes) {
    return false;
  }
  // The size alone passes a file of the same length with other bytes: what a crash
  // between recording a part and publishing it leaves when an earlier answer put
  // another object under the same name.
  const HashMemo::Key key = HashMemo::key_of(info);
  {
    const std::lock_guard lock{hashed_->mutex};
    if (const auto known = hashed_->sha256.find(key); known != hashed_->sha256.end()) {
      return known->second == file.sha256;
    }
  }
  std::string sha256 = content_sha256(opened.get());
  const bool same = sha256 == file.sha256;
  const std::lock_guard lock{hashed_->mutex};
  if (hashed_->sha256.size() >= HashMemo::kMaxEntries) {
    hashed_->sha256.clear();
  }
  hashed_->sha256.insert_or_assign(key, std::move(sha256));
  return same;
}

namespace {

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
  // Each written whole in .staging and renamed: readers see the old file or the new one.
  const auto replace = [&](std::string_view name, std::string_view content) {
    StagedFile file = stage(name);
    file.write(content);
    file.sync();
    file.rename_into(partition.folder.get(), partition.path, std::string{name});
    sync_folder(partition.folder.get(), partition.path);
  };
  // The manifest must be durable before _SUCCESS can be: readers trust the marker.
  replace(kManifestName, to_json(manifest));
  replace(kSuccessName, "");
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
  const ManifestText read = read_manifest_text(partition->folder.get());
  if (read.too_large || read.error == ENOENT || read.error == ELOOP) {
    return std::nullopt;  // not a manifest we wrote: missing, a symlink, or far too large
  }
  if (!read.failed.empty()) {
    fail(read.failed, partition->path / kManifestName, read.error);
  }
  return parse_manifest(read.text);
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
