#include "state/state_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "state/sqlite.hpp"
#include "state/statements.hpp"

namespace gio::state {
namespace {

constexpr std::chrono::milliseconds kBusyTimeout{10'000};
// How long a reader waits for a schema being created or migrated (see open_read_only).
constexpr std::chrono::milliseconds kSchemaWait{2'000};

// Schema migrations, applied in order to bring PRAGMA user_version up to the last
// one. A new step is one more entry; never edit a step that has shipped.
//
// Instants are unix seconds (UTC). The indexes serve the hot queries with a
// million rows: (state, next_at) for due/next_due/resume_downloads, (job, start)
// for ranges of a job, (job, state, start, next_at) for summaries (it covers the
// counts and next_at, and finds the oldest/newest slot of a state with one probe).
struct Migration {
  int version;
  std::string_view sql;
  // A step SQL text cannot say, run after `sql` in the same transaction; nullptr for most.
  void (*apply)(sqlite::Database& db) = nullptr;
};

// The CHECK on slots.state as version 4 wrote it, and the same check as comparisons.
constexpr std::string_view kStateInList =
    "state IN ('pending', 'waiting', 'downloading', 'uploading', 'done', 'failed', 'lost')";
constexpr std::string_view kStateComparisons =
    "state = 'pending' OR state = 'waiting' OR state = 'downloading' OR state = 'uploading' "
    "OR state = 'done' OR state = 'failed' OR state = 'lost'";

// Version 8 (start-up at scale, issue 18): SQLite checks an IN list of more than two
// values in a CHECK constraint through a temporary b-tree that it builds afresh for
// every row written (only a query's IN list is built once), which was most of the cost
// of each insert and update of a slot: planning 200 jobs at start took 71,600 of them.
// The same check as comparisons builds nothing. Only the constraint's text changes, not
// the rows or their format, so the table is not rebuilt (a minute's work and twice the
// file with millions of rows): SQLite's documented writable_schema procedure for a
// change that leaves stored content as it is (lang_altertable.html, "other kinds of
// table schema changes"), with schema_version moved on so every connection re-reads the
// schema. A slots table whose text differs (not written by this program) keeps its check.
void compare_states_without_in_list(sqlite::Database& db) {
  std::string sql;
  {
    sqlite::Statement statement{db,
                                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND "
                                "name = 'slots'"};
    sqlite::Query query{statement};
    if (query.step()) {
      sql = query.get_text(0);
    }
  }
  const auto at = sql.find(kStateInList);
  if (at == std::string::npos) {
    return;
  }
  sql.replace(at, kStateInList.size(), kStateComparisons);
  std::int64_t schema_version = 0;
  {
    sqlite::Statement statement{db, "PRAGMA schema_version"};
    sqlite::Query query{statement};
    schema_version = query.step() ? query.get_int64(0) : 0;
  }
  db.exec("PRAGMA writable_schema = ON");
  try {
    sqlite::Statement update{db,
                             "UPDATE sqlite_schema SET sql = ?1 WHERE type = 'table' AND "
                             "name = 'slots'"};
    sqlite::Query{update, sql}.run();
    // PRAGMA takes no bound parameters; the number is read from the file above.
    db.exec("PRAGMA schema_version = " + std::to_string(schema_version + 1));
  } catch (...) {
    db.exec("PRAGMA writable_schema = OFF");
    throw;
  }
  db.exec("PRAGMA writable_schema = OFF");
}

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE slots (
  job TEXT NOT NULL,
  slot TEXT NOT NULL,
  start INTEGER NOT NULL,
  state TEXT NOT NULL
    CHECK (state IN ('pending', 'waiting', 'downloading', 'done', 'failed', 'lost')),
  attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_at INTEGER NOT NULL,
  api_status TEXT NOT NULL DEFAULT '',
  last_error TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  done_at INTEGER,
  PRIMARY KEY (job, slot)
) STRICT;
CREATE INDEX slots_by_state_next_at ON slots (state, next_at);
CREATE INDEX slots_by_job_start ON slots (job, start);
CREATE INDEX slots_by_job_state_start ON slots (job, state, start, next_at);
CREATE TABLE files (
  job TEXT NOT NULL,
  slot TEXT NOT NULL,
  data_type TEXT NOT NULL,
  name TEXT NOT NULL,
  bytes INTEGER NOT NULL CHECK (bytes >= 0),
  sha256 TEXT NOT NULL,
  archived_at INTEGER,
  PRIMARY KEY (job, slot, data_type, name),
  FOREIGN KEY (job, slot) REFERENCES slots (job, slot) ON DELETE CASCADE
) STRICT;
CREATE TABLE kv (
  key TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
) STRICT;
)sql"},
    // notices: a bitmask of once-only log events already written for the slot.
    {2, R"sql(
ALTER TABLE slots ADD COLUMN notices INTEGER NOT NULL DEFAULT 0;
)sql"},
    // object: the object a file was fetched from (its link without the query). Rows
    // from before have '' and match no link, so such a part is fetched once more.
    {3, R"sql(
ALTER TABLE files ADD COLUMN object TEXT NOT NULL DEFAULT '';
)sql"},
    // Sinks (issue 15): the state `uploading` (complete locally, not yet landed on the
    // job's sink), and uploading_since, when it became so (the backlog's age). SQLite
    // cannot change a CHECK in place: the table is rebuilt (its rows copied as they are)
    // with foreign keys off (migrate()), so that dropping the old table keeps the files
    // rows. done_at by job and state finds the landed slots whose local copy is due to go.
    {4, R"sql(
CREATE TABLE slots_v4 (
  job TEXT NOT NULL,
  slot TEXT NOT NULL,
  start INTEGER NOT NULL,
  state TEXT NOT NULL
    CHECK (state IN ('pending', 'waiting', 'downloading', 'uploading', 'done', 'failed', 'lost')),
  attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_at INTEGER NOT NULL,
  api_status TEXT NOT NULL DEFAULT '',
  last_error TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  done_at INTEGER,
  notices INTEGER NOT NULL DEFAULT 0,
  uploading_since INTEGER,
  PRIMARY KEY (job, slot)
) STRICT;
INSERT INTO slots_v4 (job, slot, start, state, attempts, next_at, api_status, last_error,
                      created_at, updated_at, done_at, notices)
  SELECT job, slot, start, state, attempts, next_at, api_status, last_error, created_at,
         updated_at, done_at, notices FROM slots;
DROP TABLE slots;
ALTER TABLE slots_v4 RENAME TO slots;
CREATE INDEX slots_by_state_next_at ON slots (state, next_at);
CREATE INDEX slots_by_job_start ON slots (job, start);
CREATE INDEX slots_by_job_state_start ON slots (job, state, start, next_at);
CREATE INDEX slots_by_job_state_done_at ON slots (job, state, done_at);
)sql"},
    // Completeness (issue 16): each file's CSV records (header excluded; NULL: not
    // counted, as for a size-only job or a file from before) and, for a daily raw file,
    // its records per Beijing hour of their event time (JSON, 24 numbers; NULL when not
    // split), the headers seen per job and
    // type (a row per change: the schema in force from since_slot on), and the hourly
    // against daily comparison per date and type (hours: JSON, per Beijing hour).
    {5, R"sql(
ALTER TABLE files ADD COLUMN rows INTEGER CHECK (rows >= 0);
ALTER TABLE files ADD COLUMN rows_by_hour TEXT;
CREATE TABLE schemas (
  job TEXT NOT NULL,
  data_type TEXT NOT NULL,
  since_slot TEXT NOT NULL,
  columns TEXT NOT NULL,
  seen_at INTEGER NOT NULL,
  PRIMARY KEY (job, data_type, since_slot)
) STRICT;
CREATE TABLE reconciliations (
  job TEXT NOT NULL,
  date TEXT NOT NULL,
  data_type TEXT NOT NULL,
  daily_job TEXT NOT NULL,
  hourly_rows INTEGER NOT NULL CHECK (hourly_rows >= 0),
  daily_rows INTEGER NOT NULL CHECK (daily_rows >= 0),
  hours TEXT NOT NULL,
  verdict TEXT NOT NULL CHECK (verdict IN ('match', 'mismatch')),
  reconciled_at INTEGER NOT NULL,
  PRIMARY KEY (job, date, data_type)
) STRICT;
)sql"},
    // Progress (issue 17): the bytes a downloading slot has fetched so far, written at most
    // every few seconds while it downloads. A row means something only while its slot is
    // downloading: the trigger deletes it whenever the slot's state changes to another, by
    // whichever path (update, requeue, a CLI command), so no writer can leave one behind.
    {6, R"sql(
CREATE TABLE progress (
  job TEXT NOT NULL,
  slot TEXT NOT NULL,
  bytes_done INTEGER NOT NULL CHECK (bytes_done >= 0),
  bytes_total INTEGER CHECK (bytes_total >= 0),
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (job, slot),
  FOREIGN KEY (job, slot) REFERENCES slots (job, slot) ON DELETE CASCADE
) STRICT;
CREATE TRIGGER progress_ends AFTER UPDATE OF state ON slots
  WHEN NEW.state <> 'downloading'
BEGIN
  DELETE FROM progress WHERE job = NEW.job AND slot = NEW.slot;
END;
)sql"},
    // Readiness (issue 18): when each job's slots were first seen FINISHED, in seconds
    // after its floor (end + ready_after), per readiness class (hour, late_hour, day). The last
    // few per class are kept (readiness.cpp): the scheduler plans its asks from them.
    {7, R"sql(
CREATE TABLE readiness (
  job TEXT NOT NULL,
  class TEXT NOT NULL,
  slot TEXT NOT NULL,
  delay INTEGER NOT NULL,
  seen_at INTEGER NOT NULL,
  PRIMARY KEY (job, class, slot)
) STRICT;
)sql"},
    // The CHECK on slots.state without an IN list (compare_states_without_in_list).
    {8, "", &compare_states_without_in_list},
};

constexpr bool versions_are_consecutive() {
  int expected = 1;
  for (const Migration& migration : kMigrations) {
    if (migration.version != expected++) {
      return false;
    }
  }
  return true;
}
static_assert(versions_are_consecutive(), "migration versions must run 1, 2, 3, ...");

constexpr int kLatestVersion = std::size(kMigrations);

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
  if (version > kLatestVersion) {
    throw StateError("schema version " + std::to_string(version) +
                         " is newer than this program knows (" + std::to_string(kLatestVersion) +
                         ")",
                     SQLITE_ERROR);
  }
  for (const Migration& migration : kMigrations) {
    if (migration.version <= version) {
      continue;
    }
    if (!migration.sql.empty()) {
      db.exec(std::string{migration.sql});
    }
    if (migration.apply != nullptr) {
      migration.apply(db);
    }
    // PRAGMA takes no bound parameters; the number is this program's constant.
    db.exec("PRAGMA user_version = " + std::to_string(migration.version));
  }
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
  if (version < kLatestVersion) {
    // A reader cannot migrate; the statements below would not fit an older schema.
    throw StateError("schema version " + std::to_string(version) + " is older than this " +
                         "program's (" + std::to_string(kLatestVersion) +
                         "); the daemon of this version migrates it when it starts",
                     SQLITE_SCHEMA);
  }
  if (version > kLatestVersion) {
    throw StateError("schema version " + std::to_string(version) +
                         " is newer than this program knows (" + std::to_string(kLatestVersion) +
                         ")",
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
  return kLatestVersion;
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
