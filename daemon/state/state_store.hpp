#pragma once

// The state store: every slot's fate, the files archived for it, and a small
// key/value table, in one SQLite file that the daemon and the CLI share.
//
// One StateStore is one connection, used from one thread. Every public call that
// changes something is exactly one transaction, committed before it returns, so
// a caller may announce the change (or act on it) as soon as the call is back;
// inside a StateStore::Batch, only once the batch is committed.
// Time is always passed in: the store never reads a clock.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "slot/slot.hpp"
#include "state/state_error.hpp"

namespace gio::state {

// The SQLite library's version, e.g. "3.40.1" (`gio-exporter version`).
std::string_view sqlite_version();

namespace sqlite {
class Transaction;
}

// uploading: complete in the local archive, not yet landed on the job's sink (issue 15);
// only jobs with a sink have it. Its data is local: never lost, never given up on.
enum class SlotState { pending, waiting, downloading, uploading, done, failed, lost };

std::string_view to_string(SlotState state);
std::optional<SlotState> parse_slot_state(std::string_view text);

struct SlotRecord {
  std::string job;
  std::string slot;  // slot name, e.g. "2026-11-22T03"
  Instant start;     // slot start (UTC)
  SlotState state = SlotState::pending;
  int attempts = 0;        // API asks made for this slot
  Instant next_at;         // when the scheduler looks at it next
  std::string api_status;  // last status the API answered ("RUNNING", ...); "" before the first
  std::string last_error;  // "" when none
  Instant created_at, updated_at;
  std::optional<Instant> done_at;  // set while the state is done
  // Bitmask of once-only log events already written for the slot (the scheduler owns
  // the bit meanings); 0 for a new or re-queued slot.
  int notices = 0;
  // Set while the state is uploading: since when (a failed try keeps it).
  std::optional<Instant> uploading_since{};

  friend bool operator==(const SlotRecord&, const SlotRecord&) = default;
};

struct PlannedSlot {
  std::string slot;
  Instant start;
  Instant next_at;
};

struct SlotUpdate {
  SlotState state;
  Instant next_at;
  std::optional<std::string> api_status{};  // stored when set
  std::optional<std::string> last_error{};  // stored when set ("" clears)
  bool count_attempt = false;               // attempts += 1
  std::optional<int> notices{};             // stored when set
};

struct ArchivedFile {
  std::string job, slot, data_type, name;
  std::uint64_t bytes = 0;
  std::string sha256;
  // When it was archived; stored when set (the store does not read the clock).
  std::optional<Instant> archived_at{};
  // The object it was fetched from: its link without the query (which signs it), so
  // that a later answer's part with the same name counts only if it is the same object.
  // "" for rows recorded before this was kept.
  std::string object{};
  // CSV records, header excluded; nullopt when not counted (size-only verify, or
  // recorded before rows were counted).
  std::optional<std::uint64_t> rows{};
  // A daily raw part only: records per Beijing hour of its `time` column (24 entries);
  // empty otherwise.
  std::vector<std::uint64_t> rows_by_hour{};

