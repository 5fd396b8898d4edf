// When each job's slots were first seen FINISHED (issue 18): the `readiness` table of
// schema 7, a bounded sample per job and readiness class for the scheduler's model.

#include <algorithm>

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
                "SELECT delay, seen_at FROM readiness WHERE job = ?1 AND class = ?2 "
                "ORDER BY slot DESC"),
      readiness_jobs(db, "SELECT DISTINCT job FROM readiness"),
      forget_readiness(db, "DELETE FROM readiness WHERE job = ?1") {}

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
  for (const ReadinessSeen& seen : readiness_seen(job, readiness_class)) {
    delays.push_back(seen.delay);
  }
  return delays;
}

std::vector<StateStore::ReadinessSeen> StateStore::readiness_seen(
    std::string_view job, std::string_view readiness_class) {
  std::vector<ReadinessSeen> seen;
  sqlite::Query query{impl_->statements->readiness, job, readiness_class};
  while (query.step()) {
    seen.push_back({std::chrono::seconds{query.get_int64(0)}, from_unix(query.get_int64(1))});
  }
  return seen;
}

int StateStore::forget_readiness_except(const std::vector<std::string>& jobs) {
  std::vector<std::string> gone;
  {
    sqlite::Query query{impl_->statements->readiness_jobs};
    while (query.step()) {
      std::string job = query.get_text(0);
      if (std::find(jobs.begin(), jobs.end(), job) == jobs.end()) {
        gone.push_back(std::move(job));
      }
    }
  }
  if (gone.empty()) {
    return 0;  // the usual case: no write, so no lock taken
  }
  int rows = 0;
  sqlite::Transaction transaction{impl_->db};
  for (const std::string& job : gone) {
    sqlite::Query query{impl_->statements->forget_readiness, job};
    query.run();
    rows += impl_->db.changes();
  }
  transaction.commit();
  return rows;
}

}  // namespace gio::state
