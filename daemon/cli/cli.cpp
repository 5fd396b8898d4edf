#include "cli/cli.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <span>
#include <string_view>

#include "cli/commands.hpp"

namespace gio::cli {
namespace {

constexpr std::string_view kUsage = R"(usage: gio-exporter [-c CONFIG] COMMAND [OPTIONS]

Archives GrowingIO raw event exports into a local folder, hour by hour.

commands:
  run [--once]             run the daemon (--once: one pass over what is due, then exit)
  check-config             validate the config; problems as FILE:LINE:COL: message
  status [--json]          per job: slots by state, slots at risk (less than 72h
                           before the vendor drops them), newest archived, next action
  gaps [--job NAME] [--json]
                           slots inside the backfill window that are not archived
                           (exit 2 when there are any)
  backfill --job NAME --from SLOT --to SLOT [--force] [--dry-run]
                           queue those slots (inclusive) again; done ones only with
                           --force; works while the daemon runs
  retry --job NAME (--slot SLOT | --failed) [--dry-run]
                           queue failed slots again with a fresh give_up_after
  verify [--job NAME] [--from SLOT --to SLOT] [--repair]
                           re-read archived partitions against their manifests (size,
                           sha256, gzip); exit 2 on damage; --repair queues damaged
                           slots still inside the vendor's 15-day retention
  fetch URL... --dir DIR [--verify gzip|size] [--inflate isal|zlib] [--parallel N]
                           download links through the daemon's download-and-verify path;
                           --inflate picks the gzip library (default: the fastest built)
  version                  version of gio-exporter and its libraries

options:
  -c, --config PATH        config file (default: $GIO_EXPORTER_CONFIG, else
                           /etc/gio-exporter/config.yaml)
  -h, --help               this text

files:
  /etc/gio-exporter/config.yaml
                           the config; every key, commented, in
                           /usr/share/doc/gio-exporter/examples/config.yaml
  /var/lib/gio-exporter/   state database and archive (state_db, archive_dir)
  $CREDENTIALS_DIRECTORY/NAME
                           a token named in the config by token_credential: NAME
                           (systemd LoadCredential=)

environment:
  GIO_EXPORTER_CONFIG      config file when -c is not given
  NOTIFY_SOCKET, WATCHDOG_USEC
                           set by systemd (Type=notify): readiness, status, watchdog
  JOURNAL_STREAM           set by systemd: log lines carry journald priorities

signals (run):
  SIGTERM, SIGINT          stop at once and safely: archived work is kept, nothing
                           partial is visible, the next start resumes
  SIGHUP                   read the config again; applied only when valid

metrics (run):
  metrics.listen (default 127.0.0.1:9464) serves /metrics (Prometheus) and /healthz

exit status:
  0 success; 1 usage, config or startup error; 2 gaps found (gaps), damage (verify)
)";

int usage_error(std::string_view message) {
  std::cerr << "gio-exporter: " << message << "\n\n" << kUsage;
  return 1;
}

}  // namespace

namespace {
int dispatch(int argc, char** argv);
}  // namespace

int main(int argc, char** argv) {
  try {
    return dispatch(argc, argv);
  } catch (const std::exception& error) {
    // Startup and CLI errors (an unreadable database, an unwritable archive) end here.
    std::cerr << "gio-exporter: error: " << error.what() << "\n";
    return 1;
  }
}

namespace {

int dispatch(int argc, char** argv) {
  std::span<char*> args{argv + 1, static_cast<std::size_t>(argc > 0 ? argc - 1 : 0)};
  std::optional<std::filesystem::path> config_path;
  std::string command;
  std::vector<std::string> rest;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (arg == "-c" || arg == "--config") {
      if (i + 1 >= args.size()) {
        return usage_error("-c needs a path");
      }
      config_path = args[++i];
    } else if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (command.empty()) {
      command = arg;
    } else {
      rest.emplace_back(arg);
    }
  }

  // Reads an option of the subcommand: a flag, or one taking a value.
  const auto take_flag = [&rest](std::string_view flag) {
    for (auto it = rest.begin(); it != rest.end(); ++it) {
      if (*it == flag) {
        rest.erase(it);
        return true;
      }
    }
    return false;
  };
  std::string missing_value;
  const auto take_value = [&rest,
                           &missing_value](std::string_view flag) -> std::optional<std::string> {
    for (auto it = rest.begin(); it != rest.end(); ++it) {
      if (*it == flag) {
        if (it + 1 == rest.end()) {
          missing_value = flag;
          return std::nullopt;
        }
        std::string value = *(it + 1);
        rest.erase(it, it + 2);
        return value;
      }
    }
    return std::nullopt;
  };
  const auto leftovers = [&rest, &missing_value]() -> std::optional<std::string> {
    if (!missing_value.empty()) {
      return missing_value + " needs a value";
    }
    if (!rest.empty()) {
      return "unexpected argument: " + rest.front();
    }
    return std::nullopt;
  };
  const std::filesystem::path path = config_path.value_or(config::default_config_path());

