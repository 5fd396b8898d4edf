#include "cli/commands.hpp"

#include <openssl/crypto.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>
#include <zlib.h>

#include <boost/version.hpp>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string_view>

#include "cli/fetch_command.hpp"
#include "cli/http_settings.hpp"
#include "state/state_store.hpp"
#include "version.hpp"

namespace gio::cli {

const Clock& command_clock() {
  static const std::unique_ptr<Clock> clock = []() -> std::unique_ptr<Clock> {
    const char* now = std::getenv("GIO_EXPORTER_NOW");
    if (now == nullptr || *now == '\0') {
      return std::make_unique<SystemClock>();
    }
    const auto start = parse_utc(now);
    if (!start) {
      std::cerr << "gio-exporter: GIO_EXPORTER_NOW must look like 2026-11-22T10:00:00Z\n";
      std::exit(1);
    }
    // GIO_EXPORTER_NOW_FROZEN=1: the clock stands still at that instant, the steady one
    // too (so no step looks like a wall-clock jump). A simulation stepping `run --once`
    // from one instant to the next must not see the real seconds each step takes, or its
    // results change from run to run (scripts/bench_api.py).
    const char* frozen = std::getenv("GIO_EXPORTER_NOW_FROZEN");
    if (frozen != nullptr && std::string_view{frozen} == "1") {
      return std::make_unique<ManualClock>(*start);
    }
    return std::make_unique<OffsetClock>(*start);
  }();
  return *clock;
}

std::optional<config::Config> load_or_report(const std::filesystem::path& path,
                                             config::SecretMode secrets) {
  config::LoadResult result = config::load_config(path, secrets);
  for (const config::Problem& problem : result.problems) {
    std::cerr << problem.to_string() << "\n";
  }
  // Shown by check-config and at every start (the daemon's stderr is its journal).
  for (config::Problem warning : result.warnings) {
    warning.message.insert(0, "warning: ");
    std::cerr << warning.to_string() << "\n";
  }
  return std::move(result.config);
}

int fetch(const std::vector<std::string>& urls, const std::filesystem::path& dir,
          archive::VerifyMode mode, archive::Inflater inflater, int parallel, bool count_rows,
          const config::HttpSettings& http) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("fetch"));
  return download::run_fetch(urls, dir, mode, inflater, parallel, count_rows, http_settings(http));
}

std::string version_text() {
  std::ostringstream text;
  text << "gio-exporter " << kVersion << "\n"
       << "  boost " << BOOST_VERSION / 100000 << "." << BOOST_VERSION / 100 % 1000 << "."
       << BOOST_VERSION % 100 << "\n"
       << "  yaml-cpp (Debian package)\n"
       << "  spdlog " << SPDLOG_VER_MAJOR << "." << SPDLOG_VER_MINOR << "." << SPDLOG_VER_PATCH
       << "\n"
       << "  sqlite " << state::sqlite_version() << "\n"
       << "  " << OpenSSL_version(OPENSSL_VERSION) << "\n"
       << "  zlib " << zlibVersion() << "\n"
       << "  gzip verification: " << archive::to_string(archive::best_inflater()) << "\n";
  return text.str();
}

int version() {
  std::cout << version_text();
  return 0;
}

}  // namespace gio::cli
