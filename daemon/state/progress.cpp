// Progress (issue 17): how many bytes a downloading slot has fetched, for `status`, the
// calendar and the page. The daemon writes a slot's row at most every few seconds (each
// commit fsyncs); a trigger of schema 6 deletes it when the slot leaves downloading.

#include <limits>

#include "state/sqlite.hpp"
#include "state/state_store.hpp"
#include "state/statements.hpp"

namespace gio::state {
namespace {

std::int64_t checked(std::uint64_t bytes) {
  if (bytes > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    throw StateError("byte count out of range for the state database", SQLITE_TOOBIG);
  }
  return static_cast<std::int64_t>(bytes);
}

}  // namespace

ProgressStatements::ProgressStatements(sqlite::Database& db)
    // Only for a downloading slot: a report that comes after its slot moved on must not
    // leave a row behind for a later download of it to show.
    : upsert_progress(db,
                      "INSERT INTO progress (job, slot, bytes_done, bytes_total, updated_at) "
                      "SELECT ?1, ?2, ?3, ?4, ?5 FROM slots WHERE job = ?1 AND slot = ?2 "
                      "AND state = 'downloading' ON CONFLICT (job, slot) DO UPDATE SET "
                      "bytes_done = excluded.bytes_done, bytes_total = excluded.bytes_total, "
                      "updated_at = excluded.updated_at"),
      // The join keeps out a row whose slot is no longer downloading, however it got there.
      job_progress(db,
                   "SELECT p.slot, p.bytes_done, p.bytes_total, p.updated_at FROM progress AS p "
                   "JOIN slots AS s ON s.job = p.job AND s.slot = p.slot "
                   "WHERE p.job = ?1 AND s.state = 'downloading' ORDER BY p.slot"),
      clear_progress(db, "DELETE FROM progress") {}

void StateStore::set_progress(std::string_view job, std::string_view slot,
                              const SlotProgress& progress) {
  std::optional<std::int64_t> total;
  if (progress.bytes_total) {
    total = checked(*progress.bytes_total);
  }
  sqlite::Transaction transaction{impl_->db};
  sqlite::Query{impl_->statements->upsert_progress, job,   slot,
                checked(progress.bytes_done),       total, to_unix(progress.updated_at)}
      .run();
  transaction.commit();
}

std::map<std::string, SlotProgress> StateStore::progress(std::string_view job) {
  std::map<std::string, SlotProgress> rows;
  sqlite::Query query{impl_->statements->job_progress, job};
  while (query.step()) {
    SlotProgress& row = rows[query.get_text(0)];
    row.bytes_done = static_cast<std::uint64_t>(query.get_int64(1));
    if (!query.is_null(2)) {
      row.bytes_total = static_cast<std::uint64_t>(query.get_int64(2));
    }
    row.updated_at = from_unix(query.get_int64(3));
  }
  return rows;
}

}  // namespace gio::state
