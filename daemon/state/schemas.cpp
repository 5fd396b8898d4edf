// The header history of each job and data type (issue 16): the `schemas` table of
// schema 5. Columns are stored as a JSON array of strings, read back through SQLite's
// json_each, so the module needs no JSON library of its own.

#include "state/sqlite.hpp"
#include "state/state_store.hpp"
#include "state/statements.hpp"

namespace gio::state {

SchemaStatements::SchemaStatements(sqlite::Database& db)
    : schema_history(db,
                     "SELECT s.since_slot, s.seen_at, j.value FROM schemas AS s "
                     "LEFT JOIN json_each(s.columns) AS j "
                     "WHERE s.job = ?1 AND s.data_type = ?2 ORDER BY s.since_slot, j.key"),
      current_schemas(db,
                      "SELECT s.data_type, s.since_slot, s.seen_at, j.value FROM schemas AS s "
                      "LEFT JOIN json_each(s.columns) AS j "
                      "WHERE s.job = ?1 AND s.since_slot = (SELECT MAX(t.since_slot) FROM "
                      "schemas AS t WHERE t.job = s.job AND t.data_type = s.data_type) "
                      "ORDER BY s.data_type, j.key"),
      delete_schema(db,
                    "DELETE FROM schemas WHERE job = ?1 AND data_type = ?2 AND since_slot = ?3"),
      upsert_schema(db,
                    "INSERT INTO schemas (job, data_type, since_slot, columns, seen_at) "
                    "VALUES (?1, ?2, ?3, ?4, ?5) "
                    "ON CONFLICT (job, data_type, since_slot) DO UPDATE SET "
                    "columns = excluded.columns, seen_at = excluded.seen_at") {}

std::vector<SchemaRecord> StateStore::schemas(std::string_view job, std::string_view data_type) {
  std::vector<SchemaRecord> records;
  sqlite::Query query{impl_->statements->schema_history, job, data_type};
  // A row per column: a new since_slot starts the next record.
  while (query.step()) {
    std::string since = query.get_text(0);
    if (records.empty() || records.back().since_slot != since) {
      records.push_back({.since_slot = std::move(since), .seen_at = from_unix(query.get_int64(1))});
    }
    if (!query.is_null(2)) {
      records.back().columns.push_back(query.get_text(2));
    }
  }
  return records;
}

std::map<std::string, SchemaRecord> StateStore::current_schemas(std::string_view job) {
  std::map<std::string, SchemaRecord> current;
  sqlite::Query query{impl_->statements->current_schemas, job};
  // A row per column of each type's last record: a new type starts the next record.
  while (query.step()) {
    auto [entry, added] = current.try_emplace(query.get_text(0));
    if (added) {
      entry->second.since_slot = query.get_text(1);
      entry->second.seen_at = from_unix(query.get_int64(2));
    }
    if (!query.is_null(3)) {
      entry->second.columns.push_back(query.get_text(3));
    }
  }
  return current;
}

void StateStore::store_schema(std::string_view job, std::string_view data_type,
                              const SchemaRecord& record,
                              const std::optional<std::string>& remove) {
  sqlite::Transaction transaction{impl_->db};
  if (remove) {
    sqlite::Query{impl_->statements->delete_schema, job, data_type, *remove}.run();
  }
  sqlite::Query{impl_->statements->upsert_schema,
                job,
                data_type,
                record.since_slot,
                json_array(record.columns),
                to_unix(record.seen_at)}
      .run();
  transaction.commit();
}

}  // namespace gio::state
