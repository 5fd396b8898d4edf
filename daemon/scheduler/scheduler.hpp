#pragma once

// The scheduler composes the other modules: it plans each job's slots into the state
// store, runs one pass of slot work (work/) per due slot, and turns each pass's outcome
// into the slot's state, event line, metrics and hook (settle.cpp). It also watches the
// vendor's retention: slots close to loss are warned about, and slots past it marked lost.
//
//   scheduler.cpp  the loop: reload, run, run_once, start_due_work
//   planning.cpp   planning slots into the store, and the retention watch
//   settle.cpp     one pass on one slot and what its outcome records
//   observer.cpp   what slot work reports as it happens: log lines and metrics
//   store_waits    waiting out a database locked by another process, off the loop's thread
//   fairness.cpp   fresh work before the NOT_EXISTS backlog, and its back-off
//   pause.cpp      no asks while downloads are paused or the database fails
//   clock_watch.cpp  wall-clock jumps: what verdicts go by, and re-basing next_at
//   uploads.cpp    sinks (issue 15): landing uploading slots, and pruning local copies
//   preuploads.cpp sinks: each part copied to the remote as soon as it is archived
//   schemas.cpp    the schema watch: header changes of each job and type (issue 16)
//   queue_watch    other processes' commands, seen as they commit (inotify), not polled

#include <algorithm>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "api/client.hpp"
#include "archive/archive.hpp"
#include "async/async.hpp"
#include "config/config.hpp"
#include "download/downloader.hpp"
#include "ops/hooks.hpp"
#include "ops/registry.hpp"
#include "scheduler/clock_watch.hpp"
#include "scheduler/queue_watch.hpp"
#include "scheduler/store_waits.hpp"
#include "sink/sink.hpp"
#include "slot/slot.hpp"
#include "state/state_store.hpp"
#include "work/downloads.hpp"
#include "work/outcome.hpp"

namespace gio::scheduler {

// What a reload cannot apply, one line per changed setting: the state database, the
// archive (and its umask), the HTTP client, the download slots and the metrics listener
// are built once at start. A reload with any of these changed is refused as a whole.
std::vector<std::string> restart_only_changes(const config::Config& running,
                                              const config::Config& next);

// What a reload changes in the jobs, for its log line: names added and removed, and
// "job.key" for each setting of a kept job that differs.
struct JobChanges {
  std::vector<std::string> added, removed, changed;
};
JobChanges job_changes(const config::Config& running, const config::Config& next);

// What the scheduler needs to land jobs' slots on their sinks.
struct SinkSupport {
  // Hashes parts for the remote's checksums, off the loop; needed once a job has a sink.
  boost::asio::thread_pool* hash_pool = nullptr;
  std::filesystem::path rclone = "rclone";  // the program; found on PATH by default
};

class Scheduler final : private work::Observer {
 public:
  // `metrics` must have the families of ops::declare_exporter_metrics.
  Scheduler(boost::asio::any_io_executor executor, std::shared_ptr<const config::Config> config,
            const Clock& clock, state::StateStore& store, archive::Archive& archive,
            http::Client& http, download::Downloader& downloader, ops::Registry& metrics,
            SinkSupport sinks = {});

  // One pass: every slot due now is asked for once and, where finished, archived.
  boost::asio::awaitable<void> run_once();
  // The daemon: plans, works and sleeps until the next due time, until stop().
  boost::asio::awaitable<void> run();
  // Starts no new slot work; run() returns once its loop notices, leaving the slots in
  // flight as they are: the caller ends the process, and the next start resumes them
  // (every step is recorded before it is taken). The Scheduler must outlive the
  // io_context's handlers, which still refer to it.
  void stop();

