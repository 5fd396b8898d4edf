// `run` and `run --once`: the daemon's wiring of modules onto one io_context.

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <thread>

#include "archive/archive.hpp"
#include "cli/commands.hpp"
#include "download/downloader.hpp"
#include "http/client.hpp"
#include "ops/exporter_metrics.hpp"
#include "ops/logging.hpp"
#include "ops/server.hpp"
#include "ops/service.hpp"
#include "scheduler/scheduler.hpp"
#include "state/state_store.hpp"
#include "version.hpp"

namespace gio::cli {

namespace asio = boost::asio;

http::Settings http_settings(const config::HttpSettings& http) {
  http::Settings settings;
  settings.timeout = http.timeout;
  settings.ca_file = http.ca_file;
  return settings;
}

namespace {

// How long startup waits between tries on a database another process holds locked
// (the CLI in a long transaction, a backup): waited on, never fatal.
constexpr std::chrono::seconds kLockedRetry{1};
// How often the unit's STATUS line is brought up to date.
constexpr std::chrono::seconds kStatusEvery{30};

bool is_locked(const state::StateError& error) {
  const int primary = error.code() & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

// SIGHUP: the config file read again and validated whole; applied only when valid and
// when nothing that needs a restart changed, else the running config stays.
void reload(scheduler::Scheduler& scheduler) {
  ops::notify(ops::reloading_state());
  // systemd waits for READY=1 after RELOADING=1, whatever the outcome.
  struct Ready {
    ~Ready() { ops::notify("READY=1"); }
  } ready;
  const config::Config& running = scheduler.config();
  spdlog::info("event=reload file={}", running.source.string());
  config::LoadResult loaded = config::load_config(running.source);
  if (!loaded.config) {
    for (const config::Problem& problem : loaded.problems) {
      spdlog::error("reload: {}", problem.to_string());
    }
    spdlog::error(
        "event=reload_failed reason=\"the config has {} problem(s); still running the previous "
        "one\"",
        loaded.problems.size());
    return;
  }
  if (const auto changes = scheduler::restart_only_changes(running, *loaded.config);
      !changes.empty()) {
    std::string joined;
    for (const std::string& change : changes) {
      joined += (joined.empty() ? "" : ", ") + change;
    }
    spdlog::error(
        "event=reload_failed reason=\"{}: these need a restart; still running the previous "
        "config\"",
        joined);
    return;
  }
  ops::configure_logging(loaded.config->log);
  const std::string summary = config::summary(*loaded.config);
  scheduler.reload(std::make_shared<const config::Config>(std::move(*loaded.config)));
  spdlog::info("event=reloaded {}", summary);
}

// Runs `tick` every `period` on the loop, for as long as the loop runs; a tick that
// throws is logged and the next one runs all the same.
asio::awaitable<void> every(std::chrono::steady_clock::duration period,
                            std::function<void()> tick) {
  asio::steady_timer timer{co_await asio::this_coro::executor};
  for (;;) {
    timer.expires_after(period);
    co_await timer.async_wait(asio::use_awaitable);
    try {
      tick();
    } catch (const std::exception& error) {
      spdlog::warn("periodic task failed: {}", error.what());
    }
  }
}

}  // namespace

int run_daemon(const config::Config& config, bool once) {
  ops::configure_logging(config.log);
  const Clock& clock = command_clock();
  // A file-size limit (RLIMIT_FSIZE) must fail the write that hits it, as a full disk
  // does, not kill the daemon with SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);

  // Signals first: a SIGTERM during a slow startup (a busy database) must still end
  // in a clean exit, delivered as soon as the loop runs.
  asio::io_context io;
  int exit_code = 0;
  bool interrupted = false;
  scheduler::Scheduler* running = nullptr;
  asio::signal_set signals{io, SIGINT, SIGTERM};
  signals.async_wait([&](const boost::system::error_code& error, int signal) {
    if (error) {
      return;  // cancelled: the work ended first
    }
    spdlog::info("received {}; stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
    ops::notify("STOPPING=1");
    interrupted = true;
    if (running != nullptr) {
      running->stop();
    }
    io.stop();
  });

  // SIGHUP reloads the config (once the scheduler runs; before, it is only noted).
  asio::signal_set hangups{io, SIGHUP};
  std::function<void(const boost::system::error_code&, int)> on_hangup =
      [&](const boost::system::error_code& error, int) {
        if (error) {
          return;
        }
        if (running != nullptr) {
          reload(*running);
        } else {
          spdlog::warn("SIGHUP during startup: ignored; send it again once running");
        }
        hangups.async_wait(on_hangup);
      };
  hangups.async_wait(on_hangup);

  // Startup: every failure here is a clear message and exit status 1.
  std::optional<state::StateStore> store;
  std::optional<archive::Archive> archive;
  std::optional<http::Client> http;
  try {
    std::filesystem::create_directories(config.state_db.parent_path());
    for (bool said = false;;) {
      try {
        store.emplace(config.state_db);
        break;
      } catch (const state::StateError& error) {
        if (!is_locked(error)) {
          throw;
        }
        if (!std::exchange(said, true)) {
          spdlog::warn("the state database {} is locked by another process; waiting",
                       config.state_db.string());
        }
      }
      // Signals are delivered while waiting: a stop during the wait is still clean.
      io.run_for(kLockedRetry);
      if (interrupted) {
        spdlog::info("stopped");
        return 0;
      }
    }
    try {
      store->check_integrity();
    } catch (const state::StateError& error) {
      throw std::runtime_error("state database " + config.state_db.string() + ": " + error.what());
    }
    archive.emplace(config.archive_dir, config.archive_umask);
    http.emplace(io.get_executor(), http_settings(config.http));
  } catch (const std::exception& error) {
    spdlog::critical("cannot start: {}", error.what());
    return 1;
  }
  if (!archive->exclusive()) {
    spdlog::critical("cannot start: another gio-exporter is running on the archive {}",
                     config.archive_dir.string());
    return 1;
  }

  ops::Registry registry;
  ops::declare_exporter_metrics(registry);
  registry.set(ops::kBuildInfo, {{"version", kVersion}}, 1);
  registry.set(ops::kStartTime, {}, static_cast<double>(to_unix(clock.now())));

  asio::thread_pool verify_pool{std::max(1u, std::thread::hardware_concurrency())};
  download::Downloader downloader{*http, verify_pool};
  scheduler::Scheduler scheduler{io.get_executor(),
                                 std::make_shared<const config::Config>(config),
                                 clock,
                                 *store,
                                 *archive,
                                 *http,
                                 downloader,
                                 registry};
  running = &scheduler;

  // The metrics and health listener (not for one pass): bound before READY=1, so a
  // probe that follows READY finds it.
  std::optional<ops::Server> listener;
  if (!once && !config.metrics.listen.empty()) {
    try {
      listener.emplace(io.get_executor(), config.metrics.listen,
                       [&](std::string_view path) -> ops::Reply {
                         if (path == "/metrics") {
                           return ops::scrape(scheduler.config(), *store, registry, clock.now());
                         }
                         if (path == "/healthz") {
                           return ops::health({scheduler.alive_at(), scheduler.loop_alive()},
                                              *store, clock.now());
                         }
                         return {.status = 404, .body = "try /metrics or /healthz\n"};
                       });
    } catch (const std::exception& error) {
      spdlog::critical("cannot start: {}", error.what());
      return 1;
    }
    asio::co_spawn(io, listener->run(), asio::detached);
    spdlog::info("metrics and health on http://{}/metrics and /healthz", config.metrics.listen);
  }

  spdlog::info("gio-exporter starting: {} ({}), now {}", once ? "one pass" : "daemon",
               config::summary(config), format_utc(clock.now()));

  asio::co_spawn(io, once ? scheduler.run_once() : scheduler.run(), [&](std::exception_ptr error) {
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        spdlog::critical("fatal: {}", e.what());
      }
      exit_code = 1;
    }
    signals.cancel();
    hangups.cancel();
    io.stop();
  });
  if (!once) {
    const auto report_status = [&] {
      ops::notify("STATUS=" + ops::status_line(scheduler.config(), *store, clock.now()));
    };
    report_status();
    ops::notify("READY=1");
    asio::co_spawn(io, every(kStatusEvery, report_status), asio::detached);
    if (const auto interval = ops::watchdog_interval()) {
      // Pinged from the loop itself: a loop that stops going round stops the pings,
      // and systemd restarts the service.
      asio::co_spawn(io,
                     every(*interval / 2,
                           [&scheduler] {
                             if (scheduler.loop_alive()) {
                               ops::notify("WATCHDOG=1");
                             }
                           }),
                     asio::detached);
    }
  }
  io.run();

  if (interrupted || exit_code != 0) {
    // Stopping mid-work is safe by construction: every state change is committed
    // before it is acted on, and files enter the archive only by rename after fsync.
    // So the in-flight coroutines are not unwound (their frames hold sockets and
    // timers of this loop); the process ends here, as after a crash, but on purpose.
    spdlog::info("stopped");
    spdlog::shutdown();
    std::fflush(nullptr);
    std::_Exit(exit_code);
  }
  verify_pool.join();
  spdlog::info("{}", exit_code == 0 ? "pass complete" : "stopped after an error");
  return exit_code;
}

}  // namespace gio::cli
