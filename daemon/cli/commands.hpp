#pragma once

// One function per subcommand; command_table.cpp parses the options and calls one.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "archive/checksums.hpp"
#include "archive/verify_mode.hpp"
#include "config/config.hpp"
#include "requeue/requeue.hpp"
#include "slot/slot.hpp"

namespace gio::cli {

// The clock every command uses: the system clock, or, when GIO_EXPORTER_NOW holds a
// UTC instant (2026-11-22T10:00:00Z), a clock that starts there (for tests and demos),
// and with GIO_EXPORTER_NOW_FROZEN=1 also stays there (simulations).
const Clock& command_clock();

// Loads the config, printing every problem as FILE:LINE:COL; nullopt when invalid. Only
// commands that call the API load the secrets.
std::optional<config::Config> load_or_report(const std::filesystem::path& path,
                                             config::SecretMode secrets = config::SecretMode::skip);

// `run --once` when a slot of its pass became failed or lost: distinct from 1 (an error)
// and 2 (gaps, damage), so a timer-driven unit can tell "the pass ran, but slots need a
// person" from both.
inline constexpr int kExitSlotsFailed = 3;

// `run` (0 after a clean stop, 1 on a startup error) or `run --once` (also
// kExitSlotsFailed). `config` must have its secrets (SecretMode::load).
int run_daemon(const config::Config& config, bool once);

// Blocks SIGINT, SIGTERM and SIGHUP in the calling (main) thread until run_daemon has
// its handlers in place and releases them: a stop that arrives while `run` still reads
// its config (a slow secret file, a FIFO) then waits and ends in a clean exit, instead
// of killing the process by the signal's default action. Call it before any thread is
// started, so that none inherits the mask; children start with an empty mask anyway.
void hold_daemon_signals();

struct CheckConfigOptions {
  bool secrets = true;                 // false: --no-secrets
  std::optional<std::string> as_user;  // --as-user: the files are tried as this user
  bool json = false;
};
// check-config (check_config.cpp): 0 when the config is valid and can run, else 1.
int check_config(const std::filesystem::path& path, const CheckConfigOptions& options);
// check-config's sink checks (check_sinks.cpp): rclone runs, each remote parses, and
// with `list` each can be listed; one problem per sink, at its place in the file.
std::vector<config::Problem> check_sinks(const std::string& file, const config::Config& config,
                                         bool list);
int status(const config::Config& config, bool json);
// status --calendar [--job J] [--days N] [--json]: every slot of the last N Beijing days
// as a grid (cli/calendar.cpp), or report::slots_json with --json.
int calendar(const config::Config& config, const std::optional<std::string>& job, int days,
             bool as_json);
// gaps [--job J] [--state S,...] [--json]: every slot not archived (states empty: all);
// 0 none, 2 some.
int gaps(const config::Config& config, const std::optional<std::string>& job,
         const std::vector<std::string>& states, bool json);
// reconcile [--job J] [--from D --to D] [--json] (reconcile_command.cpp): the stored
// hourly against daily comparisons; 0 when every one is within its tolerance, 2 when
// any is not, 1 on bad options or an unknown pairing.
int reconcile_report(const config::Config& config, const config::Job* only_job,
                     const std::optional<std::string>& from, const std::optional<std::string>& to,
                     bool json);

// schema --job J --type T [--json]: the data type's header history (schema_command.cpp).
int schema(const config::Config& config, const config::Job& job, const std::string& type,
           bool json);
int fetch(const std::vector<std::string>& urls, const std::filesystem::path& dir,
          archive::VerifyMode mode, archive::Inflater inflater, int parallel, bool count_rows,
          const config::HttpSettings& http);
int version();
// What `version` prints (and --version).
std::string version_text();
// backfill --job J --from S --to S [--force] [--dry-run]; 1 for a bad slot or range.
int backfill(const config::Config& config, const config::Job& job, std::string_view from,
             std::string_view to, bool force, bool dry_run);
// retry --job J (--slot S | --failed) [--dry-run]: slot_text unset means --failed.
int retry(const config::Config& config, const config::Job& job,
          const std::optional<std::string>& slot_text, bool dry_run);
// verify [--job J] [--from S --to S] [--mode gzip|size] [--repair]: 0 clean, 2 damage
// found, 1 bad options. The parser has checked that --from and --to come together. `mode`
// gzip (the default) inflates every gzip part whatever the job's own verify mode; size
// checks sizes and sha256 only.
int verify(const config::Config& config, const config::Job* only_job,
           const std::optional<std::string>& from, const std::optional<std::string>& to,
           bool repair, archive::VerifyMode mode = archive::VerifyMode::gzip);

// verify --sink [--job J] [--from S --to S] [--repair] (verify_sink.cpp): each done slot
// of the jobs with a sink checked on the remote; 0 clean, 2 differences found, 1 bad
// options or a remote that could not be checked. --repair queues an upload again when
// the local copy is whole, else a fetch while the vendor still has the slot.
int verify_sink(const config::Config& config, const config::Job* only_job,
                const std::optional<std::string>& from, const std::optional<std::string>& to,
                bool repair);

// Which jobs verify reads, and the range of each (slot names depend on the job's
// granularity).
struct VerifyScope {
  const config::Job* job;
  Instant from, to;  // slot starts, inclusive
};
// Every job's scope (or only_job's); nullopt after saying why when --from/--to name no
// slots. A range of hours says nothing about a daily job: without --job, a job whose
// granularity the names do not fit is left out.
std::optional<std::vector<VerifyScope>> verify_scopes(const config::Config& config,
                                                      const config::Job* only_job,
                                                      const std::optional<std::string>& from,
                                                      const std::optional<std::string>& to);

// --- --from, --to and --slot: checked here only ------------------------------------------

// Parses a slot name of the job's granularity; prints why not (naming `option`) and
// returns nullopt when it is not one.
std::optional<Slot> parse_slot_option(const config::Job& job, std::string_view option,
                                      std::string_view text);

struct SlotRange {
  Slot from, to;  // inclusive
};
// --from and --to as a range of the job's slots; prints why not (a name that is not a
// slot of the job's granularity, or --from after --to) and returns nullopt.
std::optional<SlotRange> parse_slot_range(const config::Job& job, std::string_view from,
                                          std::string_view to);

// One line per slot ("<job> <slot> <what happens>"), then a summary of the counts.
void print_report(const requeue::Report& report, std::string_view command, bool dry_run);

}  // namespace gio::cli