  // Switches to a new, already validated config: new and changed jobs are planned and
  // worked on under their new settings, removed jobs get no new work. Slots in flight
  // finish under the config they started with, so no download is interrupted, and
  // done slots stay done. The settings named by restart_only_changes() must be equal.
  void reload(std::shared_ptr<const config::Config> config);
  const config::Config& config() const;
  // When the main loop last went round, and whether it is alive (for /healthz and the
  // systemd watchdog): it went round lately, or it sleeps until a deadline not yet long
  // past (an idle loop sleeps until its next deadline, up to a minute, not seconds).
  std::chrono::steady_clock::time_point alive_at() const { return alive_at_; }
  bool loop_alive() const {
    const auto now = std::chrono::steady_clock::now();
    if (now <= asleep_until_) {
      return true;
    }
    return now - std::max(alive_at_, asleep_until_) < std::chrono::seconds{30};
  }
  // Called on the loop's thread each time a slot becomes done, after its event line and
  // hook, with the config in force: the daemon compares hourly against daily from here
  // (reconcile/, which the scheduler does not link). It must not throw.
  using DoneListener = std::function<void(const config::Config&, const config::Job&, const Slot&)>;
  void on_slot_done(DoneListener listener) { done_listener_ = std::move(listener); }

  // Slots that became failed, and slots marked lost, since this Scheduler was built:
  // for `run --once`, the slots of its one pass (its exit status says so).
  struct Ended {
    int failed = 0;
    int lost = 0;
  };
  Ended ended() const { return ended_; }
  // How long the loop's writes have found the state database locked by another process
  // (nullopt when the last one went through), for /healthz.
  std::optional<std::chrono::steady_clock::duration> database_locked_for() const {
    return store_waits_.locked_for();
  }

 private:
  // One loaded config and the API clients built from it. A worker holds the generation
  // it started under, so a reload never pulls a job or a project's client from under it.
  struct Generation;
  class StoredLedger;

  // Plans every job's ready slots; returns the new ones by job (first, last, count).
  struct Planned {
    std::string first, last;
    int count = 0;
  };
  std::map<std::string, Planned> plan(Instant now);
  static void log_catch_up(const std::map<std::string, Planned>& planned_at_start);
  // When the next slot of `job` that is not planned yet becomes ready.
  Instant next_plan_time(const config::Job& job, Instant now) const;
  // Starts a worker for every due slot not already being worked on, up to the cap.
  void start_due_work(Instant now, std::set<std::string>* started_once);
  // pause.cpp: how many slots may be in flight now: none while downloads are paused or
  // the state database fails (an ask would fail the same way and count an attempt), one
  // to probe once a download pause lapsed, else `cap`.
  std::size_t asks_allowed_in_flight(std::size_t cap) const;
  // Whether an ask whose turn on the rate limiter comes now is held (api::Turn::hold).
  bool asks_held() const;
  // While asks are held: how long until the loop should look again.
  std::optional<std::chrono::seconds> ask_hold_left() const;
  // The state database fails: said once per cause (event=state_db_error), and every
  // ask held until the loop finds it writable again (event=state_db_ok).
  void note_store_trouble(const std::string& reason);
  // Warns once at 72 h and once at 24 h before a slot not done is lost, and marks the
  // slots past the vendor's retention lost.
  void watch_retention(Instant now);
  // event=slot_at_risk for slots asked about, one summary line per job for the rest,
  // and the at-risk hooks. AtRisk: what the watch found (planning.cpp).
  struct AtRisk;
  void announce_at_risk(const AtRisk& at_risk, Instant now);
  // Wall-clock jumps (clock_watch.cpp). read_clock: the clocks now, through the watch
  // (a jump a worker sees wakes the loop); handle_clock_jump: after a jump, logs
  // event=clock_jump and pulls in next_at values left far ahead; pull_in_next_at: slots
  // due beyond now + poll_every (which no schedule sets) become due now.
  ClockWatch::Reading read_clock();
  void handle_clock_jump(const ClockWatch::Reading& reading);
  void pull_in_next_at(Instant now);
  // Notices when another process (backfill, retry, verify --repair) changed the queue.
  bool queue_changed_elsewhere();
  // Starts watching for other processes' commits (queue_watch.hpp), polled without it.
  void watch_queue();
  // event=queue_changed: what is due once another process changed the queue.
  void log_queue_change();