  if (command == "version") {
    return version();
  }
  if (command == "check-config") {
    if (auto problem = leftovers()) {
      return usage_error(*problem);
    }
    return check_config(path);
  }
  if (command == "fetch") {
    const auto dir = take_value("--dir");
    const auto verify = take_value("--verify");
    const auto inflate = take_value("--inflate");
    const auto parallel = take_value("--parallel");
    if (!missing_value.empty()) {
      return usage_error(missing_value + " needs a value");
    }
    if (!dir) {
      return usage_error("fetch needs --dir DIR");
    }
    archive::VerifyMode mode = archive::VerifyMode::gzip;
    if (verify && *verify == "size") {
      mode = archive::VerifyMode::size;
    } else if (verify && *verify != "gzip") {
      return usage_error("--verify takes gzip or size");
    }
    archive::Inflater inflater = archive::best_inflater();
    if (inflate && (*inflate == "isal" || *inflate == "zlib")) {
      inflater = *inflate == "isal" ? archive::Inflater::isal : archive::Inflater::zlib;
      if (!archive::available(inflater)) {
        return usage_error("--inflate isal: this build has no ISA-L (libisal-dev)");
      }
    } else if (inflate) {
      return usage_error("--inflate takes isal or zlib");
    }
    int parallel_count = 4;
    if (parallel) {
      parallel_count = std::atoi(parallel->c_str());
      if (parallel_count < 1 || parallel_count > 64) {
        return usage_error("--parallel takes 1..64");
      }
    }
    for (const std::string& url : rest) {
      if (url.starts_with("-")) {
        return usage_error("unknown option: " + url);
      }
    }
    if (rest.empty()) {
      return usage_error("fetch needs at least one URL");
    }
    // The network settings of the config apply when one is named explicitly.
    config::HttpSettings http;
    if (config_path) {
      auto config = load_or_report(*config_path);
      if (!config) {
        return 1;
      }
      http = config->http;
    }
    return fetch(rest, *dir, mode, inflater, parallel_count, http);
  }

  if (command == "run" || command == "status" || command == "gaps") {
    const bool once = command == "run" && take_flag("--once");
    const bool json = command != "run" && take_flag("--json");
    const auto job = command == "gaps" ? take_value("--job") : std::nullopt;
    if (auto problem = leftovers()) {
      return usage_error(*problem);
    }
    auto config = load_or_report(path);
    if (!config) {
      return 1;
    }
    if (job && config->find_job(*job) == nullptr) {
      std::cerr << "gio-exporter: no job named \"" << *job << "\" in " << path.string() << "\n";
      return 1;
    }
    if (command == "run") {
      return run_daemon(*config, once);
    }
    if (command == "status") {
      return status(*config, json);
    }
    return gaps(*config, job, json);
  }

  if (command == "backfill" || command == "retry" || command == "verify") {
    const auto job_name = take_value("--job");
    const auto from = command != "retry" ? take_value("--from") : std::nullopt;
    const auto to = command != "retry" ? take_value("--to") : std::nullopt;
    const auto slot = command == "retry" ? take_value("--slot") : std::nullopt;
    const bool failed = command == "retry" && take_flag("--failed");
    const bool force = command == "backfill" && take_flag("--force");
    const bool dry_run = command != "verify" && take_flag("--dry-run");
    const bool repair = command == "verify" && take_flag("--repair");
    if (auto problem = leftovers()) {
      return usage_error(*problem);
    }
    if (command != "verify" && !job_name) {
      return usage_error(command + " needs --job NAME");
    }
    if (command == "backfill" && (!from || !to)) {
      return usage_error("backfill needs --from SLOT and --to SLOT");
    }
    if (command == "retry" && slot.has_value() == failed) {
      return usage_error("retry needs either --slot SLOT or --failed");
    }
    if (command == "verify" && from.has_value() != to.has_value()) {
      return usage_error("verify takes --from and --to together");
    }
    auto config = load_or_report(path);
    if (!config) {
      return 1;
    }
    const config::Job* job = job_name ? config->find_job(*job_name) : nullptr;
    if (job_name && job == nullptr) {
      std::cerr << "gio-exporter: no job named \"" << *job_name << "\" in " << path.string()
                << "\n";
      return 1;
    }
    if (command == "backfill") {
      return backfill(*config, *job, *from, *to, force, dry_run);
    }
    if (command == "retry") {
      return retry(*config, *job, slot, dry_run);
    }
    return verify(*config, job, from, to, repair);
  }

  if (command.empty()) {
    return usage_error("no command given");
  }
  return usage_error("unknown command: " + command);
}

}  // namespace
}  // namespace gio::cli
