#include "archive/scrub.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <utility>

#include "archive/archive.hpp"
#include "archive/checksums.hpp"
#include "archive/fd.hpp"
#include "archive/partition.hpp"

namespace gio::archive {
namespace {

namespace fs = std::filesystem;

// Read-back block: large enough that a 1 GiB part is a few thousand reads, small
// enough to keep memory flat.
constexpr std::size_t kBlockBytes = 1 << 20;

Fd open_root(const fs::path& root) {
  // The root itself may be a symlink the operator chose; nothing below it may be.
  Fd fd{::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (!fd) {
    throw ArchiveError("cannot open archive root", root, errno);
  }
  return fd;
}

struct Opened {
  Fd folder;
  std::string problem;  // why it could not be opened; "" when it was
};

Opened open_partition(int root_fd, const fs::path& root, const std::vector<std::string>& parts) {
  Fd current{::fcntl(root_fd, F_DUPFD_CLOEXEC, 0)};  // not dup(): close-on-exec
  fs::path path = root;
  for (const std::string& part : parts) {
    path /= part;
    Fd next{::openat(current.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
    if (!next) {
      const int error = errno;
      if (error == ENOENT) {
        return {Fd{}, "partition folder missing (" + path.string() + ")"};
      }
      if (error == ELOOP || error == ENOTDIR) {
        return {Fd{}, path.string() + " is a symlink or not a folder"};
      }
      return {Fd{}, "cannot open " + path.string() + ": " + std::strerror(error)};
    }
    current = std::move(next);
  }
  return {std::move(current), ""};
}

// What an entry of the partition folder is, without following it.
std::optional<struct stat> lstat_at(int folder, const std::string& name, int& error) {
  struct stat info {};
  if (::fstatat(folder, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
    error = errno;
    return std::nullopt;
  }
  return info;
}

std::string describe(const struct stat& info) {
  if (S_ISLNK(info.st_mode)) {
    return "a symlink, not a regular file";
  }
  if (S_ISDIR(info.st_mode)) {
    return "a folder, not a regular file";
  }
  return "not a regular file";
}

std::string short_hash(const std::string& hash) {
  return hash.size() > 16 ? hash.substr(0, 16) + "..." : hash;
}

// Checks one listed file; nullopt when it is intact.
std::optional<std::string> check_file(int folder, const ManifestFile& listed, VerifyMode mode,
                                      std::vector<char>& buffer, std::uint64_t& read_bytes) {
  int error = 0;
  const auto info = lstat_at(folder, listed.name, error);
  if (!info) {
    return error == ENOENT ? std::string{"missing"}
                           : std::string{"cannot stat: "} + std::strerror(error);
  }
  if (!S_ISREG(info->st_mode)) {
    return describe(*info);
  }
  const auto size = static_cast<std::uint64_t>(info->st_size);
  if (size != listed.bytes) {
    return "size " + std::to_string(size) + " bytes, manifest says " + std::to_string(listed.bytes);
  }
  // O_NOFOLLOW: the entry may have been swapped for a symlink since the lstat.
  Fd file{::openat(folder, listed.name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
  if (!file) {
    return std::string{"cannot open: "} + std::strerror(errno);
  }
  Sha256 hash;
  std::optional<GzipChecker> gzip;
  if (mode == VerifyMode::gzip) {
    gzip.emplace();
  }
  std::uint64_t offset = 0;
  std::optional<std::string> gzip_problem;
  for (;;) {
    const ssize_t got = ::read(file.get(), buffer.data(), buffer.size());
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      return "read error near byte " + std::to_string(offset) + ": " + std::strerror(errno);
    }
    if (got == 0) {
      break;
    }
    const auto n = static_cast<std::size_t>(got);
    hash.update(buffer.data(), n);
    if (gzip && !gzip_problem) {
      gzip_problem = gzip->feed(buffer.data(), n, offset);
    }
    offset += n;
  }
  read_bytes += offset;
  if (offset != listed.bytes) {
    return "read " + std::to_string(offset) + " bytes, manifest says " +
           std::to_string(listed.bytes);
  }
  const std::string found = hash.hex();
  if (found != listed.sha256) {
    return "sha256 " + short_hash(found) + ", manifest says " + short_hash(listed.sha256);
  }
  if (gzip_problem) {
    return *gzip_problem;
  }
  if (gzip && !gzip->complete()) {
    return std::string{"gzip stream ends early (truncated)"};
  }
  return std::nullopt;
}

std::vector<std::string> list_folder(int folder) {
  std::vector<std::string> names;
  const int fd = ::openat(folder, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return names;
  }
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return names;
  }
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") {
      names.emplace_back(name);
    }
  }
  ::closedir(dir);
  return names;
}

}  // namespace

PartitionScrub scrub_partition(const std::filesystem::path& root, std::string_view job,
                               std::string_view data_type, const Slot& slot, VerifyMode mode) {
  PartitionScrub result;
  result.data_type = std::string{data_type};
  const std::vector<std::string> parts = partition_components(job, data_type, slot);
  result.path = root;
  for (const std::string& part : parts) {
    result.path /= part;
  }
  const Fd root_fd = open_root(root);
  Opened partition = open_partition(root_fd.get(), root, parts);
  if (!partition.folder) {
    result.damage.push_back({"", partition.problem});
    return result;
  }
  const int folder = partition.folder.get();

  // _SUCCESS: a regular file (its content is not ours to judge; we write it empty).
  int error = 0;
  const std::string success{kSuccessName};
  if (const auto marker = lstat_at(folder, success, error); !marker) {
    result.damage.push_back(
        {"", error == ENOENT ? "_SUCCESS missing"
                             : std::string{"cannot stat _SUCCESS: "} + std::strerror(error)});
  } else if (!S_ISREG(marker->st_mode)) {
    result.damage.push_back({"", "_SUCCESS is " + describe(*marker)});
  }

  // The manifest: without it no file of the partition can be judged.
  const std::string manifest_name{kManifestName};
  const auto manifest_info = lstat_at(folder, manifest_name, error);
  if (!manifest_info) {
    result.damage.push_back(
        {"", error == ENOENT ? "_manifest.json missing"
                             : std::string{"cannot stat _manifest.json: "} + std::strerror(error)});
    return result;
  }
  if (!S_ISREG(manifest_info->st_mode)) {
    result.damage.push_back({"", "_manifest.json is " + describe(*manifest_info)});
    return result;
  }
  const ManifestText read = read_manifest_text(folder);
  if (!read.failed.empty() || read.too_large) {
    result.damage.push_back(
        {"", "_manifest.json: " +
                 (read.too_large ? std::string{"larger than any manifest we write"}
                                 : std::string{read.failed} + ": " + std::strerror(read.error))});
    return result;
  }
  const auto manifest = parse_manifest(read.text);
  if (!manifest) {
    result.damage.push_back({"", "_manifest.json does not parse as a manifest"});
    return result;
  }
  if (manifest->job != job || manifest->data_type != data_type || manifest->slot != slot.name()) {
    result.damage.push_back({"", "_manifest.json describes " + manifest->job + "/" +
                                     manifest->data_type + "/" + manifest->slot +
                                     ", not this partition"});
    return result;
  }

  std::vector<char> buffer(kBlockBytes);
  std::set<std::string, std::less<>> listed{success, manifest_name};
  for (const ManifestFile& file : manifest->files) {
    listed.insert(file.name);
    ++result.files;
    if (auto problem = check_file(folder, file, mode, buffer, result.bytes)) {
      result.damage.push_back({file.name, *problem});
    }
  }
  for (const std::string& name : list_folder(folder)) {
    if (listed.contains(name)) {
      continue;
    }
    const auto info = lstat_at(folder, name, error);
    if (info && S_ISDIR(info->st_mode)) {
      continue;  // folders are not ours to judge (the archive never writes one here)
    }
    result.damage.push_back({name, "not listed in _manifest.json (readers would take it as data)"});
  }
  return result;
}

std::vector<std::string> partitions_on_disk(const std::filesystem::path& root, std::string_view job,
                                            const Slot& slot) {
  std::vector<std::string> found;
  const Fd root_fd = open_root(root);
  const std::string job_name{job};
  Fd job_folder{
      ::openat(root_fd.get(), job_name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
  if (!job_folder) {
    return found;
  }
  for (const std::string& type : list_folder(job_folder.get())) {
    if (type.starts_with('.')) {
      continue;
    }
    std::string rel = type;
    for (const std::string& part : partition_components(job, type, slot)) {
      if (part != job_name && part != type) {
        rel += "/" + part;
      }
    }
    struct stat info {};
    // Intermediate symlinks are followed here on purpose: whatever sits at the
    // partition's path is found, and scrub_partition then refuses the symlink.
    if (::fstatat(job_folder.get(), rel.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0) {
      found.push_back(type);
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

void remove_success_marker(const std::filesystem::path& root, std::string_view job,
                           std::string_view data_type, const Slot& slot) {
  const Fd root_fd = open_root(root);
  const std::vector<std::string> parts = partition_components(job, data_type, slot);
  Opened partition = open_partition(root_fd.get(), root, parts);
  if (!partition.folder) {
    return;
  }
  fs::path path = root;
  for (const std::string& part : parts) {
    path /= part;
  }
  if (::unlinkat(partition.folder.get(), std::string{kSuccessName}.c_str(), 0) != 0) {
    if (errno == ENOENT) {
      return;
    }
    throw ArchiveError("cannot remove", path / kSuccessName, errno);
  }
  if (::fsync(partition.folder.get()) != 0) {
    throw ArchiveError("cannot fsync folder", path, errno);
  }
}

}  // namespace gio::archive
