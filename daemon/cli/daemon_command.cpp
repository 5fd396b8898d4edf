// `run` and `run --once`: the daemon's wiring of modules onto one io_context.

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <thread>

#include "archive/archive.hpp"
#include "cli/commands.hpp"
#include "download/downloader.hpp"
#include "http/client.hpp"
#include "scheduler/scheduler.hpp"
#include "state/state_store.hpp"

namespace gio::cli {

namespace asio = boost::asio;

http::Settings http_settings(const config::HttpSettings& http) {
  http::Settings settings;
  settings.timeout = http.timeout;
  settings.ca_file = http.ca_file;
  return settings;
}

int run_daemon(const config::Config& config, bool once) {
  configure_logging(config.log);
  const Clock& clock = command_clock();

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
    interrupted = true;
    if (running != nullptr) {
      running->stop();
    }
    io.stop();
  });

  // Without a handler SIGHUP would end the process; reloading is not built yet.
  asio::signal_set hangups{io, SIGHUP};
  std::function<void(const boost::system::error_code&, int)> on_hangup =
      [&](const boost::system::error_code& error, int) {
        if (error) {
          return;
        }
        spdlog::warn(
            "SIGHUP: reloading the config is not supported by this version; "
            "restart gio-exporter to apply config changes");
        hangups.async_wait(on_hangup);
      };
  hangups.async_wait(on_hangup);

  // Startup: every failure here is a clear message and exit status 1.
  std::optional<state::StateStore> store;
  std::optional<archive::Archive> archive;
  std::optional<http::Client> http;
  try {
    std::filesystem::create_directories(config.state_db.parent_path());
    store.emplace(config.state_db);
    archive.emplace(config.archive_dir);
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

  asio::thread_pool verify_pool{std::max(1u, std::thread::hardware_concurrency())};
  download::Downloader downloader{*http, verify_pool};
  scheduler::Scheduler scheduler{io.get_executor(), config, clock,     *store,
                                 *archive,          *http,  downloader};
  running = &scheduler;

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
