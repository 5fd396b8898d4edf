#include <algorithm>
#include <array>
#include <cstdio>
#include <limits>

#include "state/sqlite.hpp"
#include "state/state_store.hpp"
#include "state/statements.hpp"

namespace gio::state {
namespace {

constexpr std::array<std::string_view, 7> kStateNames = {
    "pending", "waiting", "downloading", "uploading", "done", "failed", "lost"};
constexpr std::array kAllStates = {SlotState::pending,   SlotState::waiting, SlotState::downloading,
                                   SlotState::uploading, SlotState::done,    SlotState::failed,
                                   SlotState::lost};
// States the scheduler still has work for.
constexpr std::array kActiveStates = {SlotState::pending, SlotState::waiting,
                                      SlotState::downloading};
constexpr std::array kNotDoneStates = {SlotState::pending,     SlotState::waiting,
                                       SlotState::downloading, SlotState::uploading,
                                       SlotState::failed,      SlotState::lost};

constexpr std::string_view kSlotColumns =
    "job, slot, start, state, attempts, next_at, api_status, last_error, created_at, "
    "updated_at, done_at, notices, uploading_since";

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

}  // namespace

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
  if (!row.is_null(12)) {
    record.uploading_since = from_unix(row.get_int64(12));
  }
  return record;
}

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

