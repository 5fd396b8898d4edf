#pragma once

// One function per subcommand; cli.cpp parses the arguments and picks one.

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "archive/checksums.hpp"
#include "archive/verify_mode.hpp"
#include "config/config.hpp"
#include "slot/slot.hpp"

namespace gio::cli {

// The clock every command uses: the system clock, or, when GIO_EXPORTER_NOW holds a
// UTC instant (2026-11-22T10:00:00Z), a clock that starts there (for tests and demos).
const Clock& command_clock();

// Loads the config, printing every problem as FILE:LINE:COL; nullopt when invalid.
std::optional<config::Config> load_or_report(const std::filesystem::path& path);

int run_daemon(const config::Config& config, bool once);
int check_config(const std::filesystem::path& path);
int status(const config::Config& config, bool json);
int gaps(const config::Config& config, const std::optional<std::string>& job, bool json);
int fetch(const std::vector<std::string>& urls, const std::filesystem::path& dir,
          archive::VerifyMode mode, archive::Inflater inflater, int parallel,
          const config::HttpSettings& http);
int version();
// backfill --job J --from S --to S [--force] [--dry-run]; 1 for a bad slot or range.
int backfill(const config::Config& config, const config::Job& job, std::string_view from,
             std::string_view to, bool force, bool dry_run);
// retry --job J (--slot S | --failed) [--dry-run]: slot_text unset means --failed.
int retry(const config::Config& config, const config::Job& job,
          const std::optional<std::string>& slot_text, bool dry_run);
// verify [--job J] [--from S --to S] [--repair]: 0 clean, 2 damage found, 1 bad options.
int verify(const config::Config& config, const config::Job* only_job,
           const std::optional<std::string>& from, const std::optional<std::string>& to,
           bool repair);

// --- shared by backfill, retry and verify -----------------------------------------------

// Parses a slot name of the job's granularity; prints why not (naming `option`) and
// returns nullopt when it is not one.
std::optional<Slot> parse_slot_option(const config::Job& job, std::string_view option,
                                      std::string_view text);
// "skipped: lost (the vendor's 15-day retention passed at ...)".
std::string lost_reason(const Slot& slot);

// One line per slot ("<job> <slot> <what happens>") and a summary of the counts.
class QueueReport {
 public:
  enum class Outcome { queued, already_queued, skipped };
  void line(const std::string& job, const std::string& slot, Outcome outcome,
            const std::string& what);
  void summary(std::string_view command, bool dry_run) const;

 private:
  std::map<Outcome, int> counts_;
};

}  // namespace gio::cli
