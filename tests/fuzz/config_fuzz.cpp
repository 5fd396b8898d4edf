// The config loader, YAML text in: parse_config must return a Config or problems (never
// throw, never both), every problem must name the file, a valid Config must hold only
// what validation promises, and no secret read from a file or the environment may
// appear in a problem or in summary(). Durations must round-trip.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "config/config.hpp"
#include "fuzz_check.hpp"

namespace {

namespace fs = std::filesystem;
namespace config = gio::config;

// Secrets the fuzzer's configs can reach: "token_file: token" (or key) next to the
// config, and "token_env: GIO_FUZZ_TOKEN". Distinct strings the input never holds.
constexpr std::string_view kFileSecret = "FileSecret9q7Zx";
constexpr std::string_view kEnvSecret = "EnvSecret4k2Wv";

fs::path make_folder() {
  char pattern[] = "/tmp/gio-fuzz-config-XXXXXX";
  const char* made = ::mkdtemp(pattern);
  GIO_FUZZ_CHECK(made != nullptr, "mkdtemp");
  const fs::path folder{made};
  for (const char* name : {"token", "key"}) {
    std::ofstream(folder / name) << "  " << kFileSecret << "\n";
  }
  ::setenv("GIO_FUZZ_TOKEN", std::string{kEnvSecret}.c_str(), 1);
  ::setenv("GIO_FUZZ_KEY", std::string{kEnvSecret}.c_str(), 1);
  return folder;
}

void check_no_secret(std::string_view text, std::string_view input) {
  for (const std::string_view secret : {kFileSecret, kEnvSecret}) {
    if (input.find(secret) == std::string_view::npos) {
      GIO_FUZZ_CHECK(text.find(secret) == std::string_view::npos,
                     "a secret in: " + std::string{text});
    }
  }
}

void check_duration(std::string_view text) {
  const auto duration = config::parse_duration(text);
  if (!duration) {
    return;
  }
  GIO_FUZZ_CHECK(duration->count() >= 0, "a negative duration");
  const std::string formatted = config::format_duration(*duration);
  GIO_FUZZ_CHECK(config::parse_duration(formatted) == duration,
                 "format_duration does not parse back: " + formatted);
}

void check_config(const config::Config& loaded, std::string_view input) {
  check_no_secret(config::summary(loaded), input);
  std::set<std::string> names;
  for (const auto& project : loaded.projects) {
    GIO_FUZZ_CHECK(names.insert(project.name).second, "two projects named " + project.name);
    GIO_FUZZ_CHECK(project.auth.uses_token() || !project.auth.private_key.empty(),
                   "a project without credentials");
  }
  names.clear();
  for (const auto& job : loaded.jobs) {
    GIO_FUZZ_CHECK(!job.name.empty() && job.name.size() <= config::kMaxNameLength, "job name");
    GIO_FUZZ_CHECK(job.name.find('/') == std::string::npos && job.name != "." && job.name != "..",
                   "a job name that is not one folder: " + job.name);
    GIO_FUZZ_CHECK(names.insert(job.name).second, "two jobs named " + job.name);
    GIO_FUZZ_CHECK(loaded.find_job(job.name) == &job, "find_job");
    (void)loaded.project_of(job);  // throws (a crash here) when the project is unknown
    GIO_FUZZ_CHECK(job.poll_every >= config::kMinPollEvery, "poll_every below the minimum");
    GIO_FUZZ_CHECK(job.give_up_after >= job.poll_every, "give_up_after below poll_every");
    GIO_FUZZ_CHECK(job.backfill >= config::kMinBackfill && job.backfill <= config::kMaxBackfill,
                   "backfill out of range");
    const auto check_ids = [](const std::vector<std::string>& ids) {
      for (const auto& chart : ids) {
        GIO_FUZZ_CHECK(
            !chart.empty() && chart.find('/') == std::string::npos && chart != "." && chart != "..",
            "a chart id that is not one folder: " + chart);
      }
    };
    std::visit(
        config::Overloaded{[](const config::RawJob& raw) {
                             for (const auto& type : raw.data_types) {
                               GIO_FUZZ_CHECK(type.find('/') == std::string::npos && !type.empty(),
                                              "a data type");
                             }
                           },
                           [&](const config::ChartJob& chart) { check_ids(chart.charts); },
                           [&](const config::UserListJob& lists) { check_ids(lists.lists); }},
        job.settings);
  }
  GIO_FUZZ_CHECK(loaded.limits.parallel_downloads >= config::kMinParallelDownloads &&
                     loaded.limits.parallel_downloads <= config::kMaxParallelDownloads,
                 "parallel_downloads out of range");
  GIO_FUZZ_CHECK(loaded.limits.api_requests_per_second > 0 &&
                     loaded.limits.api_requests_per_second <= config::kMaxApiRequestsPerSecond,
                 "api_requests_per_second out of range");
  GIO_FUZZ_CHECK(
      loaded.http.timeout >= config::kMinTimeout && loaded.http.timeout <= config::kMaxTimeout,
      "timeout out of range");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fs::path folder = make_folder();
  static const fs::path path = folder / "config.yaml";
  const std::string_view input = gio::fuzz::as_text(data, size);

  if (size <= 64) {
    check_duration(input);
  }

  const config::LoadResult result = config::parse_config(input, path);
  GIO_FUZZ_CHECK(result.config.has_value() == result.problems.empty(),
                 "a config must come with no problem, and problems without a config");
  for (const auto& problem : result.problems) {
    GIO_FUZZ_CHECK(problem.file == path.string(), "a problem names another file: " + problem.file);
    GIO_FUZZ_CHECK(problem.line >= 0 && problem.column >= 0, "a negative position");
    GIO_FUZZ_CHECK(!problem.message.empty(), "a problem without a message");
    check_no_secret(problem.to_string(), input);
  }
  if (result.config) {
    check_config(*result.config, input);
  }
  return 0;
}
