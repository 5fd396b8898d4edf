#include <algorithm>
#include <charconv>
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

// rows_by_hour as the column keeps it: a JSON array of counts ("[3,0,...]"); NULL when empty.
std::optional<std::string> hours_text(const std::vector<std::uint64_t>& hours) {
  if (hours.empty()) {
    return std::nullopt;
  }
  std::string text = "[";
  for (std::size_t i = 0; i < hours.size(); ++i) {
    text += (i == 0 ? "" : ",") + std::to_string(hours[i]);
  }
  return text + "]";
}

// The reverse of hours_text; empty for anything else (a value this code did not write).
std::vector<std::uint64_t> parse_hours(std::string_view text) {
  std::vector<std::uint64_t> hours;
  if (text.size() < 2 || text.front() != '[' || text.back() != ']') {
    return {};
  }
  text = text.substr(1, text.size() - 2);
  while (!text.empty()) {
    const std::size_t comma = std::min(text.find(','), text.size());
    std::uint64_t value = 0;
    const std::string_view digits = text.substr(0, comma);
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (error != std::errc{} || end != digits.data() + digits.size()) {
      return {};
    }
    hours.push_back(value);
    text.remove_prefix(std::min(comma + 1, text.size()));
  }
  return hours;
}

std::optional<std::int64_t> rows_or_null(const std::optional<std::uint64_t>& rows) {
  if (!rows) {
    return std::nullopt;
  }
  if (*rows > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    throw StateError("row count out of range for the state database", SQLITE_TOOBIG);
  }
  return static_cast<std::int64_t>(*rows);
}

}  // namespace

FileStatements::FileStatements(sqlite::Database& db)
    : upsert_file(
          db,
          "INSERT INTO files (job, slot, data_type, name, bytes, sha256, archived_at, object, "
          "rows, rows_by_hour) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
          "ON CONFLICT (job, slot, data_type, name) DO UPDATE SET "
          "bytes = excluded.bytes, sha256 = excluded.sha256, "
          "archived_at = excluded.archived_at, object = excluded.object, "
          "rows = excluded.rows, rows_by_hour = excluded.rows_by_hour"),
      files(db,
            "SELECT job, slot, data_type, name, bytes, sha256, archived_at, object, rows, "
            "rows_by_hour FROM files WHERE job = ?1 AND slot = ?2 ORDER BY data_type, name"),
      files_with_rows(db,
                      "SELECT job, slot, data_type, name, bytes, sha256, archived_at, object, "
                      "rows, rows_by_hour FROM files WHERE job = ?1 AND name = ?2 AND rows >= ?3 "
                      "ORDER BY slot, data_type"),
      files_between(db,
                    "SELECT job, slot, data_type, name, bytes, sha256, archived_at, object, "
                    "rows, rows_by_hour FROM files WHERE job = ?1 AND slot >= ?2 AND slot <= ?3 "
                    "ORDER BY slot, data_type, name") {}

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
                file.object,
                rows_or_null(file.rows),
                hours_text(file.rows_by_hour)}
      .run();
  transaction.commit();
}

namespace {

// One row of the files statements' shared column list.
ArchivedFile read_file(sqlite::Query& query) {
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
  if (!query.is_null(8)) {
    file.rows = static_cast<std::uint64_t>(query.get_int64(8));
  }
  if (!query.is_null(9)) {
    file.rows_by_hour = parse_hours(query.get_text(9));
  }
  return file;
}

}  // namespace

std::vector<ArchivedFile> StateStore::files(std::string_view job, std::string_view slot) {
  std::vector<ArchivedFile> result;
  sqlite::Query query{impl_->statements->files, job, slot};
  while (query.step()) {
    result.push_back(read_file(query));
  }
  return result;
}

std::vector<ArchivedFile> StateStore::files_with_rows(std::string_view job, std::string_view name,
                                                      std::uint64_t rows) {
  std::vector<ArchivedFile> result;
  sqlite::Query query{impl_->statements->files_with_rows, job, name, rows_or_null(rows)};
  while (query.step()) {
    result.push_back(read_file(query));
  }
  return result;
}

std::vector<ArchivedFile> StateStore::files_between(std::string_view job,
                                                    std::string_view first_slot,
                                                    std::string_view last_slot) {
  std::vector<ArchivedFile> result;
  sqlite::Query query{impl_->statements->files_between, job, first_slot, last_slot};
  while (query.step()) {
    result.push_back(read_file(query));
  }
  return result;
}

}  // namespace gio::state
