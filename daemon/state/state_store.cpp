#include "state/state_store.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <limits>
#include <thread>

#include "state/sqlite.hpp"

namespace gio::state {
namespace {

constexpr std::array<std::string_view, 6> kStateNames = {"pending", "waiting", "downloading",
                                                         "done",    "failed",  "lost"};
constexpr std::array kAllStates = {SlotState::pending, SlotState::waiting, SlotState::downloading,
                                   SlotState::done,    SlotState::failed,  SlotState::lost};
// States the scheduler still has work for.
constexpr std::array kActiveStates = {SlotState::pending, SlotState::waiting,
                                      SlotState::downloading};
constexpr std::array kNotDoneStates = {SlotState::pending, SlotState::waiting,
                                       SlotState::downloading, SlotState::failed, SlotState::lost};

constexpr std::chrono::milliseconds kBusyTimeout{10'000};

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
};

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

constexpr std::string_view kSlotColumns =
    "job, slot, start, state, attempts, next_at, api_status, last_error, created_at, "
    "updated_at, done_at, notices";

// A JSON array of strings, for SQLite's json_each: one bound value however many names.
std::string json_array(std::span<const std::string> texts) {
  std::string json = "[";
  for (const std::string& text : texts) {
    if (json.size() > 1) {
      json += ',';
    }
    json += '"';
    for (const char c : text) {
      if (c == '"' || c == '\\') {
        json += '\\';
        json += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
        json += escaped;
      } else {
        json += c;
      }
    }
    json += '"';
  }
  return json + "]";
}

std::string select_slots(std::string_view rest) {
  std::string sql = "SELECT ";
  sql += kSlotColumns;
  sql += " FROM slots ";
  sql += rest;
  return sql;
}

SlotState state_from_db(const std::string& text) {
  const auto state = parse_slot_state(text);
  if (!state) {
    // The CHECK constraint keeps this out; a row that has it was not written by us.
    throw StateError("the state database holds an unknown slot state", SQLITE_CORRUPT);
  }
  return *state;
}

SlotRecord read_slot(const sqlite::Query& row) {
  SlotRecord record;
  record.job = row.get_text(0);
  record.slot = row.get_text(1);
  record.start = from_unix(row.get_int64(2));
  record.state = state_from_db(row.get_text(3));
  record.attempts = static_cast<int>(row.get_int64(4));
  record.next_at = from_unix(row.get_int64(5));
  record.api_status = row.get_text(6);
  record.last_error = row.get_text(7);
  record.created_at = from_unix(row.get_int64(8));
  record.updated_at = from_unix(row.get_int64(9));
  if (!row.is_null(10)) {
    record.done_at = from_unix(row.get_int64(10));
  }
  record.notices = static_cast<int>(row.get_int64(11));
  return record;
}

std::optional<std::int64_t> unix_or_null(const std::optional<Instant>& instant) {
  if (!instant) {
    return std::nullopt;
  }
  return to_unix(*instant);
}

}  // namespace

std::string_view to_string(SlotState state) {
  return kStateNames.at(static_cast<std::size_t>(state));
}

std::optional<SlotState> parse_slot_state(std::string_view text) {
  for (const SlotState state : kAllStates) {
    if (to_string(state) == text) {
      return state;
    }
  }
  return std::nullopt;
}

// Statements are prepared once per connection; every value is bound.
struct Statements {
  explicit Statements(sqlite::Database& db)
      : user_version(db, "PRAGMA user_version"),
        insert_slot(db,
                    "INSERT INTO slots (job, slot, start, state, attempts, next_at, api_status, "
                    "last_error, created_at, updated_at) VALUES (?1, ?2, ?3, 'pending', 0, ?4, "
                    "'', '', ?5, ?5) ON CONFLICT (job, slot) DO NOTHING"),
        due(db, select_slots("WHERE state IN ('pending', 'waiting', 'downloading') "
                             "AND next_at <= ?1 AND job IN (SELECT value FROM json_each(?3)) "
                             "ORDER BY start, job LIMIT ?2")),
        first_next_at_in_state(
            db, "SELECT next_at FROM slots WHERE state = ?1 ORDER BY next_at LIMIT 1"),
        find(db, select_slots("WHERE job = ?1 AND slot = ?2")),
        range(db, select_slots("WHERE job = ?1 AND start >= ?2 AND start < ?3 ORDER BY start")),
        // Walks the (job, start) index from one job name to the next instead of
        // reading every row.
        jobs(db,
             "WITH RECURSIVE names (job) AS (SELECT min(job) FROM slots UNION ALL "
             "SELECT (SELECT min(job) FROM slots WHERE job > names.job) FROM names "
             "WHERE names.job IS NOT NULL) SELECT job FROM names WHERE job IS NOT NULL"),
        count_by_state(db, "SELECT state, count(*) FROM slots WHERE job = ?1 GROUP BY state"),
        oldest_in_state(db,
                        "SELECT slot, start FROM slots WHERE job = ?1 AND state = ?2 "
                        "ORDER BY start LIMIT 1"),
        newest_in_state(db,
                        "SELECT slot FROM slots WHERE job = ?1 AND state = ?2 "
                        "ORDER BY start DESC LIMIT 1"),
        // Without statistics the planner prefers (state, next_at) and then reads
        // every active row of every job; the covering index reads only this job's.
        job_next_at_in_state(db,
                             "SELECT min(next_at) FROM slots INDEXED BY slots_by_job_state_start "
                             "WHERE job = ?1 AND state = ?2"),
        update_slot(db,
                    "UPDATE slots SET state = ?3, next_at = ?4, "
                    "api_status = coalesce(?5, api_status), last_error = coalesce(?6, last_error), "
                    "attempts = attempts + ?7, updated_at = ?8, "
                    "done_at = CASE WHEN ?3 = 'done' THEN ?8 ELSE NULL END, "
                    "notices = coalesce(?9, notices) "
                    "WHERE job = ?1 AND slot = ?2"),
        resume_downloads(db,
                         "UPDATE slots SET next_at = min(next_at, ?1), "
                         "updated_at = CASE WHEN next_at > ?1 THEN ?1 ELSE updated_at END "
                         "WHERE state = 'downloading'"),
        upsert_file(db,
                    "INSERT INTO files (job, slot, data_type, name, bytes, sha256, archived_at) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                    "ON CONFLICT (job, slot, data_type, name) DO UPDATE SET "
                    "bytes = excluded.bytes, sha256 = excluded.sha256, "
                    "archived_at = excluded.archived_at"),
        files(db,
              "SELECT job, slot, data_type, name, bytes, sha256, archived_at FROM files "
              "WHERE job = ?1 AND slot = ?2 ORDER BY data_type, name"),
        not_done_before(db, select_slots("WHERE state IN ('pending', 'waiting', 'downloading', "
                                         "'failed') AND start < ?1 AND job IN "
                                         "(SELECT value FROM json_each(?2)) ORDER BY start, job")),
        count_at_risk(db,
                      "SELECT count(*) FROM slots WHERE job = ?1 AND state IN ('pending', "
                      "'waiting', 'downloading', 'failed') AND start < ?2"),
        oldest_active_start(db,
                            "SELECT min(start) FROM slots WHERE job = ?1 AND state IN "
                            "('pending', 'waiting', 'downloading', 'failed')"),
        data_version(db, "PRAGMA data_version"),
        requeue_insert(db,
                       "INSERT INTO slots (job, slot, start, state, attempts, next_at, api_status, "
                       "last_error, created_at, updated_at) VALUES (?1, ?2, ?3, 'pending', 0, ?4, "
                       "'', '', ?4, ?4)"),
        requeue_update(db,
                       "UPDATE slots SET state = 'pending', next_at = ?3, updated_at = ?3, "
                       "done_at = NULL, notices = 0, "
                       "attempts = CASE WHEN ?4 THEN 0 ELSE attempts END, "
                       "created_at = CASE WHEN ?4 THEN ?3 ELSE created_at END "
                       "WHERE job = ?1 AND slot = ?2"),
        forget_slot_files(db, "DELETE FROM files WHERE job = ?1 AND slot = ?2"),
        forget_type_files(db, "DELETE FROM files WHERE job = ?1 AND slot = ?2 AND data_type = ?3"),
        forget_file(db,
                    "DELETE FROM files WHERE job = ?1 AND slot = ?2 AND data_type = ?3 AND "
                    "name = ?4"),
        get_value(db, "SELECT value FROM kv WHERE key = ?1"),
        set_value(db,
                  "INSERT INTO kv (key, value) VALUES (?1, ?2) "
                  "ON CONFLICT (key) DO UPDATE SET value = excluded.value") {}

