#include "state/migrations.hpp"

#include <string>

#include "state/state_error.hpp"

namespace gio::state {
namespace {

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
  // The procedure's last step: the edited schema must parse and the table read back
  // whole, before the transaction commits; otherwise it rolls back and the file stays
  // as it was (a schema SQLite cannot parse would leave the file unopenable).
  sqlite::Statement check{db, "PRAGMA quick_check(slots)"};
  sqlite::Query query{check};
  const std::string verdict = query.step() ? query.get_text(0) : "no answer";
  if (verdict != "ok") {
    throw StateError(
        "the slots table's CHECK rewritten as comparisons failed its check: " + verdict,
        SQLITE_CORRUPT);
  }
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

}  // namespace

static_assert(std::size(kMigrations) == kLatestSchemaVersion,
              "kLatestSchemaVersion (migrations.hpp) is the last migration's version");

void apply_migrations(sqlite::Database& db, int version) {
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
}

}  // namespace gio::state
