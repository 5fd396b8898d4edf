// `run`'s SIGHUP (daemon_reload.hpp).

#include "cli/daemon_reload.hpp"

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "ops/logging.hpp"
#include "ops/service.hpp"

namespace gio::cli {

bool reload(scheduler::Scheduler& scheduler) {
  ops::notify(ops::reloading_state());
  // systemd waits for READY=1 after RELOADING=1, whatever the outcome.
  struct Ready {
    ~Ready() { ops::notify("READY=1"); }
  } ready;
  const config::Config& running = scheduler.config();
  ops::log_event(ops::Level::info, "reload", "reading the config again",
                 {{"file", running.source.string()}});
  config::LoadResult loaded = config::load_config(running.source, config::SecretMode::load);
  if (!loaded.config) {
    for (const config::Problem& problem : loaded.problems) {
      spdlog::error("reload: {}", problem.to_string());
    }
    ops::log_event(ops::Level::error, "reload_failed", "reload refused",
                   {{"problems", loaded.problems.size()},
                    {"reason", "the config has " + std::to_string(loaded.problems.size()) +
                                   " problem(s); still running the previous one"}});
    return false;
  }
  if (const auto changes = scheduler::restart_only_changes(running, *loaded.config);
      !changes.empty()) {
    std::string joined;
    for (const std::string& change : changes) {
      joined += (joined.empty() ? "" : ", ") + change;
    }
    ops::log_event(
        ops::Level::error, "reload_failed", "reload refused",
        {{"reason", joined + ": these need a restart; still running the previous config"}});
    return false;
  }
  ops::configure_logging(loaded.config->log);
  const std::string summary = config::summary(*loaded.config);
  const scheduler::JobChanges jobs = scheduler::job_changes(running, *loaded.config);
  const auto names = [](const std::vector<std::string>& list) {
    std::string joined;
    for (const std::string& name : list) {
      joined += (joined.empty() ? "" : ",") + name;
    }
    return joined.empty() ? std::string{"-"} : joined;
  };
  const std::size_t job_count = loaded.config->jobs.size();
  scheduler.reload(std::make_shared<const config::Config>(std::move(*loaded.config)));
  ops::log_event(ops::Level::info, "reloaded", "config reloaded: " + summary,
                 {{"jobs", job_count},
                  {"added", names(jobs.added)},
                  {"removed", names(jobs.removed)},
                  {"changed", names(jobs.changed)}});
  return true;
}

}  // namespace gio::cli
