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
  status [--json]          per job: slots by state, newest archived, next action
  gaps [--job NAME] [--json]
                           slots inside the backfill window that are not archived
                           (exit 2 when there are any)
  fetch URL... --dir DIR [--verify gzip|size] [--parallel N]
                           download links through the daemon's download-and-verify path
  version                  version of gio-exporter and its libraries

options:
  -c, --config PATH        config file (default: $GIO_EXPORTER_CONFIG, else
                           /etc/gio-exporter/config.yaml)
  -h, --help               this text
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
    return fetch(rest, *dir, mode, parallel_count, http);
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

  if (command.empty()) {
    return usage_error("no command given");
  }
  return usage_error("unknown command: " + command);
}

}  // namespace
}  // namespace gio::cli