SlotStatements::SlotStatements(sqlite::Database& db)
    : insert_slot(db,
                  "INSERT INTO slots (job, slot, start, state, attempts, next_at, api_status, "
                  "last_error, created_at, updated_at) VALUES (?1, ?2, ?3, 'pending', 0, ?4, "
                  "'', '', ?5, ?5) ON CONFLICT (job, slot) DO NOTHING"),
      due(db, select_slots("WHERE state IN ('pending', 'waiting', 'downloading') "
                           "AND next_at <= ?1 AND job IN (SELECT value FROM json_each(?3)) "
                           "ORDER BY start, job LIMIT ?2")),
      first_next_at_in_state(db,
                             "SELECT next_at FROM slots WHERE state = ?1 ORDER BY next_at LIMIT 1"),
      find(db, select_slots("WHERE job = ?1 AND slot = ?2")),
      range(db, select_slots("WHERE job = ?1 AND start >= ?2 AND start < ?3 ORDER BY start")),
      // Walks the (job, start) index from one job name to the next instead of
      // reading every row.
      jobs(db,
           "WITH RECURSIVE names (job) AS (SELECT min(job) FROM slots UNION ALL "
           "SELECT (SELECT min(job) FROM slots WHERE job > names.job) FROM names "
           "WHERE names.job IS NOT NULL) SELECT job FROM names WHERE job IS NOT NULL"),
      count_by_state(db, "SELECT state, count(*) FROM slots WHERE job = ?1 GROUP BY state"),
      count_in_state(db, "SELECT count(*) FROM slots WHERE job = ?1 AND state = ?2"),
      oldest_in_state(db,
                      "SELECT slot, start FROM slots WHERE job = ?1 AND state = ?2 "
                      "ORDER BY start LIMIT 1"),
      newest_in_state(db,
                      "SELECT slot FROM slots WHERE job = ?1 AND state = ?2 "
                      "ORDER BY start DESC LIMIT 1"),
      // Without statistics the planner prefers (state, next_at) and then reads
      // every active row of every job; the covering index reads only this job's.
      // min() makes `slot` come from the row holding the minimum (SQLite's bare column).
      job_next_in_state(db,
                        "SELECT min(next_at), slot FROM slots INDEXED BY slots_by_job_state_start "
                        "WHERE job = ?1 AND state = ?2"),
      not_done(db, select_slots("WHERE job = ?1 AND state IN ('pending', 'waiting', "
                                "'downloading', 'uploading', 'failed', 'lost') "
                                "ORDER BY start, slot")),
      update_slot(db,
                  "UPDATE slots SET state = ?3, next_at = ?4, "
                  "api_status = coalesce(?5, api_status), last_error = coalesce(?6, last_error), "
                  "attempts = attempts + ?7, updated_at = ?8, "
                  "done_at = CASE WHEN ?3 = 'done' THEN ?8 ELSE NULL END, "
                  "notices = coalesce(?9, notices), "
                  "uploading_since = CASE WHEN ?3 = 'uploading' THEN "
                  "coalesce(uploading_since, ?8) ELSE NULL END "
                  "WHERE job = ?1 AND slot = ?2"),
      resume_downloads(db,
                       "UPDATE slots SET next_at = min(next_at, ?1), "
                       "updated_at = CASE WHEN next_at > ?1 THEN ?1 ELSE updated_at END "
                       "WHERE state = 'downloading'"),
      pull_in_next_at(db,
                      "UPDATE slots SET next_at = ?3 WHERE job = ?1 AND state IN ('pending', "
                      "'waiting', 'downloading') AND next_at > CASE WHEN attempts > 0 AND "
                      "api_status = ?4 THEN ?5 ELSE ?2 END"),
      not_done_before(db, select_slots("WHERE state IN ('pending', 'waiting', 'downloading', "
                                       "'failed') AND start < ?1 AND job IN "
                                       "(SELECT value FROM json_each(?2)) ORDER BY start, job")),
      count_at_risk(db,
                    "SELECT count(*) FROM slots WHERE job = ?1 AND state IN ('pending', "
                    "'waiting', 'downloading', 'failed') AND start < ?2"),
      oldest_active_start(db,
                          "SELECT min(start) FROM slots WHERE job = ?1 AND state IN "
                          "('pending', 'waiting', 'downloading', 'failed')"),
      // As `due`, but the rows asked before whose last answer was ?4 come after all the
      // others: a backlog that answers NOT_EXISTS for ever cannot crowd out fresh work.
      due_fresh_first(db, select_slots("WHERE state IN ('pending', 'waiting', 'downloading') "
                                       "AND next_at <= ?1 AND job IN (SELECT value FROM "
                                       "json_each(?3)) ORDER BY (attempts > 0 AND api_status "
                                       "= ?4), start, job LIMIT ?2")),
      later_finished(db,
                     "SELECT EXISTS (SELECT 1 FROM slots WHERE job = ?1 AND start > ?2 AND "
                     "state IN ('downloading', 'uploading', 'done'))"),
      due_uploads(db, select_slots("WHERE state = 'uploading' AND next_at <= ?1 AND job IN "
                                   "(SELECT value FROM json_each(?3)) ORDER BY start, job "
                                   "LIMIT ?2")),
      resume_uploads(db, "UPDATE slots SET next_at = min(next_at, ?1) WHERE state = 'uploading'"),
      pull_in_uploads(db,
                      "UPDATE slots SET next_at = ?3 WHERE job = ?1 AND state = 'uploading' "
                      "AND next_at > ?2"),
      requeue_upload(db,
                     "UPDATE slots SET state = 'uploading', next_at = ?3, updated_at = ?3, "
                     "done_at = NULL, notices = 0, uploading_since = ?3, last_error = '' "
                     "WHERE job = ?1 AND slot = ?2 AND state = 'done'"),
      done_before(
          db, select_slots("WHERE job = ?1 AND state = 'done' AND done_at <= ?2 AND "
                           "(notices & ?3) = ?3 AND (notices & ?4) = 0 ORDER BY done_at LIMIT ?5")),
      add_notices(db, "UPDATE slots SET notices = notices | ?3 WHERE job = ?1 AND slot = ?2"),
      backlog_slots(db,
                    "SELECT count(*), min(uploading_since) FROM slots WHERE state = "
                    "'uploading' AND job IN (SELECT value FROM json_each(?1))"),
      backlog_bytes(db,
                    "SELECT coalesce(sum(files.bytes), 0) FROM slots JOIN files USING (job, "
                    "slot) WHERE slots.state = 'uploading' AND slots.job IN (SELECT value "
                    "FROM json_each(?1))") {}

