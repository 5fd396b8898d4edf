// When each job's slots were first seen FINISHED (issue 18): the `readiness` table of
// schema 7, a bounded sample per job and readiness class for the scheduler's model.

#include "state/sqlite.hpp"
#include "state/state_store.hpp"
#include "state/statements.hpp"

namespace gio::state {

ReadinessStatements::ReadinessStatements(sqlite::Database& db)
    : upsert_readiness(db,
                       "INSERT INTO readiness (job, class, slot, delay, seen_at) "
                       "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (job, class, slot) DO UPDATE "
                       "SET delay = excluded.delay, seen_at = excluded.seen_at"),
      // Slot names of one class share a granularity, so they sort by time.
      trim_readiness(db,
                     "DELETE FROM readiness WHERE job = ?1 AND class = ?2 AND slot NOT IN "
                     "(SELECT slot FROM readiness WHERE job = ?1 AND class = ?2 "
                     "ORDER BY slot DESC LIMIT ?3)"),
      readiness(db,
                "SELECT delay FROM readiness WHERE job = ?1 AND class = ?2 "
                "ORDER BY slot DESC") {}

void StateStore::record_readiness(std::string_view job, std::string_view readiness_class,
                                  std::string_view slot, std::chrono::seconds delay,
                                  Instant seen_at, int keep) {
  sqlite::Transaction transaction{impl_->db};
  sqlite::Query{impl_->statements->upsert_readiness,
                job,
                readiness_class,
                slot,
                std::int64_t{delay.count()},
                to_unix(seen_at)}
      .run();
  sqlite::Query{impl_->statements->trim_readiness, job, readiness_class, keep}.run();
  transaction.commit();
}

std::vector<std::chrono::seconds> StateStore::readiness(std::string_view job,
                                                        std::string_view readiness_class) {
  std::vector<std::chrono::seconds> delays;
  sqlite::Query query{impl_->statements->readiness, job, readiness_class};
  while (query.step()) {
    delays.emplace_back(query.get_int64(0));
  }
  return delays;
}

}  // namespace gio::state
