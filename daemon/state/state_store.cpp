#include "state/state_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "state/migrations.hpp"
#include "state/sqlite.hpp"
#include "state/statements.hpp"

namespace gio::state {
namespace {

constexpr std::chrono::milliseconds kBusyTimeout{10'000};
// How long a reader waits for a schema being created or migrated (see open_read_only).
constexpr std::chrono::milliseconds kSchemaWait{2'000};

}  // namespace

StoreStatements::StoreStatements(sqlite::Database& db)
    : user_version(db, "PRAGMA user_version"),
      data_version(db, "PRAGMA data_version"),
      get_value(db, "SELECT value FROM kv WHERE key = ?1"),
      set_value(db,
                "INSERT INTO kv (key, value) VALUES (?1, ?2) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value") {}

StateStore::Impl::Impl(const std::filesystem::path& path, sqlite::Access access)
    : db(path, access) {
  // Some lock conflicts while a file is being created or its WAL recovered by another
  // process (the daemon and a CLI command starting together) return SQLITE_BUSY
  // without consulting the busy handler; they clear within moments, so wait them out.
  const auto give_up = std::chrono::steady_clock::now() + kBusyTimeout;
  for (;;) {
    try {
      if (access == sqlite::Access::read_write || access == sqlite::Access::read_write_existing) {
        configure();
        migrate();
      } else {
        db.set_busy_timeout(kBusyTimeout);
        check_schema();
      }
      statements.emplace(db);
      return;
    } catch (const StateError& error) {
      if ((error.code() & 0xff) == SQLITE_BUSY && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds{20});
        continue;
      }
      throw StateError("state database " + path.string() + ": " + error.what(), error.code());
    }
  }
}

void StateStore::Impl::configure() {
  db.set_busy_timeout(kBusyTimeout);
  {
    // The first statement that reads the file: a foreign or damaged file fails here.
    sqlite::Statement statement{db, "PRAGMA journal_mode = WAL"};
    sqlite::Query query{statement};
    const std::string mode = query.step() ? query.get_text(0) : std::string{};
    if (mode != "wal") {
      throw StateError("cannot switch to WAL journal mode (got \"" + mode + "\")", SQLITE_ERROR);
    }
  }
  db.exec("PRAGMA synchronous = FULL");
  // foreign_keys is switched on by migrate(), once the schema is current.
}

void StateStore::Impl::migrate() {
  // Off while migrating: a step that rebuilds a table drops the old one, which with
  // foreign keys on would delete every files row by cascade. It can only change outside
  // a transaction; the keys are checked before the commit instead.
  db.exec("PRAGMA foreign_keys = OFF");
  migrate_schema();
  db.exec("PRAGMA foreign_keys = ON");
}

void StateStore::Impl::migrate_schema() {
  // IMMEDIATE: two processes opening a new file at once must not both create
  // the schema; the second waits and then finds it done.
  sqlite::Transaction transaction{db};
  sqlite::Statement version_statement{db, "PRAGMA user_version"};
  int version = 0;
  {
    sqlite::Query query{version_statement};
    if (query.step()) {
      version = static_cast<int>(query.get_int64(0));
    }
  }
  if (version > kLatestSchemaVersion) {
    throw StateError("schema version " + std::to_string(version) +
                         " is newer than this program knows (" +
                         std::to_string(kLatestSchemaVersion) + ")",
                     SQLITE_ERROR);
  }
  apply_migrations(db, version);
  sqlite::Statement check{db, "PRAGMA foreign_key_check"};
  if (sqlite::Query query{check}; query.step()) {
    throw StateError("the schema migration left files rows without their slot", SQLITE_CORRUPT);
  }
  transaction.commit();
}

void StateStore::Impl::check_schema() {
  // The first statement that reads the file: a foreign or damaged file fails here.
  sqlite::Statement statement{db, "PRAGMA user_version"};
  sqlite::Query query{statement};
  const int version = query.step() ? static_cast<int>(query.get_int64(0)) : 0;
  // SQLITE_SCHEMA: not the schema yet, which a daemon creating or migrating the file
  // may be about to commit (open_read_only waits a moment for it).
  if (version == 0) {
    throw StateError("holds no gio-exporter tables (an empty or foreign database)", SQLITE_SCHEMA);
  }
  if (version < kLatestSchemaVersion) {
    // A reader cannot migrate; the statements below would not fit an older schema.
    throw StateError("schema version " + std::to_string(version) + " is older than this " +
                         "program's (" + std::to_string(kLatestSchemaVersion) +
                         "); the daemon of this version migrates it when it starts",
                     SQLITE_SCHEMA);
  }
  if (version > kLatestSchemaVersion) {
    throw StateError("schema version " + std::to_string(version) +
                         " is newer than this program knows (" +
                         std::to_string(kLatestSchemaVersion) + ")",
                     SQLITE_ERROR);
  }
}

namespace {

// Why `path` cannot be opened for reading, or "" when it can: checked before SQLite
// opens it, so the message is the system's ("No such file or directory") and a
// missing file is never created.
std::string unreadable(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return errno == ENOENT ? "no such file (only the daemon creates it: is state_db right, "
                             "and has the daemon run with it?)"
                           : std::strerror(errno);
  }
  struct stat info {};
  const bool regular = ::fstat(fd, &info) == 0 && S_ISREG(info.st_mode);
  ::close(fd);
  return regular ? "" : "not a regular file";
}

bool is_there(const std::filesystem::path& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

}  // namespace

StateStore::StateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StateStore StateStore::open_existing(const std::filesystem::path& path) {
  if (const std::string why = unreadable(path); !why.empty()) {
    throw StateError("state database " + path.string() + ": " + why, SQLITE_CANTOPEN);
  }
  return StateStore{std::make_unique<Impl>(path, sqlite::Access::read_write_existing)};
}

StateStore StateStore::open_read_only(const std::filesystem::path& path) {
  if (const std::string why = unreadable(path); !why.empty()) {
    throw StateError("state database " + path.string() + ": " + why, SQLITE_CANTOPEN);
  }
  // A daemon that has just created the file, or is migrating it, commits its schema
  // within moments: a reader that finds none waits that long before saying so.
  const auto give_up = std::chrono::steady_clock::now() + kSchemaWait;
  for (;;) {
    try {
      return StateStore{open_once(path)};
    } catch (const StateError& error) {
      if (error.code() != SQLITE_SCHEMA || std::chrono::steady_clock::now() >= give_up) {
        throw;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
  }
}

std::unique_ptr<StateStore::Impl> StateStore::open_once(const std::filesystem::path& path) {
  // With a WAL beside it (the daemon runs, or stopped without closing) the file is read
  // through it, sharing the daemon's -shm index; SQLite reads it privately when it
  // cannot write it. Without one, the last connection closed cleanly and the file
  // holds everything: read it as it is, since opening it as WAL would make a -wal and
  // a -shm wherever the folder lets us (and fail where it does not). A daemon starting
  // meanwhile writes to a new WAL, not to the file, until its first checkpoint.
  const std::filesystem::path wal = path.string() + "-wal";
  if (!is_there(wal)) {
    return std::make_unique<Impl>(path, sqlite::Access::immutable);
  }
  try {
    return std::make_unique<Impl>(path, sqlite::Access::read_only);
  } catch (const StateError&) {
    // The daemon stopped between the look and the open, taking its WAL with it.
    if (is_there(wal)) {
      throw;
    }
    return std::make_unique<Impl>(path, sqlite::Access::immutable);
  }
}

StateStore::Batch::Batch(StateStore& store)
    : transaction_(std::make_unique<sqlite::Transaction>(store.impl_->db)) {}
StateStore::Batch::~Batch() = default;

void StateStore::Batch::commit() {
  transaction_->commit();
}

StateStore::StateStore(const std::filesystem::path& path)
    : impl_(std::make_unique<Impl>(path, sqlite::Access::read_write)) {}
StateStore::~StateStore() = default;
StateStore::StateStore(StateStore&&) noexcept = default;
StateStore& StateStore::operator=(StateStore&&) noexcept = default;

int StateStore::latest_schema_version() {
  return kLatestSchemaVersion;
}

int StateStore::schema_version() const {
  sqlite::Query query{impl_->statements->user_version};
  return query.step() ? static_cast<int>(query.get_int64(0)) : 0;
}

void StateStore::check_integrity() {
  sqlite::Statement statement{impl_->db, "PRAGMA quick_check(5)"};
  sqlite::Query query{statement};
  std::string problems;
  while (query.step()) {
    const std::string line = query.get_text(0);
    if (line == "ok") {
      continue;
    }
    problems += problems.empty() ? line : "; " + line;
  }
  if (!problems.empty()) {
    throw StateError("the state database failed its integrity check: " + problems, SQLITE_CORRUPT);
  }
}

void StateStore::check_writable(Instant now, std::chrono::milliseconds wait, std::size_t room) {
  // A real write (one small kv row), so a full disk or a read-only file system shows.
  // The short busy timeout keeps a caller on the event loop from stalling behind
  // another process's transaction.
  impl_->db.set_busy_timeout(wait);
  struct RestoreTimeout {
    sqlite::Database& db;
    std::chrono::milliseconds timeout;
    ~RestoreTimeout() { db.set_busy_timeout(timeout); }
  } restore{impl_->db, impl_->busy_timeout};
  set_value("health/written_at", std::to_string(to_unix(now)));
  if (room > 0) {
    set_value("health/room", std::string(room, ' '));
  }
}

void StateStore::set_busy_timeout(std::chrono::milliseconds timeout) {
  impl_->db.set_busy_timeout(timeout);
  impl_->busy_timeout = timeout;
}

std::int64_t StateStore::data_version() {
  sqlite::Query query{impl_->statements->data_version};
  return query.step() ? query.get_int64(0) : 0;
}

std::int64_t StateStore::own_changes() {
  return sqlite3_total_changes64(impl_->db.handle());
}

std::optional<std::string> StateStore::get_value(std::string_view key) {
  sqlite::Query query{impl_->statements->get_value, key};
  if (!query.step()) {
    return std::nullopt;
  }
  return query.get_text(0);
}

void StateStore::set_value(std::string_view key, std::string_view value) {
  sqlite::Transaction transaction{impl_->db};
  sqlite::Query{impl_->statements->set_value, key, value}.run();
  transaction.commit();
}

}  // namespace gio::state