int StateStore::plan(std::string_view job, std::span<const PlannedSlot> slots, Instant now) {
  // Inside a Batch, the batch's transaction (a failure throws, and the batch rolls back).
  sqlite::Transaction transaction{impl_->db, sqlite::Begin::immediate, sqlite::Nested::join};
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
  // Uploads due count too: the loop wakes for them.
  for (const SlotState state :
       {SlotState::pending, SlotState::waiting, SlotState::downloading, SlotState::uploading}) {
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

std::vector<SlotRecord> StateStore::not_done(std::string_view job) {
  std::vector<SlotRecord> records;
  sqlite::Query query{impl_->statements->not_done, job};
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
    sqlite::Query query{statements.job_next_in_state, job, to_string(state)};
    if (query.step() && !query.is_null(0)) {
      const Instant next_at = from_unix(query.get_int64(0));
      if (!summary.next_action || next_at < *summary.next_action) {
        summary.next_action = next_at;
        summary.next_action_slot = query.get_text(1);
      }
    }
  }
  transaction.commit();
  return summary;
}

std::map<SlotState, int> StateStore::count_states(std::string_view job,
                                                  std::span<const SlotState> states) {
  sqlite::Transaction transaction{impl_->db, sqlite::Begin::deferred};
  std::map<SlotState, int> counts;
  for (const SlotState state : states) {
    sqlite::Query query{impl_->statements->count_in_state, job, to_string(state)};
    counts[state] = query.step() ? static_cast<int>(query.get_int64(0)) : 0;
  }
  transaction.commit();
  return counts;
}

void StateStore::update(std::string_view job, std::string_view slot, const SlotUpdate& update,
                        Instant now) {
  // One statement: inside a Batch it needs no savepoint of its own.
  sqlite::Transaction transaction{impl_->db, sqlite::Begin::immediate, sqlite::Nested::join};
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
  sqlite::Query{impl_->statements->clear_progress}.run();
  transaction.commit();
  return resumed;
}

int StateStore::pull_in_next_at(std::string_view job, Instant beyond, const Backlog& backlog,
                                Instant to) {
  sqlite::Transaction transaction{impl_->db};
  sqlite::Query{impl_->statements->pull_in_next_at,
                job,
                to_unix(beyond),
                to_unix(to),
                backlog.status,
                to_unix(backlog.beyond)}
      .run();
  const int pulled = impl_->db.changes();
  transaction.commit();
  return pulled;
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

std::vector<SlotRecord> StateStore::due_fresh_first(Instant now, std::size_t limit,
                                                    std::span<const std::string> jobs,
                                                    std::string_view backlog_status) {
  const auto capped = static_cast<std::int64_t>(
      std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max()));
  std::vector<SlotRecord> records;
  sqlite::Query query{impl_->statements->due_fresh_first, to_unix(now), capped, json_array(jobs),
                      backlog_status};
  while (query.step()) {
    records.push_back(read_slot(query));
  }
  return records;
}

bool StateStore::has_later_finished(std::string_view job, Instant start) {
  sqlite::Query query{impl_->statements->later_finished, job, to_unix(start)};
  return query.step() && query.get_int64(0) != 0;
}

std::vector<SlotRecord> StateStore::done_before(std::string_view job, Instant done_before, int with,
                                                int without, std::size_t limit) {
  const auto capped = static_cast<std::int64_t>(
      std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max()));
  std::vector<SlotRecord> records;
  sqlite::Query query{
      impl_->statements->done_before, job, to_unix(done_before), with, without, capped};
  while (query.step()) {
    records.push_back(read_slot(query));
  }
  return records;
}

void StateStore::add_notices(std::string_view job, std::string_view slot, int notices) {
  sqlite::Transaction transaction{impl_->db};
  sqlite::Query{impl_->statements->add_notices, job, slot, notices}.run();
  if (impl_->db.changes() == 0) {
    throw StateError(
        "no slot " + std::string{slot} + " of job " + std::string{job} + " in the state database",
        SQLITE_NOTFOUND);
  }
  transaction.commit();
}

}  // namespace gio::state