  friend bool operator==(const ArchivedFile&, const ArchivedFile&) = default;
};

struct JobSummary {
  std::map<SlotState, int> counts;         // every state present, 0 when none
  std::optional<std::string> newest_done;  // slot name
  std::optional<std::string> oldest_not_done;
  std::optional<Instant> next_action;           // min next_at over pending/waiting/downloading
  std::optional<std::string> next_action_slot;  // the slot of next_action
};

// The uploading slots of some jobs (one sink's): how many, their bytes (as the files
// table has them), and since when the oldest waits.
struct UploadBacklog {
  int slots = 0;
  std::uint64_t bytes = 0;
  std::optional<Instant> oldest_since;
};

// One slot named to requeue (backfill, retry, verify --repair).
struct RequeueTarget {
  std::string slot;
  Instant start;
};

// What requeue does to a slot it queues: it becomes `pending`, due now, with its
// notices cleared (and its row is created when missing); last_error and api_status are
// kept until the next answer.
struct Requeue {
  // attempts = 0 and created_at = now, so give_up_after counts afresh from now (it
  // counts from max(ready, created_at) and only once the slot has been asked for).
  bool reset_attempts = false;
  // Deletes every files row of the slot, so nothing archived before is kept as is.
  bool forget_all_files = false;
  // Deletes these files rows: (data_type, name); an empty name means every row of
  // the data type. The daemon keeps a recorded part whose file has the recorded size and
  // sha256 and whose link names the same object; forgetting it fetches it again.
  std::vector<std::pair<std::string, std::string>> forget_files{};
};

// Decides, inside requeue's transaction, what happens to one target given its current
// row (nullopt: the store does not hold it): a Requeue to queue it, nullopt to leave it.
using RequeueDecision =
    std::function<std::optional<Requeue>(const RequeueTarget&, const std::optional<SlotRecord>&)>;

struct RequeueOptions {
  bool dry_run = false;  // decide and apply, then roll back: nothing changes
  // Runs after every change is applied, before the commit (not on a dry run): file-system
  // steps that must be done before the daemon can see the queued slots.
  std::function<void()> before_commit{};
};

// Hourly against daily (issue 16). One date and data type compared: `hours` is JSON, per Beijing
// hour [hourly, daily].
struct Reconciliation {
  std::string job, date, data_type, daily_job;
  std::uint64_t hourly_rows = 0, daily_rows = 0;
  std::string hours;
  bool match = true;  // the verdict: 'match' or 'mismatch'
  Instant reconciled_at;

  friend bool operator==(const Reconciliation&, const Reconciliation&) = default;
};

// One header of a job and data type (issue 16): the columns of its partitions from
// since_slot on, until the next record's since_slot (scheduler/schema_watch.hpp).
struct SchemaRecord {
  std::string since_slot;
  std::vector<std::string> columns{};
  Instant seen_at{};  // when the daemon stored it

  friend bool operator==(const SchemaRecord&, const SchemaRecord&) = default;
};

// How far a downloading slot has got (issue 17; progress.cpp): its bytes fetched so far
// over all its files, their total when every file's size is known, and when the daemon
// wrote it. Meaningful only while the slot is downloading.
struct SlotProgress {
  std::uint64_t bytes_done = 0;
  std::optional<std::uint64_t> bytes_total{};
  Instant updated_at{};

  friend bool operator==(const SlotProgress&, const SlotProgress&) = default;
};

class StateStore {
 public:
  // Groups every change made through the store while it is open into one transaction,
  // committed (one fsync) by commit(), rolled back when destroyed uncommitted: for
  // sweeps that change many slots at once (planning every job at start, the retention
  // watch after an outage), where a commit per call kept the loop busy for seconds.
  // Each call inside stays atomic on its own (a savepoint, or one statement; plan says
  // its exception) but is durable, and may be announced, only after commit(). Batches nest.
  class Batch {
   public:
    explicit Batch(StateStore& store);
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;
    void commit();

   private:
    std::unique_ptr<sqlite::Transaction> transaction_;
  };

  // Opens or creates the database file (its parent folder must exist): WAL
  // journal, synchronous=FULL (state changes are few; losing one on power loss
  // could re-download or, worse, forget a done slot), busy_timeout 10 s so the CLI
  // and the daemon share the file, foreign_keys on, schema created/migrated by
  // PRAGMA user_version inside one transaction. A new file gets mode 0600.
  // Throws StateError naming the path and SQLite's message, also when the file
  // is not a database or was written by a newer schema.
  explicit StateStore(const std::filesystem::path& path);
  // Opens an existing database for reading only (status, gaps, verify): it never
  // creates the file, never writes it, its -wal or its folder, never checkpoints, and
  // works for a user who may read the files but not write them or their folder. Calls
  // that write throw StateError. Throws StateError naming the path when the file is
  // missing or unreadable, is not a database, or holds another schema version (a
  // reader does not migrate; it waits up to 2 s for a daemon creating or migrating it).
  // For the commands that queue work (backfill, retry, verify --repair): read-write, but
  // a missing file is an error naming the path, never a new empty database that the
  // daemon would not read.
  static StateStore open_existing(const std::filesystem::path& path);
  static StateStore open_read_only(const std::filesystem::path& path);
  ~StateStore();
  StateStore(StateStore&&) noexcept;
  StateStore& operator=(StateStore&&) noexcept;

