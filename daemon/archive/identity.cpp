#include "archive/identity.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "archive/archive.hpp"
#include "archive/fd.hpp"

namespace gio::archive {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kIdBytes = 16;
constexpr std::size_t kMaxFileBytes = 4096;
constexpr std::string_view kIdKey = "id=";

bool is_id(std::string_view text) {
  return text.size() == 2 * kIdBytes &&
         text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::string random_id() {
  std::array<unsigned char, kIdBytes> bytes{};
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw ArchiveError("cannot make an archive id", "getrandom", errno);
    }
    got += static_cast<std::size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (const unsigned char byte : bytes) {
    id += kHex[byte >> 4];
    id += kHex[byte & 0xf];
  }
  return id;
}

void write_all(int fd, std::string_view text, const fs::path& path) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw ArchiveError("cannot write", path, errno);
    }
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

std::optional<std::string> read_identity(const fs::path& root) {
  const fs::path path = root / kIdentityName;
  const Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)};
  if (!fd) {
    if (errno == ENOENT) {
      return std::nullopt;
    }
    throw ArchiveError("cannot read the archive's identity file", path, errno);
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) {
    throw ArchiveError("cannot stat", path, errno);
  }
  if (!S_ISREG(info.st_mode)) {
    throw ArchiveError("the archive's identity file " + path.string() + " is not a regular file");
  }
  std::string text(kMaxFileBytes, '\0');
  std::size_t size = 0;
  for (;;) {
    const ssize_t n = ::read(fd.get(), text.data() + size, text.size() - size);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      throw ArchiveError("cannot read", path, errno);
    }
    if (n == 0 || (size += static_cast<std::size_t>(n)) == text.size()) {
      break;
    }
  }
  text.resize(size);
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t end = std::min(text.find('\n', at), text.size());
    const std::string_view line = std::string_view{text}.substr(at, end - at);
    if (line.starts_with(kIdKey) && is_id(line.substr(kIdKey.size()))) {
      return std::string{line.substr(kIdKey.size())};
    }
    at = end + 1;
  }
  throw ArchiveError("the archive's identity file " + path.string() +
                     " holds no id (damaged or not gio-exporter's); restore it from a "
                     "backup, or remove it and run `gio-exporter adopt-archive`");
}

std::string create_identity(const fs::path& root, unsigned umask) {
  const fs::path path = root / kIdentityName;
  const Fd root_fd{::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (!root_fd) {
    throw ArchiveError("cannot open archive root", root, errno);
  }
  // Written whole under a temporary name, then linked into place: the name never holds a
  // partial file, and link() never replaces an id another process wrote first.
  const std::string temporary = std::string{kIdentityName} + ".new-" + std::to_string(::getpid());
  ::unlinkat(root_fd.get(), temporary.c_str(), 0);
  const std::string id = random_id();
  {
    const Fd fd{::openat(root_fd.get(), temporary.c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)};
    if (!fd) {
      throw ArchiveError("cannot create", root / temporary, errno);
    }
    write_all(fd.get(),
              "# gio-exporter archive identity. The state database records this id and this\n"
              "# folder's path; see `gio-exporter adopt-archive`. Do not edit.\n" +
                  std::string{kIdKey} + id + "\n",
              root / temporary);
    if (::fchmod(fd.get(), 0666 & ~umask) != 0 || ::fsync(fd.get()) != 0) {
      const int error = errno;
      ::unlinkat(root_fd.get(), temporary.c_str(), 0);
      throw ArchiveError("cannot write", root / temporary, error);
    }
  }
  const int linked = ::linkat(root_fd.get(), temporary.c_str(), root_fd.get(),
                              std::string{kIdentityName}.c_str(), 0);
  const int link_error = errno;
  ::unlinkat(root_fd.get(), temporary.c_str(), 0);
  if (linked != 0) {
    if (link_error == EEXIST) {
      if (auto existing = read_identity(root)) {
        return *existing;
      }
    }
    throw ArchiveError("cannot create", path, link_error);
  }
  if (::fsync(root_fd.get()) != 0) {
    throw ArchiveError("cannot sync", root, errno);
  }
  return id;
}

}  // namespace gio::archive
