#pragma once

// One daemon per state database, and a database file that stays the one opened.
//
// The daemon (and adopt-archive) hold an exclusive flock on the database file itself, as
// the archive's staging folder is locked: a second daemon with the same state_db exits at
// once, whatever its archive_dir. flock is independent of SQLite's POSIX locks on Linux,
// and no extra file appears beside the database. The lock's descriptor must stay open
// until the StateStore is closed: closing any descriptor of the file would drop SQLite's
// own locks (POSIX semantics), so the owner declares the lock before the store.
//
// The same descriptor tells whether the path still names the file opened: a database
// deleted or replaced under the daemon would otherwise take its writes into a file no
// command can see.

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

namespace gio::state {

// Another process holds the database's lock; the message names the path and its pid.
class DatabaseInUse : public std::runtime_error {
 public:
  explicit DatabaseInUse(const std::string& message) : std::runtime_error(message) {}
};

class DatabaseLock {
 public:
  // Opens `path` (creating an empty file, mode 0600, when missing: SQLite makes it a
  // database) and takes an exclusive flock without waiting. Throws DatabaseInUse when
  // another process holds it, std::runtime_error naming the path for other failures.
  explicit DatabaseLock(const std::filesystem::path& path);
  ~DatabaseLock();
  DatabaseLock(DatabaseLock&& other) noexcept;
  DatabaseLock& operator=(DatabaseLock&&) = delete;
  DatabaseLock(const DatabaseLock&) = delete;
  DatabaseLock& operator=(const DatabaseLock&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // "" while the path names the file locked (or a stat fails for another reason than a
  // missing file: no proof); else why not: "was deleted", "was replaced by another
  // file". A cheap stat and fstat.
  std::string gone() const;

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

// The pid of a process holding an flock on the file at `path` (from /proc/locks), when
// one can be found.
std::optional<pid_t> flock_holder(const std::filesystem::path& path);

}  // namespace gio::state