  sqlite::Statement user_version;
  sqlite::Statement insert_slot;
  sqlite::Statement due;
  sqlite::Statement first_next_at_in_state;
  sqlite::Statement find;
  sqlite::Statement range;
  sqlite::Statement jobs;
  sqlite::Statement count_by_state;
  sqlite::Statement oldest_in_state;
  sqlite::Statement newest_in_state;
  sqlite::Statement job_next_at_in_state;
  sqlite::Statement update_slot;
  sqlite::Statement resume_downloads;
  sqlite::Statement upsert_file;
  sqlite::Statement files;
  sqlite::Statement not_done_before;
  sqlite::Statement count_at_risk;
  sqlite::Statement oldest_active_start;
  sqlite::Statement data_version;
  sqlite::Statement requeue_insert;
  sqlite::Statement requeue_update;
  sqlite::Statement forget_slot_files;
  sqlite::Statement forget_type_files;
  sqlite::Statement forget_file;
  sqlite::Statement get_value;
  sqlite::Statement set_value;
};

class StateStore::Impl {
 public:
  explicit Impl(const std::filesystem::path& path) : db(path) {
    // Some lock conflicts while a file is being created or its WAL recovered by another
    // process (the daemon and a CLI command starting together) return SQLITE_BUSY
    // without consulting the busy handler; they clear within moments, so wait them out.
    const auto give_up = std::chrono::steady_clock::now() + kBusyTimeout;
    for (;;) {
      try {
        configure();
        migrate();
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

  sqlite::Database db;
  std::optional<Statements> statements;

 private:
  void configure() {
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
    db.exec("PRAGMA foreign_keys = ON");
  }

  void migrate() {
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
      db.exec(std::string{migration.sql});
      // PRAGMA takes no bound parameters; the number is this program's constant.
      db.exec("PRAGMA user_version = " + std::to_string(migration.version));
    }
    transaction.commit();
  }
};

StateStore::Batch::Batch(StateStore& store)
    : transaction_(std::make_unique<sqlite::Transaction>(store.impl_->db)) {}
StateStore::Batch::~Batch() = default;

void StateStore::Batch::commit() {
  transaction_->commit();
}

StateStore::StateStore(const std::filesystem::path& path) : impl_(std::make_unique<Impl>(path)) {}
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

int StateStore::plan(std::string_view job, std::span<const PlannedSlot> slots, Instant now) {
  sqlite::Transaction transaction{impl_->db};
  int added = 0;
  for (const PlannedSlot& slot : slots) {
    sqlite::Query{impl_->statements->insert_slot, job,         slot.slot, to_unix(slot.start),
                  to_unix(slot.next_at),          to_unix(now)}
        .run();
    added += impl_->db.changes();
  }
  transaction.commit();
  return added;
}

std::vector<SlotRecord> StateStore::due(Instant now, std::size_t limit,
                                        std::span<const std::string> jobs) {
  const auto capped = static_cast<std::int64_t>(
      std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max()));
  std::vector<SlotRecord> records;
  sqlite::Query query{impl_->statements->due, to_unix(now), capped, json_array(jobs)};
  while (query.step()) {
    records.push_back(read_slot(query));
  }
  return records;
}

std::optional<Instant> StateStore::next_due() {
  // One snapshot for the three lookups; each is a single index probe.
  sqlite::Transaction transaction{impl_->db, sqlite::Begin::deferred};
  std::optional<std::int64_t> earliest;
  for (const SlotState state : kActiveStates) {
    sqlite::Query query{impl_->statements->first_next_at_in_state, to_string(state)};
    if (query.step()) {
      const std::int64_t next_at = query.get_int64(0);
      earliest = earliest ? std::min(*earliest, next_at) : next_at;
    }
  }
  transaction.commit();
  if (!earliest) {
    return std::nullopt;
  }
  return from_unix(*earliest);
}

std::optional<SlotRecord> StateStore::find(std::string_view job, std::string_view slot) {
  sqlite::Query query{impl_->statements->find, job, slot};
  if (!query.step()) {
    return std::nullopt;
  }
  return read_slot(query);
}

std::vector<SlotRecord> StateStore::slots(std::string_view job, Instant from, Instant to) {
  std::vector<SlotRecord> records;
  sqlite::Query query{impl_->statements->range, job, to_unix(from), to_unix(to)};
  while (query.step()) {
    records.push_back(read_slot(query));
  }
  return records;
}

std::vector<std::string> StateStore::jobs() {
  std::vector<std::string> names;
  sqlite::Query query{impl_->statements->jobs};
  while (query.step()) {
    names.push_back(query.get_text(0));
  }
  return names;
}

JobSummary StateStore::summarize(std::string_view job) {
  Statements& statements = *impl_->statements;
  sqlite::Transaction transaction{impl_->db, sqlite::Begin::deferred};
  JobSummary summary;
  for (const SlotState state : kAllStates) {
    summary.counts[state] = 0;
  }
  {
    sqlite::Query query{statements.count_by_state, job};
    while (query.step()) {
      summary.counts[state_from_db(query.get_text(0))] = static_cast<int>(query.get_int64(1));
    }
  }
  {
    sqlite::Query query{statements.newest_in_state, job, to_string(SlotState::done)};
    if (query.step()) {
      summary.newest_done = query.get_text(0);
    }
  }
  // Per state, so each lookup is one probe of (job, state, start) even when years
  // of done slots come first.
  std::optional<std::int64_t> oldest_start;
  for (const SlotState state : kNotDoneStates) {
    sqlite::Query query{statements.oldest_in_state, job, to_string(state)};
    if (query.step() && (!oldest_start || query.get_int64(1) < *oldest_start)) {
      oldest_start = query.get_int64(1);
      summary.oldest_not_done = query.get_text(0);
    }
  }
  for (const SlotState state : kActiveStates) {
    sqlite::Query query{statements.job_next_at_in_state, job, to_string(state)};
    if (query.step() && !query.is_null(0)) {
      const Instant next_at = from_unix(query.get_int64(0));
      summary.next_action = summary.next_action ? std::min(*summary.next_action, next_at) : next_at;
    }
  }
  transaction.commit();
  return summary;
}

void StateStore::update(std::string_view job, std::string_view slot, const SlotUpdate& update,
                        Instant now) {
  sqlite::Transaction transaction{impl_->db};
  sqlite::Query{impl_->statements->update_slot,
                job,
                slot,
                to_string(update.state),
                to_unix(update.next_at),
                update.api_status,
                update.last_error,
                update.count_attempt ? 1 : 0,
                to_unix(now),
                update.notices}
      .run();
  if (impl_->db.changes() == 0) {
    throw StateError(
        "no slot " + std::string{slot} + " of job " + std::string{job} + " in the state database",
        SQLITE_NOTFOUND);
  }
  transaction.commit();
}

int StateStore::resume_downloads(Instant now) {
  sqlite::Transaction transaction{impl_->db};
  sqlite::Query{impl_->statements->resume_downloads, to_unix(now)}.run();
  const int resumed = impl_->db.changes();
  transaction.commit();
  return resumed;
}

void StateStore::record_file(const ArchivedFile& file) {
  if (file.bytes > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    throw StateError("file size out of range for the state database", SQLITE_TOOBIG);
  }
  sqlite::Transaction transaction{impl_->db};
  sqlite::Query{impl_->statements->upsert_file,
                file.job,
                file.slot,
                file.data_type,
                file.name,
                static_cast<std::int64_t>(file.bytes),
                file.sha256,
                unix_or_null(file.archived_at)}
      .run();
  transaction.commit();
}

std::vector<ArchivedFile> StateStore::files(std::string_view job, std::string_view slot) {
  std::vector<ArchivedFile> result;
  sqlite::Query query{impl_->statements->files, job, slot};
  while (query.step()) {
    ArchivedFile file;
    file.job = query.get_text(0);
    file.slot = query.get_text(1);
    file.data_type = query.get_text(2);
    file.name = query.get_text(3);
    file.bytes = static_cast<std::uint64_t>(query.get_int64(4));
    file.sha256 = query.get_text(5);
    if (!query.is_null(6)) {
      file.archived_at = from_unix(query.get_int64(6));
    }
    result.push_back(std::move(file));
  }
  return result;
}

std::vector<SlotRecord> StateStore::not_done_before(Instant start_before,
                                                    std::span<const std::string> jobs) {
  std::vector<SlotRecord> records;
  sqlite::Query query{impl_->statements->not_done_before, to_unix(start_before), json_array(jobs)};
  while (query.step()) {
    records.push_back(read_slot(query));
  }
  return records;
}

int StateStore::count_at_risk(std::string_view job, Instant start_before) {
  sqlite::Query query{impl_->statements->count_at_risk, job, to_unix(start_before)};
  return query.step() ? static_cast<int>(query.get_int64(0)) : 0;
}

std::optional<Instant> StateStore::oldest_not_done_start(std::string_view job) {
  sqlite::Query query{impl_->statements->oldest_active_start, job};
  if (!query.step() || query.is_null(0)) {
    return std::nullopt;
  }
  return from_unix(query.get_int64(0));
}

void StateStore::check_writable(Instant now, std::chrono::milliseconds wait) {
  // A real write (one small kv row), so a full disk or a read-only file system shows.
  // The short busy timeout keeps a caller on the event loop from stalling behind
  // another process's transaction.
  impl_->db.set_busy_timeout(wait);
  struct RestoreTimeout {
    sqlite::Database& db;
    ~RestoreTimeout() { db.set_busy_timeout(kBusyTimeout); }
  } restore{impl_->db};
  set_value("health/written_at", std::to_string(to_unix(now)));
}

std::int64_t StateStore::data_version() {
  sqlite::Query query{impl_->statements->data_version};
  return query.step() ? query.get_int64(0) : 0;
}

int StateStore::requeue(std::string_view job, std::span<const RequeueTarget> targets,
                        const RequeueDecision& decide, Instant now, const RequeueOptions& options) {
  Statements& statements = *impl_->statements;
  // IMMEDIATE: the rows decided on cannot change (the daemon cannot move a slot to
  // downloading) between the decision and the change.
  sqlite::Transaction transaction{impl_->db};
  int queued = 0;
  for (const RequeueTarget& target : targets) {
    std::optional<SlotRecord> current = find(job, target.slot);
    const std::optional<Requeue> change = decide(target, current);
    if (!change) {
      continue;
    }
    if (!current) {
      sqlite::Query{statements.requeue_insert, job, target.slot, to_unix(target.start),
                    to_unix(now)}
          .run();
    } else {
      sqlite::Query{statements.requeue_update, job, target.slot, to_unix(now),
                    change->reset_attempts ? 1 : 0}
          .run();
    }
    if (change->forget_all_files) {
      sqlite::Query{statements.forget_slot_files, job, target.slot}.run();
    }
    for (const auto& [data_type, name] : change->forget_files) {
      if (name.empty()) {
        sqlite::Query{statements.forget_type_files, job, target.slot, data_type}.run();
      } else {
        sqlite::Query{statements.forget_file, job, target.slot, data_type, name}.run();
      }
    }
    ++queued;
  }
  if (options.dry_run) {
    return queued;  // the transaction rolls back
  }
  if (options.before_commit) {
    options.before_commit();
  }
  transaction.commit();
  return queued;
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
