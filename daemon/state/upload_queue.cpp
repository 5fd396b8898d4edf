// The sink's queue (issue 15): slots archived locally and waiting to land on their
// remote, in the slots table's `uploading` state (slots.cpp has the rest of the table).

#include <algorithm>
#include <limits>

#include "state/sqlite.hpp"
#include "state/state_store.hpp"
#include "state/statements.hpp"

namespace gio::state {

std::vector<SlotRecord> StateStore::due_uploads(Instant now, std::size_t limit,
                                                std::span<const std::string> jobs) {
  const auto capped = static_cast<std::int64_t>(
      std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max()));
  std::vector<SlotRecord> records;
  sqlite::Query query{impl_->statements->due_uploads, to_unix(now), capped, json_array(jobs)};
  while (query.step()) {
    records.push_back(read_slot(query));
  }
  return records;
}

int StateStore::resume_uploads(Instant now) {
  sqlite::Transaction transaction{impl_->db};
  sqlite::Query{impl_->statements->resume_uploads, to_unix(now)}.run();
  const int uploading = impl_->db.changes();
  transaction.commit();
  return uploading;
}

int StateStore::pull_in_uploads(std::string_view job, Instant beyond, Instant to) {
  sqlite::Transaction transaction{impl_->db};
  sqlite::Query{impl_->statements->pull_in_uploads, job, to_unix(beyond), to_unix(to)}.run();
  const int pulled = impl_->db.changes();
  transaction.commit();
  return pulled;
}

bool StateStore::requeue_upload(std::string_view job, std::string_view slot, Instant now) {
  sqlite::Transaction transaction{impl_->db};
  sqlite::Query{impl_->statements->requeue_upload, job, slot, to_unix(now)}.run();
  const bool changed = impl_->db.changes() > 0;
  transaction.commit();
  return changed;
}

UploadBacklog StateStore::upload_backlog(std::span<const std::string> jobs) {
  const std::string names = json_array(jobs);
  sqlite::Transaction transaction{impl_->db, sqlite::Begin::deferred};
  UploadBacklog backlog;
  {
    sqlite::Query query{impl_->statements->backlog_slots, names};
    if (query.step()) {
      backlog.slots = static_cast<int>(query.get_int64(0));
      if (!query.is_null(1)) {
        backlog.oldest_since = from_unix(query.get_int64(1));
      }
    }
  }
  {
    sqlite::Query query{impl_->statements->backlog_bytes, names};
    if (query.step()) {
      backlog.bytes = static_cast<std::uint64_t>(query.get_int64(0));
    }
  }
  transaction.commit();
  return backlog;
}

}  // namespace gio::state
