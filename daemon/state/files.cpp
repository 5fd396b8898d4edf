#include <limits>

#include "state/sqlite.hpp"
#include "state/state_store.hpp"
#include "state/statements.hpp"

namespace gio::state {
namespace {

std::optional<std::int64_t> unix_or_null(const std::optional<Instant>& instant) {
  if (!instant) {
    return std::nullopt;
  }
  return to_unix(*instant);
}

}  // namespace

FileStatements::FileStatements(sqlite::Database& db)
    : upsert_file(
          db,
          "INSERT INTO files (job, slot, data_type, name, bytes, sha256, archived_at, object) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
          "ON CONFLICT (job, slot, data_type, name) DO UPDATE SET "
          "bytes = excluded.bytes, sha256 = excluded.sha256, "
          "archived_at = excluded.archived_at, object = excluded.object"),
      files(db,
            "SELECT job, slot, data_type, name, bytes, sha256, archived_at, object FROM files "
            "WHERE job = ?1 AND slot = ?2 ORDER BY data_type, name") {}

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
                unix_or_null(file.archived_at),
                file.object}
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
    file.object = query.get_text(7);
    result.push_back(std::move(file));
  }
  return result;
}

}  // namespace gio::state
