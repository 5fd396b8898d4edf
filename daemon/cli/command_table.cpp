#include "cli/command_table.hpp"

#include <CLI/CLI.hpp>
#include <array>
#include <iostream>

#include "cli/archive_binding.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"

namespace gio::cli {
namespace {

// A check that the option's own help already describes: kept out of its type column.
CLI::Validator quiet(CLI::Validator validator) {
  return validator.description("");
}

// --- options shared by several commands ----------------------------------------------

void add_json(CLI::App& command, Args& args) {
  command.add_flag("--json", args.json, "print JSON instead of text");
}

CLI::Option* add_job(CLI::App& command, Args& args, std::string help) {
  return command.add_option("--job", args.job, std::move(help))->type_name("NAME");
}

// --from and --to name slots of the job's granularity; cli::parse_slot_range checks them
// once the job is known.
std::pair<CLI::Option*, CLI::Option*> add_range(CLI::App& command, Args& args) {
  return {command.add_option("--from", args.from, "first slot (inclusive)")->type_name("SLOT"),
          command.add_option("--to", args.to, "last slot (inclusive)")->type_name("SLOT")};
}

// --- what a command needs before it runs ---------------------------------------------

// The job --job names, or nullptr after saying that the config has none by that name.
const config::Job* named_job(const config::Config& config, const Args& args) {
  const config::Job* job = config.find_job(*args.job);
  if (job == nullptr) {
    std::cerr << "gio-exporter: no job named \"" << *args.job << "\" in "
              << args.config_path().string() << "\n";
  }
  return job;
}

// Loads the config and runs `command` with it (and with the job --job names, if any);
// exit status 1 when either is missing. The secrets are skipped unless asked for: only a
// command that calls the API needs them, and the others must work from an admin shell
// that has neither the service's credentials nor its environment.
template <typename Run>
int with_config(const Args& args, Run command,
                config::SecretMode secrets = config::SecretMode::skip) {
  const auto config = load_or_report(args.config_path(), secrets);
  if (!config) {
    return 1;
  }
  const config::Job* job = nullptr;
  if (args.job) {
    job = named_job(*config, args);
    if (job == nullptr) {
      return 1;
    }
  }
  return command(*config, job);
}

// --- the commands ----------------------------------------------------------------------

void define_run(CLI::App& command, Args& args) {
  command.add_flag("--once", args.once,
                   "one pass over what is due, then exit (exit status 3 when slots\n"
                   "failed or were lost in the pass)");
}
int run_run(const Args& args) {
  hold_daemon_signals();
  return with_config(
      args,
      [&](const config::Config& config, const config::Job*) {
        return run_daemon(config, args.once);
      },
      config::SecretMode::load);
}

void define_nothing(CLI::App&, Args&) {}

void define_check_config(CLI::App& command, Args& args) {
  command.add_flag("--no-secrets", args.no_secrets,
                   "do not read tokens or keys (for a shell without the service's)");
  command
      .add_option("--as-user", args.as_user,
                  "try the folders and secret files as this user (the service's; needs root)")
      ->type_name("NAME");
  add_json(command, args);
}
int run_check_config(const Args& args) {
  return check_config(args.config_path(),
                      {.secrets = !args.no_secrets, .as_user = args.as_user, .json = args.json});
}

void define_status(CLI::App& command, Args& args) {
  add_json(command, args);
  command.add_flag("--calendar", args.calendar,
                   "every slot as a grid: a line per Beijing day, a cell per slot");
  add_job(command, args, "--calendar: only this job");
  command.add_option("--days", args.days, "--calendar: the last N days (default 15)")
      ->type_name("N")
      ->check(CLI::Range(1, 400));
}
int run_status(const Args& args) {
  return with_config(args, [&](const config::Config& config, const config::Job*) {
    return args.calendar ? calendar(config, args.job, args.days, args.json)
                         : status(config, args.json);
  });
}

void define_gaps(CLI::App& command, Args& args) {
  add_job(command, args, "only this job");
  command
      .add_option("--state", args.states,
                  "only slots in these states: pending, waiting, downloading, uploading, "
                  "failed, lost, unplanned")
      ->type_name("STATE[,STATE]")
      ->delimiter(',')
      ->check(quiet(CLI::IsMember(
          {"pending", "waiting", "downloading", "uploading", "failed", "lost", "unplanned"})));
  add_json(command, args);
}
int run_gaps(const Args& args) {
  return with_config(args, [&](const config::Config& config, const config::Job*) {
    return gaps(config, args.job, args.states, args.json);
  });
}

void define_reconcile(CLI::App& command, Args& args) {
  add_job(command, args, "only this pair (its hourly or its daily job)");
  command.add_option("--from", args.from, "first date (inclusive)")->type_name("DATE");
  command.add_option("--to", args.to, "last date (inclusive)")->type_name("DATE");
  add_json(command, args);
}
int run_reconcile(const Args& args) {
  return with_config(args, [&](const config::Config& config, const config::Job* job) {
    return reconcile_report(config, job, args.from, args.to, args.json);
  });
}

void define_schema(CLI::App& command, Args& args) {
  add_job(command, args, "the job")->required();
  command.add_option("--type", args.data_type, "the data type")->type_name("TYPE")->required();
  add_json(command, args);
}
int run_schema(const Args& args) {
  return with_config(args, [&](const config::Config& config, const config::Job* job) {
    return schema(config, *job, args.data_type, args.json);
  });
}

void define_backfill(CLI::App& command, Args& args) {
  add_job(command, args, "the job")->required();
  const auto [from, to] = add_range(command, args);
  from->required();
  to->required();
  command.add_flag("--force", args.force, "done slots too: fetched again whole");
  command.add_flag("--dry-run", args.dry_run, "say what would be queued; change nothing");
}
int run_backfill(const Args& args) {
  return with_config(args, [&](const config::Config& config, const config::Job* job) {
    return backfill(config, *job, *args.from, *args.to, args.force, args.dry_run);
  });
}

void define_retry(CLI::App& command, Args& args) {
  add_job(command, args, "the job")->required();
  CLI::Option* slot = command.add_option("--slot", args.slot, "this slot")->type_name("SLOT");
  CLI::Option* failed = command.add_flag("--failed", args.failed, "every failed slot of the job");
  slot->excludes(failed);
  command.add_flag("--dry-run", args.dry_run, "say what would be queued; change nothing");
  command.parse_complete_callback([slot, failed] {
    if (slot->count() == 0 && failed->count() == 0) {
      throw CLI::ValidationError("retry needs either --slot SLOT or --failed");
    }
  });
}
int run_retry(const Args& args) {
  return with_config(args, [&](const config::Config& config, const config::Job* job) {
    return retry(config, *job, args.slot, args.dry_run);
  });
}

void define_verify(CLI::App& command, Args& args) {
  add_job(command, args, "only this job");
  const auto [from, to] = add_range(command, args);
  from->needs(to);
  to->needs(from);
  CLI::Option* mode =
      command
          .add_option_function<std::string>(
              "--mode",
              [&args](const std::string& value) {
                args.verify =
                    value == "size" ? archive::VerifyMode::size : archive::VerifyMode::gzip;
              },
              "gzip (the default, whatever the job's verify): inflate every gzip part to its "
              "end; size: sizes and sha256 only")
          ->type_name("gzip|size")
          ->check(quiet(CLI::IsMember({"gzip", "size"})));
  command.add_flag("--repair", args.repair,
                   "queue damaged slots still inside the vendor's 15-day retention (with\n"
                   "--sink: an upload again when the local copy is whole)");
  command
      .add_flag("--sink", args.sink,
                "check done slots of jobs with a sink on the remote instead (every\n"
                "object, its size and checksum, _manifest.json, _SUCCESS)")
      ->excludes(mode);
}
int run_verify(const Args& args) {
  return with_config(args, [&](const config::Config& config, const config::Job* job) {
    if (args.sink) {
      return verify_sink(config, job, args.from, args.to, args.repair);
    }
    return verify(config, job, args.from, args.to, args.repair, args.verify);
  });
}

void define_fetch(CLI::App& command, Args& args) {
  command.add_option("URL", args.urls, "links to download")->required();
  command.add_option("--dir", args.dir, "where verified files go")->type_name("DIR")->required();
  command
      .add_option_function<std::string>(
          "--verify",
          [&args](const std::string& value) {
            args.verify = value == "size" ? archive::VerifyMode::size : archive::VerifyMode::gzip;
          },
          "how a file is checked: gzip (the default) or size")
      ->type_name("gzip|size")
      ->check(quiet(CLI::IsMember({"gzip", "size"})));
  command
      .add_option_function<std::string>(
          "--inflate",
          [&args](const std::string& value) {
            args.inflater = value == "isal" ? archive::Inflater::isal : archive::Inflater::zlib;
          },
          "gzip library (default: the fastest built)")
      ->type_name("isal|zlib")
      ->check(quiet(CLI::IsMember({"isal", "zlib"})))
      ->check([](const std::string& value) -> std::string {
        return value == "isal" && !archive::available(archive::Inflater::isal)
                   ? "this build has no ISA-L (libisal-dev)"
                   : "";
      });
  command.add_option("--parallel", args.parallel, "downloads at once, 1 to 64 (default: 4)")
      ->type_name("N")
      ->check(quiet(CLI::Range(1, 64)));
  command.add_flag("--rows", args.count_rows,
                   "also count each file's CSV records as it is inflated (gzip mode): "
                   "rows=N columns=N on its OK line");
}
int run_fetch(const Args& args) {
  // The network settings of the config apply when one is named explicitly.
  if (args.config) {
    return with_config(args, [&](const config::Config& config, const config::Job*) {
      return fetch(args.urls, args.dir, args.verify, args.inflater, args.parallel, args.count_rows,
                   config.http);
    });
  }
  return fetch(args.urls, args.dir, args.verify, args.inflater, args.parallel, args.count_rows, {});
}

int run_adopt_archive(const Args& args) {
  return with_config(
      args, [](const config::Config& config, const config::Job*) { return adopt_archive(config); });
}

int run_version(const Args&) {
  return version();
}

constexpr std::array kCommands{
    Command{"run", "[--once]", "run the daemon (--once: one pass over what is due, then exit)",
            define_run, run_run},
    Command{"check-config", "[--no-secrets] [--as-user NAME] [--json]",
            "validate the config and what running it needs (folders\n"
            "writable, secrets readable); problems as FILE:LINE:COL: message",
            define_check_config, run_check_config},
    Command{"status", "[--json] [--calendar [--job NAME] [--days N]]",
            "per job: slots by state, slots at risk (less than 72h\n"
            "before the vendor drops them), newest archived, next ask;\n"
            "--calendar: every slot of the last days as a grid",
            define_status, run_status},
    Command{"gaps", "[--job NAME] [--state STATE[,STATE]] [--json]",
            "every slot not archived: ready ones of the backfill window,\n"
            "failed and lost ones, those of removed jobs (exit 2 when any)",
            define_gaps, run_gaps},
    Command{"reconcile", "[--job NAME] [--from DATE] [--to DATE] [--json]",
            "hourly rows against the daily export's, per date and type\n"
            "(exit 2 when a date differs beyond reconcile_tolerance)",
            define_reconcile, run_reconcile},
    Command{"schema", "--job NAME --type TYPE [--json]",
            "a data type's header history: since which slot each header\n"
            "holds, when it was seen, and what changed from the one before",
            define_schema, run_schema},
    Command{"backfill", "--job NAME --from SLOT --to SLOT [--force] [--dry-run]",
            "queue those slots (inclusive) again; done ones only with\n"
            "--force; works while the daemon runs",
            define_backfill, run_backfill},
    Command{"retry", "--job NAME (--slot SLOT | --failed) [--dry-run]",
            "queue failed slots again with a fresh give_up_after", define_retry, run_retry},
    Command{"verify", "[--job NAME] [--from SLOT --to SLOT] [--mode gzip|size] [--sink] [--repair]",
            "re-read archived partitions against their manifests (size,\n"
            "sha256, gzip); exit 2 on damage; --repair queues damaged\n"
            "slots still inside the vendor's 15-day retention; --sink\n"
            "checks the remote copies of jobs with a sink instead",
            define_verify, run_verify},
    Command{"adopt-archive", "",
            "make the state database describe archive_dir from now on (after\n"
            "moving the archive, or changing archive_dir on purpose); the\n"
            "daemon must be stopped",
            define_nothing, run_adopt_archive},
    Command{"fetch", "URL... --dir DIR [--verify gzip|size] [--inflate isal|zlib] [--parallel N]",
            "download links through the daemon's download-and-verify path;\n"
            "--inflate picks the gzip library (default: the fastest built)",
            define_fetch, run_fetch},
    Command{"version", "", "version of gio-exporter and its libraries", define_nothing,
            run_version},
};

}  // namespace

std::filesystem::path Args::config_path() const {
  return config ? std::filesystem::path{*config} : config::default_config_path();
}

std::span<const Command> command_table() {
  return kCommands;
}

}  // namespace gio::cli
