#pragma once

// Which archive a state database describes (issue 14, items 6 and 10). The database's kv
// table records the archive's id (archive/identity.hpp) and path on first use; every
// command that reads the database against the archive checks them first, so that `gaps`
// never calls another archive complete and a new database beside an old archive does not
// fetch everything again. `adopt-archive` is the one deliberate way to change them.

#include <filesystem>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "state/state_store.hpp"

namespace gio::cli {

// What the database records of its archive (kv archive/id and archive/path).
struct RecordedArchive {
  std::optional<std::string> id;
  std::optional<std::string> path;
};

// Why `archive_dir` (whose identity file holds `on_disk`, nullopt when none) is not the
// archive that `recorded` describes, naming both paths and what to do; "" when it is, or
// when neither has an identity yet (a new installation, or one made before identities).
std::string archive_mismatch(const RecordedArchive& recorded,
                             const std::optional<std::string>& on_disk,
                             const std::filesystem::path& archive_dir,
                             const std::filesystem::path& state_db);

// Throws std::runtime_error with archive_mismatch's message. Reads only.
void check_archive(state::StateStore& store, const config::Config& config);

// For the daemon, once it holds the archive: check_archive, then, when neither side has
// an identity yet, creates the archive's identity file and records it.
void bind_archive(state::StateStore& store, const config::Config& config);

// status, gaps and verify: the database read-only and checked against the archive.
state::StateStore open_for_reading(const config::Config& config);
// backfill, retry and verify --repair: an existing database, checked against the archive.
state::StateStore open_for_queueing(const config::Config& config);

// `adopt-archive`: makes the database describe config.archive_dir from now on (a moved
// archive, or a deliberate change of archive_dir); 0 when done, 1 with a message when
// the daemon runs on the database or the archive.
int adopt_archive(const config::Config& config);

}  // namespace gio::cli
