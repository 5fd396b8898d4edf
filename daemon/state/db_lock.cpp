#include "state/db_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

namespace gio::state {
namespace {

std::string failure(std::string_view what, const std::filesystem::path& path, int error) {
  return std::string{what} + " " + path.string() + ": " + std::strerror(error);
}

}  // namespace

DatabaseLock::DatabaseLock(const std::filesystem::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    throw std::runtime_error(failure("cannot open the state database", path, errno));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) {
    return;
  }
  const int error = errno;
  ::close(fd_);
  fd_ = -1;
  if (error != EWOULDBLOCK) {
    throw std::runtime_error(failure("cannot lock the state database", path, error));
  }
  const std::optional<pid_t> holder = flock_holder(path);
  throw DatabaseInUse("another gio-exporter is running on the state database " + path.string() +
                      (holder ? " (pid " + std::to_string(*holder) + ")" : std::string{}) +
                      ": one database belongs to one daemon and one archive; stop that one "
                      "first, or give this config its own state_db");
}

DatabaseLock::~DatabaseLock() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

DatabaseLock::DatabaseLock(DatabaseLock&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

std::string DatabaseLock::gone() const {
  struct stat opened {};
  struct stat named {};
  // Only a path that names no file, or another file, is proof: a stat that fails for
  // another reason (EIO, ESTALE, EACCES on a parent) may pass, and must not stop the
  // daemon; if the database is truly unusable, its writes fail and say why.
  if (::fstat(fd_, &opened) != 0) {
    return "";
  }
  if (::stat(path_.c_str(), &named) != 0) {
    return errno == ENOENT || errno == ENOTDIR ? "was deleted" : "";
  }
  if (named.st_dev != opened.st_dev || named.st_ino != opened.st_ino) {
    return "was replaced by another file";
  }
  if (opened.st_nlink == 0) {
    return "was deleted";
  }
  return "";
}

std::optional<pid_t> flock_holder(const std::filesystem::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    return std::nullopt;
  }
  // Lines such as "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF"; blocked waiters
  // ("1: -> FLOCK ...") are not holders.
  std::ostringstream device;
  device << std::hex << std::nouppercase;
  device.width(2);
  device.fill('0');
  device << major(info.st_dev) << ':';
  device.width(2);
  device << minor(info.st_dev) << ':' << std::dec << info.st_ino;
  std::ifstream locks{"/proc/locks"};
  for (std::string line; std::getline(locks, line);) {
    std::istringstream fields{line};
    std::string number, kind, mode, access, pid, file;
    fields >> number >> kind >> mode >> access >> pid >> file;
    if (kind == "FLOCK" && file == device.str()) {
      try {
        return static_cast<pid_t>(std::stol(pid));
      } catch (const std::exception&) {
        return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

}  // namespace gio::state
