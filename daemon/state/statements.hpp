#pragma once

// Private to daemon/state/: what the .cpp files of StateStore share, namely its
// connection and the statements prepared on it. Nothing outside the module includes it.

#include <filesystem>
#include <optional>
#include <span>
#include <string>

#include "state/sqlite.hpp"
#include "state/state_store.hpp"

namespace gio::state {

// Statements are prepared once per connection; every value is bound. One group per
// file that runs them, so each statement's SQL sits beside the calls that use it; each
// group's constructor is defined in that file.

// state_store.cpp: schema version, data version and the kv table.
struct StoreStatements {
  explicit StoreStatements(sqlite::Database& db);

  sqlite::Statement user_version;
  sqlite::Statement data_version;
  sqlite::Statement get_value;
  sqlite::Statement set_value;
};

// slots.cpp: the slot rows.
struct SlotStatements {
  explicit SlotStatements(sqlite::Database& db);

  sqlite::Statement insert_slot;
  sqlite::Statement due;
  sqlite::Statement first_next_at_in_state;
  sqlite::Statement find;
  sqlite::Statement range;
  sqlite::Statement jobs;
  sqlite::Statement count_by_state;
  sqlite::Statement count_in_state;
  sqlite::Statement oldest_in_state;
  sqlite::Statement newest_in_state;
  sqlite::Statement job_next_in_state;
  sqlite::Statement not_done;
  sqlite::Statement update_slot;
  sqlite::Statement resume_downloads;
  sqlite::Statement pull_in_next_at;
  sqlite::Statement not_done_before;
  sqlite::Statement count_at_risk;
  sqlite::Statement oldest_active_start;
  sqlite::Statement due_fresh_first;
  sqlite::Statement later_finished;
  sqlite::Statement due_uploads;
  sqlite::Statement resume_uploads;
  sqlite::Statement pull_in_uploads;
  sqlite::Statement requeue_upload;
  sqlite::Statement done_before;
  sqlite::Statement add_notices;
  sqlite::Statement backlog_slots;
  sqlite::Statement backlog_bytes;
};

// files.cpp: the files table.
struct FileStatements {
  explicit FileStatements(sqlite::Database& db);

  sqlite::Statement upsert_file;
  sqlite::Statement files;
  sqlite::Statement files_with_rows;
  sqlite::Statement files_between;
};

// requeue.cpp: queueing slots again and forgetting their files.
struct RequeueStatements {
  explicit RequeueStatements(sqlite::Database& db);

  sqlite::Statement requeue_insert;
  sqlite::Statement requeue_update;
  sqlite::Statement forget_slot_files;
  sqlite::Statement forget_type_files;
  sqlite::Statement forget_file;
};

// schemas.cpp: the header history (issue 16).
struct SchemaStatements {
  explicit SchemaStatements(sqlite::Database& db);

  sqlite::Statement schema_history;
  sqlite::Statement current_schemas;
  sqlite::Statement delete_schema;
  sqlite::Statement upsert_schema;
};

// progress.cpp: the bytes of downloading slots (issue 17).
struct ProgressStatements {
  explicit ProgressStatements(sqlite::Database& db);

  sqlite::Statement upsert_progress;
  sqlite::Statement job_progress;
  sqlite::Statement clear_progress;
};

// readiness.cpp: when slots were first seen FINISHED (issue 18).
struct ReadinessStatements {
  explicit ReadinessStatements(sqlite::Database& db);

  sqlite::Statement upsert_readiness;
  sqlite::Statement trim_readiness;
  sqlite::Statement readiness;
  sqlite::Statement readiness_jobs;
  sqlite::Statement forget_readiness;
};

// A row of the slots table's columns as SlotRecord (slots.cpp's select_slots).
SlotRecord read_slot(const sqlite::Query& row);

// A JSON array of strings (RFC 8259 escapes: a vendor's header is data too), for
// SQLite's json_each: one bound value however many names (slots.cpp).
std::string json_array(std::span<const std::string> texts);

// Every group under one name, so a call reads impl_->statements->due whichever file
// it is in.
struct Statements : StoreStatements,
                    SlotStatements,
                    FileStatements,
                    RequeueStatements,
                    SchemaStatements,
                    ProgressStatements,
                    ReadinessStatements {
  explicit Statements(sqlite::Database& db)
      : StoreStatements(db),
        SlotStatements(db),
        FileStatements(db),
        RequeueStatements(db),
        SchemaStatements(db),
        ProgressStatements(db),
        ReadinessStatements(db) {}
};

class StateStore::Impl {
 public:
  // read_write configures the connection and migrates the schema; the read-only
  // accesses change nothing and accept only the schema this program writes.
  Impl(const std::filesystem::path& path, sqlite::Access access);

  sqlite::Database db;
  std::optional<Statements> statements;
  // What the connection waits for another process's lock (set_busy_timeout).
  std::chrono::milliseconds busy_timeout{10'000};

 private:
  void configure();
  void migrate();
  void migrate_schema();
  void check_schema();
};

}  // namespace gio::state
