#include "archive/staged_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <utility>

#include "archive/archive.hpp"
#include "archive/partition.hpp"

namespace gio::archive {
namespace {

namespace fs = std::filesystem;

// Long enough to tell what a staged file is for, short enough for NAME_MAX with the suffix.
constexpr std::size_t kMaxHintBytes = 64;

// "<hint>.<pid>.<n>.tmp": the pid keeps a CLI command's files apart from the daemon's in a
// shared staging folder, the counter those of one process.
std::string unique_name(std::string_view hint) {
  static std::atomic<unsigned> counter = 0;
  std::string name;
  for (const char c : hint.substr(0, kMaxHintBytes)) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '_' || c == '-';
    name.push_back(plain ? c : '_');
  }
  if (name.empty() || name.front() == '.') {
    name.insert(0, "staged");  // never "." or ".."
  }
  return name + "." + std::to_string(::getpid()) + "." + std::to_string(++counter) + ".tmp";
}

}  // namespace

StagedFile::StagedFile(Fd folder, fs::path path, Fd file)
    : folder_(std::move(folder)),
      path_(std::move(path)),
      name_(path_.filename().string()),
      file_(std::move(file)) {}

StagedFile StagedFile::create(const fs::path& staging_dir, std::string_view hint, unsigned mode) {
  Fd folder{::open(staging_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
  if (!folder) {
    throw ArchiveError("cannot open staging folder", staging_dir, errno);
  }
  return create_in(std::move(folder), staging_dir, hint, mode);
}

StagedFile StagedFile::create_in(Fd folder, const fs::path& folder_path, std::string_view hint,
                                 unsigned mode) {
  for (;;) {
    const std::string name = unique_name(hint);
    // O_EXCL: never a file (or a planted symlink) that is already there.
    Fd file{::openat(folder.get(), name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     mode)};
    if (!file) {
      if (errno == EEXIST) {
        continue;  // a leftover of an earlier process with the same pid
      }
      throw ArchiveError("cannot create", folder_path / name, errno);
    }
    StagedFile staged{std::move(folder), folder_path / name, std::move(file)};
    if (::fchmod(staged.fd(), mode) != 0) {  // exact, whatever the process umask
      throw ArchiveError("cannot set the mode of", staged.path(), errno);
    }
    return staged;
  }
}

StagedFile::StagedFile(StagedFile&& other) noexcept
    : folder_(std::move(other.folder_)),
      path_(std::exchange(other.path_, {})),
      name_(std::exchange(other.name_, {})),
      file_(std::move(other.file_)) {}

StagedFile& StagedFile::operator=(StagedFile&& other) noexcept {
  if (this != &other) {
    StagedFile dropped{std::move(*this)};  // removes what this held
    folder_ = std::move(other.folder_);
    path_ = std::exchange(other.path_, {});
    name_ = std::exchange(other.name_, {});
    file_ = std::move(other.file_);
  }
  return *this;
}

StagedFile::~StagedFile() {
  file_.reset();
  if (!name_.empty() && folder_) {
    ::unlinkat(folder_.get(), name_.c_str(), 0);  // best effort: a leftover goes at next start
  }
}

void StagedFile::write(std::string_view bytes) {
  if (!file_) {
    throw ArchiveError("cannot write " + path_.string() + ": the file is already synced");
  }
  while (!bytes.empty()) {
    const ssize_t written = ::write(file_.get(), bytes.data(), bytes.size());
    if (written < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw ArchiveError("cannot write", path_, errno);
    }
    bytes.remove_prefix(static_cast<std::size_t>(written));
  }
}

void StagedFile::sync() {
  if (!file_) {
    return;
  }
  if (::fsync(file_.get()) != 0) {
    throw ArchiveError("cannot fsync", path_, errno);
  }
  if (::close(file_.release()) != 0) {
    throw ArchiveError("cannot close", path_, errno);
  }
}

fs::path StagedFile::publish_to(const fs::path& folder, std::string_view name) {
  if (!is_safe_file_name(name)) {
    throw ArchiveError("refusing to publish under an unsafe file name in " + folder.string());
  }
  sync();
  const Fd target{::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (!target) {
    throw ArchiveError("cannot open folder", folder, errno);
  }
  const std::string target_name{name};
  rename_into(target.get(), folder, target_name);
  sync_folder(target.get(), folder);
  return folder / target_name;
}

void StagedFile::expect_staged() const {
  if (name_.empty()) {  // moved from, or published already: a caller's mistake
    throw ArchiveError("nothing staged to publish");
  }
}

void StagedFile::set_mode(unsigned mode) const {
  expect_staged();
  // Opened again without following a symlink, so the mode is set on the file itself.
  const Fd staged{
      ::openat(folder_.get(), name_.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
  if (!staged) {
    if (errno == ELOOP) {
      throw ArchiveError("refusing to publish " + path_.string() + ": not a regular file");
    }
    throw ArchiveError("cannot open staged file", path_, errno);
  }
  struct stat info {};
  if (::fstat(staged.get(), &info) != 0) {
    throw ArchiveError("cannot stat staged file", path_, errno);
  }
  if (!S_ISREG(info.st_mode)) {
    throw ArchiveError("refusing to publish " + path_.string() + ": not a regular file");
  }
  if ((info.st_mode & 07777) != mode && ::fchmod(staged.get(), mode) != 0) {
    throw ArchiveError("cannot set the mode of", path_, errno);
  }
}

void StagedFile::rename_into(int target, const fs::path& target_path, const std::string& name) {
  expect_staged();
  // rename() replaces a planted symlink at the target itself; it never writes through one.
  if (::renameat(folder_.get(), name_.c_str(), target, name.c_str()) != 0) {
    throw ArchiveError("cannot move " + path_.string() + " to", target_path / name, errno);
  }
  name_.clear();  // published: no longer ours to remove
}

}  // namespace gio::archive
