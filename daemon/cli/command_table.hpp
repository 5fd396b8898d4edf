#pragma once

// The subcommands of gio-exporter, as one table: each command's name, what the
// top-level help says of it, its options (CLI11) and the call it makes. cli.cpp builds
// the one parser from it.

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "archive/checksums.hpp"
#include "archive/verify_mode.hpp"

namespace CLI {
class App;
}  // namespace CLI

namespace gio::cli {

// Every option's value once parsed; each command reads its own.
struct Args {
  std::optional<std::string> config;  // -c; unset: $GIO_EXPORTER_CONFIG or the default
  bool once = false;
  bool json = false;
  std::optional<std::string> job;
  std::vector<std::string> states;  // gaps --state
  std::optional<std::string> from;
  std::optional<std::string> to;
  std::optional<std::string> slot;
  bool failed = false;
  bool force = false;
  bool dry_run = false;
  bool repair = false;
  bool sink = false;  // verify --sink
  bool no_secrets = false;
  std::optional<std::string> as_user;
  std::vector<std::string> urls;
  std::filesystem::path dir;
  archive::VerifyMode verify = archive::VerifyMode::gzip;
  archive::Inflater inflater = archive::best_inflater();
  int parallel = 4;
  bool count_rows = false;  // fetch --rows
  std::string data_type;    // schema --type
  bool calendar = false;    // status --calendar
  int days = 15;            // status --calendar --days: the vendor's retention

  std::filesystem::path config_path() const;
};

struct Command {
  std::string_view name;
  // The options, as the top-level help shows them beside the name.
  std::string_view synopsis;
  // Its lines in the top-level help; joined into one paragraph for its own --help.
  std::string_view summary;
  // Adds the command's options to its CLI11 subcommand.
  void (*define)(CLI::App& command, Args& args);
  // Runs the command; returns the exit status.
  int (*run)(const Args& args);
};

std::span<const Command> command_table();

}  // namespace gio::cli