  // A worker: process() on the slot, again (with its row read afresh) after a pass that
  // stopped at a step the locked database could not record; any other failure puts the
  // slot off (or, when even that cannot be recorded, holds it back in memory).
  boost::asio::awaitable<void> work_on(std::shared_ptr<const Generation> generation,
                                       state::SlotRecord record);
  // One pass on one slot: the checks only the scheduler can make (retention, give-up),
  // then the pass of the job's kind (work/), asked again at once while links expire
  // (a few times), then settle().
  boost::asio::awaitable<void> process(std::shared_ptr<const Generation> generation,
                                       state::SlotRecord record);
  // The one place where a pass's outcome becomes the slot's state, its event line, its
  // metrics and its hook. `counted`: the pass already counted its attempt (it recorded
  // the slot as downloading). Its one write comes first, so a call that throws did
  // nothing and may be made again (StoreWaits::retry).
  void settle(const config::Job& job, const Slot& slot, const state::SlotRecord& record,
              const work::Outcome& outcome, bool counted);
  // Records an answer that means "not yet" (RUNNING, NOT_EXISTS, doing): polled again
  // after poll_every; event=slot_waiting the first time only, and NOT_EXISTS past the
  // job's grace warned about once.
  void keep_waiting(const config::Job& job, const Slot& slot, const state::SlotRecord& record,
                    const work::Wait& wait, bool count_attempt);
  // --- schemas.cpp: the schema watch (issue 16) ---
  // Compares the header of each complete partition of a slot just archived (a raw
  // job's) with its data type's history (schema_watch.hpp): stores what changed, and
  // announces a change once (event=schema_changed, the metric, on_schema_change). Each
  // type's write comes before its announcement, so a call that throws (a locked
  // database) may be made again without announcing anything twice.
  void watch_schemas(const config::Job& job, const Slot& slot);
  // watch_schemas once the slot is settled, waiting out a locked database; any other
  // failure is logged (event=schema_unread) and leaves the slot as settled.
  boost::asio::awaitable<void> watch_schemas_after(const config::Job& job, const Slot& slot);
  // The counters of the types a job has a header for, at 0 (at start and reload).
  void zero_schema_counters(const config::Job& job);
  // Runs the job's hook for `event` (slot_done, slot_failed, slot_at_risk,
  // schema_changed), if it has one, with the slot's details and `extra` in its
  // environment.
  void run_hook(const config::Job& job, std::string_view event, const std::string& slot_name,
                Instant slot_start, ops::HookVariables extra);
  // --- uploads.cpp: sinks (issue 15) ---
  // Starts an upload for every uploading slot due, up to kUploadsPerSink per sink;
  // `started_once`: as for start_due_work. Returns how many it started.
  std::size_t start_due_uploads(Instant now, std::set<std::string>* started_once);
  // Lands every local partition of one uploading slot on its job's sink; then the slot
  // is done, or stays uploading, backed off (30 s doubling to 10 min).
  boost::asio::awaitable<void> upload(std::shared_ptr<const Generation> generation,
                                      state::SlotRecord record);
  struct Landing;
  void land_done(const config::Job& job, const Slot& slot, const Landing& landing);
  // Whether the current config lands `job` elsewhere than `landing_with` did (its sink
  // taken away or given, or its remote changed): a reload during the landing.
  bool sink_changed(const Generation& landing_with, const config::Job& job) const;
  void upload_failed(const config::Job& job, const state::SlotRecord& record,
                     const std::string& reason, std::chrono::seconds delay);
  // The slot's local copy is not whole (a partition without _SUCCESS or manifest, or
  // none at all): it is fetched again.
  void refetch(const config::Job& job, const state::SlotRecord& record, const std::string& reason);
  // --- preuploads.cpp: parts copied to the sink while their slot still downloads ---
  void published(const config::Job& job, const Slot& slot, std::string_view data_type,
                 const std::filesystem::path& file) override;
  struct PreuploadPart;
  bool paused_preuploads(const std::string& sink) const;
  boost::asio::awaitable<void> preupload(std::shared_ptr<sink::Sink> sink, PreuploadPart part);
  // Before a slot lands: its pre-uploads not started yet are dropped, those running
  // are waited for (the landing then copies only what they did not).
  boost::asio::awaitable<void> end_preuploads(const std::string& key);
  // Removes the local copy of done slots of sink jobs whose keep_local has passed
  // (every kPruneEvery, and at once for a slot landed with keep_local 0s).
  void prune_local(Instant now);
  void prune_slot(const config::Job& job, const config::Sink& sink, const Slot& slot);
  // Settles a Done pass of a job with a sink: uploading, due now (event=slot_downloaded).
  void downloaded_for_sink(const config::Job& job, const Slot& slot, const work::Done& done,
                           bool count_attempt);

