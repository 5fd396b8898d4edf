#include "state/sqlite.hpp"
#include "state/state_store.hpp"
#include "state/statements.hpp"

namespace gio::state {

RequeueStatements::RequeueStatements(sqlite::Database& db)
    : requeue_insert(db,
                     "INSERT INTO slots (job, slot, start, state, attempts, next_at, api_status, "
                     "last_error, created_at, updated_at) VALUES (?1, ?2, ?3, 'pending', 0, ?4, "
                     "'', '', ?4, ?4)"),
      requeue_update(db,
                     "UPDATE slots SET state = 'pending', next_at = ?3, updated_at = ?3, "
                     "done_at = NULL, notices = 0, uploading_since = NULL, "
                     "attempts = CASE WHEN ?4 THEN 0 ELSE attempts END, "
                     "created_at = CASE WHEN ?4 THEN ?3 ELSE created_at END "
                     "WHERE job = ?1 AND slot = ?2"),
      forget_slot_files(db, "DELETE FROM files WHERE job = ?1 AND slot = ?2"),
      forget_type_files(db, "DELETE FROM files WHERE job = ?1 AND slot = ?2 AND data_type = ?3"),
      forget_file(db,
                  "DELETE FROM files WHERE job = ?1 AND slot = ?2 AND data_type = ?3 AND "
                  "name = ?4") {}

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

}  // namespace gio::state
