// Completeness (issue 16): the hourly against daily comparisons, kept per date and data
// type. The statements are prepared per call: these run once per date, not per slot.

#include <limits>

#include "state/sqlite.hpp"
#include "state/state_store.hpp"
#include "state/statements.hpp"

namespace gio::state {
namespace {

constexpr std::string_view kColumns =
    "job, date, data_type, daily_job, hourly_rows, daily_rows, hours, verdict, reconciled_at";

std::int64_t checked(std::uint64_t rows) {
  if (rows > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    throw StateError("row count out of range for the state database", SQLITE_TOOBIG);
  }
  return static_cast<std::int64_t>(rows);
}

Reconciliation read_row(const sqlite::Query& query) {
  return {.job = query.get_text(0),
          .date = query.get_text(1),
          .data_type = query.get_text(2),
          .daily_job = query.get_text(3),
          .hourly_rows = static_cast<std::uint64_t>(query.get_int64(4)),
          .daily_rows = static_cast<std::uint64_t>(query.get_int64(5)),
          .hours = query.get_text(6),
          .match = query.get_text(7) == "match",
          .reconciled_at = from_unix(query.get_int64(8))};
}

}  // namespace

void StateStore::record_reconciliations(std::span<const Reconciliation> rows) {
  sqlite::Statement statement{impl_->db, "INSERT OR REPLACE INTO reconciliations (" +
                                             std::string{kColumns} +
                                             ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"};
  sqlite::Transaction transaction{impl_->db};
  for (const Reconciliation& row : rows) {
    sqlite::Query{statement,
                  row.job,
                  row.date,
                  row.data_type,
                  row.daily_job,
                  checked(row.hourly_rows),
                  checked(row.daily_rows),
                  row.hours,
                  row.match ? "match" : "mismatch",
                  to_unix(row.reconciled_at)}
        .run();
  }
  transaction.commit();
}

void StateStore::replace_reconciliations(std::string_view job, std::string_view date,
                                         std::span<const Reconciliation> rows) {
  sqlite::Statement statement{impl_->db,
                              "DELETE FROM reconciliations WHERE job = ?1 AND date = ?2"};
  sqlite::Transaction transaction{impl_->db};
  sqlite::Query{statement, job, date}.run();
  record_reconciliations(rows);  // nested: part of this transaction
  transaction.commit();
}

std::vector<Reconciliation> StateStore::reconciliations(std::string_view job,
                                                        std::string_view from_date,
                                                        std::string_view to_date) {
  sqlite::Statement statement{impl_->db, "SELECT " + std::string{kColumns} +
                                             " FROM reconciliations WHERE job = ?1 AND date >= "
                                             "?2 AND date <= ?3 ORDER BY date, data_type"};
  std::vector<Reconciliation> result;
  sqlite::Query query{statement, job, from_date, to_date};
  while (query.step()) {
    result.push_back(read_row(query));
  }
  return result;
}

std::vector<Reconciliation> StateStore::latest_reconciliations(std::string_view job) {
  sqlite::Statement statement{
      impl_->db, "SELECT " + std::string{kColumns} +
                     " FROM reconciliations AS r JOIN (SELECT data_type AS latest_type, "
                     "max(date) AS latest_date FROM reconciliations WHERE job = ?1 GROUP BY "
                     "data_type) ON r.data_type = latest_type AND r.date = latest_date "
                     "WHERE r.job = ?1 ORDER BY r.data_type"};
  std::vector<Reconciliation> result;
  sqlite::Query query{statement, job};
  while (query.step()) {
    result.push_back(read_row(query));
  }
  return result;
}

}  // namespace gio::state