  int schema_version() const;
  // PRAGMA quick_check: throws StateError (SQLITE_CORRUPT) naming the first problems
  // SQLite reports when the file is damaged. Reads the whole file: for startup only.
  void check_integrity();
  // The schema version this program creates and migrates to.
  static int latest_schema_version();

  // Inserts the slots of `job` the store does not hold yet as `pending`; one
  // transaction; returns how many were new. Existing rows are left untouched. Inside a
  // Batch it takes no savepoint (planning at start calls it for every job): when it
  // throws, the rows it inserted are undone only with the batch, which the exception
  // rolls back unless the caller catches it inside the batch.
  int plan(std::string_view job, std::span<const PlannedSlot> slots, Instant now);
  // Slots of `jobs` in pending/waiting/downloading with next_at <= now, closest to
  // the vendor's retention loss first (start ascending, then job), at most `limit`.
  // Rows of jobs no longer configured are left out, so they can never crowd out work.
  std::vector<SlotRecord> due(Instant now, std::size_t limit, std::span<const std::string> jobs);
  // The slots due as `due` picks them, except that the rows already asked whose last
  // answer was `backlog_status` (NOT_EXISTS) come after every other due row: what the
  // scheduler serves first when a backlog exceeds the API budget.
  std::vector<SlotRecord> due_fresh_first(Instant now, std::size_t limit,
                                          std::span<const std::string> jobs,
                                          std::string_view backlog_status);
  // Whether a slot of `job` later than `start` is downloading or done: the vendor has
  // exports after this hour, so one it still knows nothing about is unlikely to come.
  bool has_later_finished(std::string_view job, Instant start);
  // Earliest next_at over pending/waiting/downloading; nullopt when none.
  std::optional<Instant> next_due();
  std::optional<SlotRecord> find(std::string_view job, std::string_view slot);
  // Rows of a job with from <= start < to, start ascending.
  std::vector<SlotRecord> slots(std::string_view job, Instant from, Instant to);
  // Every row of a job that is not done (lost ones included), start ascending.
  std::vector<SlotRecord> not_done(std::string_view job);
  // Job names present in the store, sorted.
  std::vector<std::string> jobs();
  JobSummary summarize(std::string_view job);
  // How many slots of `job` are in each of `states` (0 when none), one snapshot. Each is
  // an index range of that state only: unlike summarize, which counts every state, it
  // does not read the years of done rows (the daemon's STATUS line every 30 s).
  std::map<SlotState, int> count_states(std::string_view job, std::span<const SlotState> states);
  // One transaction. Throws StateError (code SQLITE_NOTFOUND) when the slot does
  // not exist. state=done sets done_at = now; any other state clears it.
  void update(std::string_view job, std::string_view slot, const SlotUpdate& update, Instant now);
  // Downloading slots left behind by a crash become due now (a later next_at is
  // pulled in to `now`), and their progress rows go (the downloads start again: what
  // was counted before no longer says how far they are); returns how many slots are
  // downloading.
  int resume_downloads(Instant now);
  // Slots of `job` in pending/waiting/downloading whose next_at lies beyond `beyond`
  // become due at `to` (a wall-clock jump left them far ahead of any schedule); one
  // transaction; returns how many. A slot whose last answer was `backlog.status` (a
  // NOT_EXISTS backlog, backed off on purpose) is pulled in only beyond
  // `backlog.beyond`.
  struct Backlog {
    std::string_view status;
    Instant beyond;
  };
  int pull_in_next_at(std::string_view job, Instant beyond, const Backlog& backlog, Instant to);
  // Records (insert or replace by job+slot+data_type+name) a file verified and
  // archived. The slot must exist (StateError, SQLITE_CONSTRAINT_FOREIGNKEY).
  void record_file(const ArchivedFile& file);
  // The files recorded for a slot, by data type then name.
  std::vector<ArchivedFile> files(std::string_view job, std::string_view slot);
  // The files of `job` whose slot name lies in [first_slot, last_slot] (names sort as
  // their starts do), by slot, data type, name: one query for a whole calendar (issue 17).
  std::vector<ArchivedFile> files_between(std::string_view job, std::string_view first_slot,
                                          std::string_view last_slot);
  // The files of `job` named `name` with at least `rows` rows, by slot then data type
  // (e.g. every chart.csv at the vendor's row cap: the chart was cut).
  std::vector<ArchivedFile> files_with_rows(std::string_view job, std::string_view name,
                                            std::uint64_t rows);
  // Slots of `jobs` in pending/waiting/downloading/failed with start < start_before,
  // start ascending (then job): slots nearing, or past, the vendor's retention.
  std::vector<SlotRecord> not_done_before(Instant start_before, std::span<const std::string> jobs);
  // How many slots of `job` are neither done nor lost with start < start_before.
  int count_at_risk(std::string_view job, Instant start_before);
  // SQLite's PRAGMA data_version for this connection: it changes when another
  // connection (another process: backfill, retry, verify) commits a change, so the
  // daemon can poll it cheaply to notice queued work.
  std::int64_t data_version();
  // How many rows this connection has inserted, updated or deleted since it opened
  // (sqlite3_total_changes64): with data_version, a cheap test of whether anything in the
  // store may have changed, the daemon's own writes included.
  std::int64_t own_changes();
  // The start of the oldest slot of `job` in pending/waiting/downloading/failed: the
  // next one the vendor's retention will take, unless it is archived first.
  std::optional<Instant> oldest_not_done_start(std::string_view job);
  // How long a call waits for another process's lock before it throws a busy StateError
  // (10 s from the constructors). The daemon's event loop sets a few milliseconds and
  // waits on timers between tries instead (scheduler/store_waits.hpp): SQLite waits by
  // sleeping, and a sleep on the loop stalls /healthz, signals and every other task.
  void set_busy_timeout(std::chrono::milliseconds timeout);
  // Writes one small row (kv "health/written_at"), and `room` bytes more when asked,
  // waiting at most `wait` for another process's transaction: throws StateError when the
  // database cannot be written.
  void check_writable(Instant now, std::chrono::milliseconds wait, std::size_t room = 0);
  // In one IMMEDIATE transaction: for each target in order, reads its row, calls
  // `decide`, and applies the Requeue it returns (see Requeue). Returns how many were
  // queued. A StateError rolls everything back.
  int requeue(std::string_view job, std::span<const RequeueTarget> targets,
              const RequeueDecision& decide, Instant now, const RequeueOptions& options = {});

