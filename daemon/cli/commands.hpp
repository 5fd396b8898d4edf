#pragma once

// One function per subcommand; cli.cpp parses the arguments and picks one.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

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
          archive::VerifyMode mode, int parallel, const config::HttpSettings& http);
int version();

// Applies the config's log level to the process-wide logger.
void configure_logging(const config::LogSettings& log);

}  // namespace gio::cli