  // Adds to one of the job's counters (ops/exporter_metrics.hpp).
  void count(std::string_view counter, const std::string& job, double by = 1);
  // The vendor's retention passed: recorded as lost (store_lost), then counted and
  // logged as event=slot_lost (announce_lost). watch_retention stores many in one
  // commit and announces them once it is in.
  void mark_lost(const state::SlotRecord& record, Instant now);
  void store_lost(const state::SlotRecord& record, Instant now);
  void announce_lost(const state::SlotRecord& record);
  // The slot needs a person (or `retry`): recorded, and logged as event=slot_failed.
  // `with_last`: the reason is the daemon's (give_up_after), and the slot's last answer
  // goes with it.
  void fail_slot(const config::Job& job, const Slot& slot, const state::SlotRecord& record,
                 const std::string& reason, bool count_attempt, bool with_last = true);
  void retry_later(const config::Job& job, const state::SlotRecord& record,
                   const work::Retry& retry, bool count_attempt);
  // event=slot_retry, once per problem (see retry_notes_); `delay` for backoffs.
  void warn_retry(const state::SlotRecord& record, const std::string& reason, int attempt,
                  Instant next_try, std::optional<std::chrono::seconds> delay);
  // event=slot_recovered, when a slot warned about answers again (done or waiting).
  void note_recovery(const config::Job& job, const Slot& slot, int attempt, std::string_view state,
                     const std::string& api_status);

  // work::Observer: what slot work tells the log and the metrics as it happens.
  void archived(const config::Job& job, std::size_t files, std::uint64_t bytes) override;
  void downloaded(std::uint64_t bytes, std::chrono::duration<double> took) override;
  void fetching(const config::Job& job, const Slot& slot, std::uint64_t bytes_done,
                std::optional<std::uint64_t> bytes_total) override;
  void chart_capped(const config::Job& job, const Slot& slot, std::string_view chart_id,
                    std::size_t rows) override;
  void paused(const std::string& reason, std::chrono::seconds pause) override;
  void resumed(const config::Job& job, const Slot& slot) override;
  void part_failed(const config::Job& job, const Slot& slot, std::string_view name, int attempt,
                   int tries, const std::string& error) override;
  void links_expired(const config::Job& job, const Slot& slot) override;
  void unknown_data_type(const config::Job& job, const Slot& slot, std::string_view type) override;
  void duplicate_part(const config::Job& job, const Slot& slot, std::string_view type,
                      std::string_view name, std::string_view same_as) override;

