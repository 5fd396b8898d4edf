// The command line: one CLI11 parser over the table of subcommands (command_table.cpp).
// Usage errors exit 1, as config and startup errors do (interface.md, "Commands").

#include "cli/cli.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <string>
#include <string_view>

#include "cli/command_table.hpp"
#include "cli/commands.hpp"

namespace gio::cli {
namespace {

// Printed above the command list of the top-level help.
constexpr std::string_view kHead = R"(usage: gio-exporter [-c CONFIG] COMMAND [OPTIONS]

Archives GrowingIO raw event exports into a local folder, hour by hour.

commands:
)";

// The top-level help after the commands: what the man page (help2man) shows besides them.
constexpr std::string_view kTail = R"(
options:
  -c, --config PATH        config file (default: $GIO_EXPORTER_CONFIG, else
                           /etc/gio-exporter/config.yaml); before or after COMMAND
  -h, --help               this text; COMMAND --help: that command's options
  -V, --version            version of gio-exporter and its libraries

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
  https_proxy, http_proxy, no_proxy (or upper case)
                           the forward proxy for the API and the links, and the hosts
                           reached directly; http.proxy and http.no_proxy in the config win

signals (run):
  SIGTERM, SIGINT          stop at once and safely: archived work is kept, nothing
                           partial is visible, the next start resumes
  SIGHUP                   read the config again; applied only when valid

metrics (run):
  metrics.listen (default 127.0.0.1:9464) serves /metrics (Prometheus) and /healthz

exit status:
  0 success; 1 usage, config or startup error (verify --sink: a remote that cannot
  be listed); 2 gaps found (gaps), damage (verify), differences on the remote
  (verify --sink); 3 run --once: the pass ran, but slots failed or were lost in it
)";

// Shown under every command's own help: the options that belong to the program.
constexpr std::string_view kCommandFooter =
    "Also: -c, --config PATH (the config file), -V, --version. Exit status: see gio-exporter "
    "--help.";

// Where a help line's text starts (after "  command synopsis").
constexpr std::size_t kHelpColumn = 27;

// The top-level help: every command of the table with its synopsis and summary.
std::string top_help() {
  std::string text{kHead};
  for (const Command& command : command_table()) {
    std::string head = "  " + std::string{command.name};
    if (!command.synopsis.empty()) {
      head += " " + std::string{command.synopsis};
    }
    std::string_view summary = command.summary;
    bool first = true;
    while (!summary.empty()) {
      const std::size_t end = summary.find('\n');
      const std::string_view line = summary.substr(0, end);
      summary = end == std::string_view::npos ? std::string_view{} : summary.substr(end + 1);
      if (first && head.size() + 1 < kHelpColumn) {
        text += head + std::string(kHelpColumn - head.size(), ' ');
      } else {
        if (first) {
          text += head + "\n";
        }
        text += std::string(kHelpColumn, ' ');
      }
      text += std::string{line} + "\n";
      first = false;
    }
  }
  text += kTail;
  return text;
}

// A command's summary as one paragraph, for its own --help.
std::string one_paragraph(std::string_view summary) {
  std::string text{summary};
  for (char& c : text) {
    c = c == '\n' ? ' ' : c;
  }
  return text;
}

// One line on stderr that names what is wrong, and where the full story is.
int usage_error(const CLI::App* command, std::string_view message) {
  const std::string name =
      command != nullptr ? "gio-exporter " + command->get_name() : "gio-exporter";
  std::cerr << name << ": " << message << " (see " << name << " --help)\n";
  return 1;
}

int parse_and_run(int argc, char** argv) {
  CLI::App app{"", "gio-exporter"};
  // Options of the program (-c, --version) are taken after the command too.
  app.fallthrough();
  app.set_help_flag("-h,--help", "this help");
  Args args;
  app.add_option("-c,--config", args.config, "config file")->type_name("PATH");
  app.set_version_flag("-V,--version", version_text, "version of gio-exporter and its libraries");
  for (const Command& command : command_table()) {
    CLI::App* sub = app.add_subcommand(std::string{command.name}, one_paragraph(command.summary));
    sub->footer(std::string{kCommandFooter});
    command.define(*sub, args);
  }
  app.formatter_fn([](const CLI::App*, std::string, CLI::AppFormatMode) { return top_help(); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForVersion& version) {
    std::cout << version.what();
    return 0;
  } catch (const CLI::ParseError& error) {
    const CLI::App* command =
        app.get_subcommands().empty() ? nullptr : app.get_subcommands().front();
    // An argument nobody took is named first: CLI11 checks required options before it
    // reports those, and "--job is required" would hide a misspelt "--jobs".
    const auto rest = app.remaining(true);
    if (rest.empty()) {
      return usage_error(command, error.what());
    }
    if (command == nullptr && !rest.front().starts_with("-")) {
      return usage_error(nullptr, "unknown command: " + rest.front());
    }
    return usage_error(
        command, (rest.front().starts_with("-") ? "unknown option: " : "unexpected argument: ") +
                     rest.front());
  }
  if (app.get_subcommands().empty()) {
    return usage_error(nullptr, "no command given");
  }
  const std::string chosen = app.get_subcommands().front()->get_name();
  for (const Command& command : command_table()) {
    if (command.name == chosen) {
      return command.run(args);
    }
  }
  return usage_error(nullptr, "unknown command: " + chosen);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return parse_and_run(argc, argv);
  } catch (const std::exception& error) {
    // Startup and CLI errors (an unreadable database, an unwritable archive) end here.
    std::cerr << "gio-exporter: error: " << error.what() << "\n";
    return 1;
  }
}

}  // namespace gio::cli