  // --- Sinks (issue 15) ---
  // Slots of `jobs` in uploading with next_at <= now, start ascending (then job), at
  // most `limit`.
  std::vector<SlotRecord> due_uploads(Instant now, std::size_t limit,
                                      std::span<const std::string> jobs);
  // Uploading slots whose next_at lies ahead (a back-off from before a stop) become due
  // now; returns how many slots are uploading.
  int resume_uploads(Instant now);
  // Uploading slots of `job` whose next_at lies beyond `beyond` become due at `to` (a
  // wall-clock jump left them far ahead); returns how many.
  int pull_in_uploads(std::string_view job, Instant beyond, Instant to);
  // Puts a done slot back to uploading, due now, its notices cleared (verify --sink
  // --repair, when the local copy is whole). One transaction; false (nothing changed)
  // when the slot is not done.
  bool requeue_upload(std::string_view job, std::string_view slot, Instant now);
  // Done slots of `job` with done_at <= done_before, every notice bit of `with` set and
  // none of `without`, done_at ascending, at most `limit`: landed slots whose local copy
  // may go.
  std::vector<SlotRecord> done_before(std::string_view job, Instant done_before, int with,
                                      int without, std::size_t limit);
  // Sets notice bits on a slot whatever its state, leaving everything else (done_at
  // included) as it is. Throws StateError (SQLITE_NOTFOUND) when the slot does not exist.
  void add_notices(std::string_view job, std::string_view slot, int notices);
  UploadBacklog upload_backlog(std::span<const std::string> jobs);