  boost::asio::any_io_executor executor_;
  const Clock& clock_;
  ClockWatch clock_watch_;
  state::StateStore& store_;
  archive::Archive& archive_;
  http::Client& http_;
  ops::Registry& metrics_;
  std::unique_ptr<api::CodeCache> codes_;  // signed codes, in store_
  StoreWaits store_waits_;                 // store_'s writes wait here while it is locked
  std::shared_ptr<const Generation> generation_;
  std::map<std::string, Instant> planned_until_;  // by job: start of the next unplanned slot
  std::set<std::string> in_flight_;               // "job/slot" keys being worked on
  std::set<std::string> backlog_in_flight_;       // those of them that are NOT_EXISTS backlog
  std::string store_trouble_;  // the state database's last failure, "" while it works
  std::chrono::steady_clock::time_point alive_at_ = std::chrono::steady_clock::now();
  std::int64_t data_version_ = 0;  // the store's, when last looked at
  // While the loop sleeps: the steady time it is to wake at (its deadline).
  std::chrono::steady_clock::time_point asleep_until_{};
  // Other processes' commits, as they happen (run() only; absent or inactive: polled).
  std::optional<QueueWatch> queue_watch_;
  bool queue_changed_ = false;  // the watch saw another process commit since the loop looked
  std::chrono::steady_clock::time_point next_retention_watch_{};
  // Slots whose failure could not even be recorded, held back until then (steady time).
  std::map<std::string, std::chrono::steady_clock::time_point> cool_down_;
  // The last slot_retry warning by "job/slot": its reason, when, and the retries with
  // the same reason not logged since (reminded every kRetryReminderEvery).
  struct RetryNote {
    std::string reason;
    Instant warned_at;
    int repeated = 0;
  };
  static constexpr std::chrono::hours kRetryReminderEvery{1};
  std::map<std::string, RetryNote> retry_notes_;
  // (job, data type) of the unknown types already warned about: once per job and run.
  std::set<std::pair<std::string, std::string>> unknown_types_;
  // Sinks: uploads in flight by sink name, their slot keys, and each slot's failed tries
  // in a row (its back-off).
  SinkSupport sink_support_;
  std::map<std::string, std::size_t> uploads_by_sink_;
  std::set<std::string> uploads_in_flight_;
  std::map<std::string, int> upload_failures_;
  std::chrono::steady_clock::time_point next_prune_{};
  // A reload (a sink pointed at a working remote, say) makes the backed-off uploads due.
  bool retry_uploads_now_ = false;
  // Pre-uploads by slot key: `id` tells a task queued for an earlier pass, `running`
  // what a landing waits for, `unmarked` the partitions (data types) whose remote
  // _SUCCESS is gone, `failed` that the remote refused one this pass (the rest is left
  // to the landing, so a remote that is down costs one try per slot).
  // `waiting` the parts published and not yet taken by a copy, by data type, and
  // `queued` the data types with a copy waiting for a permit (it takes them all).
  struct Preuploads {
    std::uint64_t id = 0;
    int running = 0;
    bool failed = false;
    std::map<std::string, std::vector<std::filesystem::path>> waiting;
    std::set<std::string> queued;
    std::set<std::string> unmarked;
    std::map<std::string, std::shared_ptr<async::Semaphore>> unmarking;  // by data type
  };
  std::map<std::string, Preuploads> preuploads_;
  std::uint64_t next_preuploads_id_ = 1;
  std::map<std::string, std::shared_ptr<async::Semaphore>> preupload_permits_;  // by sink
  // By sink: no pre-upload starts before then (steady time), set by a failed one, so
  // that a remote that is down costs a try per back-off, not one per part or slot.
  std::map<std::string, std::chrono::steady_clock::time_point> preuploads_paused_;
  work::Downloads downloads_;
  async::Signal wake_;
  async::TaskGroup workers_;  // one task per slot in flight
  ops::HookRunner hooks_;
  bool stopping_ = false;
  bool daemon_ = false;  // run() (the daemon), not run_once(): it forgets removed jobs
  void forget_removed_jobs(const std::vector<std::string>& job_names);
  Ended ended_;
  DoneListener done_listener_;
};

struct Scheduler::Generation {
  std::shared_ptr<const config::Config> config;
  std::vector<std::string> job_names;
  std::map<std::string, std::shared_ptr<api::RateLimiter>> limiters;  // by project
  std::map<std::string, std::unique_ptr<api::Client>> apis;           // by project
  std::map<std::string, std::shared_ptr<sink::Sink>> sinks;           // by name
};

}  // namespace gio::scheduler
