#include "cli/archive_binding.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "archive/archive.hpp"
#include "archive/identity.hpp"
#include "state/db_lock.hpp"

namespace gio::cli {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kIdKey = "archive/id";
constexpr std::string_view kPathKey = "archive/path";
// A daemon starting on a new archive writes its identity file, then records it: a
// command reading in between sees one side only, so it looks again for this long.
constexpr std::chrono::milliseconds kBindingWait{2'000};

// The path recorded and compared: absolute, symlinks of its existing parts resolved, so
// that a link to the archive is the archive.
std::string resolved(const fs::path& path) {
  std::error_code error;
  fs::path out = fs::weakly_canonical(path, error);
  if (error) {
    out = fs::absolute(path).lexically_normal();
  }
  if (!out.has_filename() && out.has_parent_path() && out != out.root_path()) {
    out = out.parent_path();
  }
  return out.string();
}

RecordedArchive recorded_in(state::StateStore& store) {
  return {store.get_value(kIdKey), store.get_value(kPathKey)};
}

std::string describe(const RecordedArchive& recorded) {
  return recorded.path.value_or("?") + " (id " + recorded.id.value_or("?") + ")";
}

}  // namespace

std::string archive_mismatch(const RecordedArchive& recorded,
                             const std::optional<std::string>& on_disk, const fs::path& archive_dir,
                             const fs::path& state_db) {
  const std::string here = archive_dir.string();
  const std::string adopt =
      "; if this folder is to be the database's archive from now on (a moved archive, a "
      "deliberate change), stop the daemon and run `gio-exporter adopt-archive`, then "
      "`gio-exporter verify`";
  if (!recorded.id) {
    if (!on_disk) {
      return "";
    }
    return "the archive " + here + " has an identity (id " + *on_disk + ", in " +
           std::string{archive::kIdentityName} + ") that the state database " + state_db.string() +
           " does not record: it belongs to another database, or this one is new or was "
           "replaced, and running would fetch everything that archive holds again; point "
           "state_db at the archive's own database" +
           adopt;
  }
  const std::string theirs = "the state database " + state_db.string() + " describes the archive " +
                             describe(recorded) + ", but archive_dir is " + here;
  if (!on_disk) {
    return theirs + ", which has no identity file (" + std::string{archive::kIdentityName} +
           "): a new, emptied or other folder; point archive_dir back at " +
           recorded.path.value_or("?") + adopt;
  }
  if (*on_disk != *recorded.id) {
    return theirs + ", another archive (id " + *on_disk + "); point archive_dir back at " +
           recorded.path.value_or("?") + ", or state_db at that archive's database" + adopt;
  }
  if (recorded.path && *recorded.path != resolved(archive_dir)) {
    return theirs + ", a move or a copy of it (same id); point archive_dir back at " +
           *recorded.path + adopt;
  }
  return "";
}

void check_archive(state::StateStore& store, const config::Config& config) {
  const std::string why =
      archive_mismatch(recorded_in(store), archive::read_identity(config.archive_dir),
                       config.archive_dir, config.state_db);
  if (!why.empty()) {
    throw std::runtime_error(why);
  }
}

namespace {

// check_archive for the commands that read while a daemon may be binding the archive.
void check_archive_waiting(state::StateStore& store, const config::Config& config) {
  const auto give_up = std::chrono::steady_clock::now() + kBindingWait;
  for (;;) {
    const RecordedArchive recorded = recorded_in(store);
    const std::optional<std::string> on_disk = archive::read_identity(config.archive_dir);
    const std::string why =
        archive_mismatch(recorded, on_disk, config.archive_dir, config.state_db);
    if (why.empty()) {
      return;
    }
    if (recorded.id.has_value() == on_disk.has_value() ||
        std::chrono::steady_clock::now() >= give_up) {
      throw std::runtime_error(why);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
}

}  // namespace

void bind_archive(state::StateStore& store, const config::Config& config) {
  check_archive(store, config);
  if (store.get_value(kIdKey)) {
    return;
  }
  // The caller holds the archive's lock, so no other process writes the file meanwhile.
  const std::string id = archive::create_identity(config.archive_dir, config.archive_umask);
  state::StateStore::Batch batch{store};
  store.set_value(kIdKey, id);
  store.set_value(kPathKey, resolved(config.archive_dir));
  batch.commit();
  spdlog::info("the state database {} now records the archive {} (id {})", config.state_db.string(),
               config.archive_dir.string(), id);
}

state::StateStore open_for_reading(const config::Config& config) {
  state::StateStore store = state::StateStore::open_read_only(config.state_db);
  check_archive_waiting(store, config);
  return store;
}

state::StateStore open_for_queueing(const config::Config& config) {
  state::StateStore store = state::StateStore::open_existing(config.state_db);
  check_archive_waiting(store, config);
  return store;
}

int adopt_archive(const config::Config& config) {
  // The database's lock first (no daemon runs on it), then the archive's (none runs on
  // the archive with another database): neither may change under a running daemon.
  fs::create_directories(config.state_db.parent_path());
  const state::DatabaseLock lock{config.state_db};
  state::StateStore store{config.state_db};
  const archive::Archive archive{config.archive_dir, config.archive_umask};
  if (!archive.exclusive()) {
    std::cerr << "gio-exporter: another gio-exporter is running on the archive "
              << config.archive_dir.string() << "; stop it first\n";
    return 1;
  }
  const RecordedArchive before = recorded_in(store);
  std::optional<std::string> id = archive::read_identity(config.archive_dir);
  if (!id) {
    id = archive::create_identity(config.archive_dir, config.archive_umask);
  }
  const std::string path = resolved(config.archive_dir);
  if (before.id == id && before.path == path) {
    std::cout << "the state database " << config.state_db.string()
              << " already describes the archive " << path << " (id " << *id
              << "); nothing to do\n";
    return 0;
  }
  state::StateStore::Batch batch{store};
  store.set_value(kIdKey, *id);
  store.set_value(kPathKey, path);
  batch.commit();
  std::cout << "the state database " << config.state_db.string() << " now describes the archive "
            << path << " (id " << *id << ")"
            << (before.id ? "; before: " + describe(before) : std::string{"; before: none"})
            << "\nthe slots it records as done are now taken to be in this archive: run "
               "`gio-exporter verify` to check them (`verify --repair` queues the damaged "
               "ones still inside the vendor's retention)\n";
  return 0;
}

}  // namespace gio::cli