  // --- Completeness (issue 16; reconciliations.cpp) ---
  // Inserts or replaces the rows of one date (job, date, data_type), in one transaction.
  void record_reconciliations(std::span<const Reconciliation> rows);
  // The date's comparison of `job` as a whole: its earlier rows go (a type no longer
  // compared leaves none behind) and `rows` are written, in one transaction.
  void replace_reconciliations(std::string_view job, std::string_view date,
                               std::span<const Reconciliation> rows);
  // The rows of `job` with from_date <= date <= to_date (YYYY-MM-DD), by date then type.
  std::vector<Reconciliation> reconciliations(std::string_view job, std::string_view from_date,
                                              std::string_view to_date);
  // The latest date's row of each data type of `job` (for the metrics).
  std::vector<Reconciliation> latest_reconciliations(std::string_view job);

  // --- Schemas (issue 16; schemas.cpp) ---
  // The header history of a job's data type, since_slot ascending.
  std::vector<SchemaRecord> schemas(std::string_view job, std::string_view data_type);
  // The current (last by since_slot) header of each data type of `job`, by data type.
  std::map<std::string, SchemaRecord> current_schemas(std::string_view job);
  // In one transaction: deletes the record at `remove` (when set), then stores `record`
  // (replacing one at the same since_slot).
  void store_schema(std::string_view job, std::string_view data_type, const SchemaRecord& record,
                    const std::optional<std::string>& remove = std::nullopt);

  // --- Progress (issue 17; progress.cpp) ---
  // Inserts or replaces the slot's row while the slot is downloading; does nothing when
  // it is not (or does not exist). The row goes by itself when the slot's state changes
  // to anything but downloading (a trigger) or the slot is deleted.
  void set_progress(std::string_view job, std::string_view slot, const SlotProgress& progress);
  // The rows of `job`'s slots that are downloading now, by slot name (a row left by a
  // crash for a slot in another state is not returned).
  std::map<std::string, SlotProgress> progress(std::string_view job);

  // --- Readiness (issue 18; readiness.cpp) ---
  // Records that `slot` of `job` was first seen FINISHED `delay` after its floor (one row
  // per slot: a later call replaces it), and keeps only the `keep` latest slots of the
  // job and readiness class, so the table stays small and old regimes fade out.
  void record_readiness(std::string_view job, std::string_view readiness_class,
                        std::string_view slot, std::chrono::seconds delay, Instant seen_at,
                        int keep);
  // The recorded delays of a job and class, latest slot first.
  std::vector<std::chrono::seconds> readiness(std::string_view job,
                                              std::string_view readiness_class);
  // The same with when each was seen (the model compares classes by it).
  struct ReadinessSeen {
    std::chrono::seconds delay;
    Instant seen_at;
  };
  std::vector<ReadinessSeen> readiness_seen(std::string_view job, std::string_view readiness_class);
  // Deletes the delays of every job not in `jobs` (one removed from the config): a job
  // added again later under that name starts afresh. Returns how many rows went.
  int forget_readiness_except(const std::vector<std::string>& jobs);

  // Small key/value table (later the cached auth code).
  std::optional<std::string> get_value(std::string_view key);
  void set_value(std::string_view key, std::string_view value);

 private:
  class Impl;
  explicit StateStore(std::unique_ptr<Impl> impl);
  static std::unique_ptr<Impl> open_once(const std::filesystem::path& path);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gio::state
