// `run` and `run --once`: the daemon's wiring of modules onto one io_context.

#include <pthread.h>
#include <spdlog/spdlog.h>

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
#include <set>
#include <stdexcept>
#include <thread>

#include "archive/archive.hpp"
#include "async/dir_watch.hpp"
#include "cli/archive_binding.hpp"
#include "cli/commands.hpp"
#include "cli/daemon_reload.hpp"
#include "cli/daemon_status.hpp"
#include "cli/http_settings.hpp"
#include "cli/status_page.hpp"
#include "download/downloader.hpp"
#include "http/client.hpp"
#include "http/proxy.hpp"
#include "ops/exporter_metrics.hpp"
#include "ops/hooks.hpp"
#include "ops/logging.hpp"
#include "ops/server.hpp"
#include "ops/service.hpp"
#include "reconcile/reconciler.hpp"
#include "scheduler/scheduler.hpp"
#include "sink/sink.hpp"
#include "state/db_lock.hpp"
#include "state/state_store.hpp"
#include "version.hpp"

namespace gio::cli {

namespace asio = boost::asio;

namespace {

// How long startup waits between tries on a database another process holds locked
// (the CLI in a long transaction, a backup): waited on, never fatal.
constexpr std::chrono::seconds kLockedRetry{1};
// How often the unit's STATUS line is brought up to date.
constexpr std::chrono::seconds kStatusEvery{30};
// How often the daemon checks that state_db still names the file it has open (where
// inotify watches its directory, only for what that misses: a directory above renamed),
// and how long /healthz answers 503 with the reason before it exits when it does not.
constexpr std::chrono::seconds kDatabaseWatchEvery{2};
constexpr std::chrono::seconds kDatabaseWatchedEvery{300};
constexpr std::chrono::seconds kGoneGrace{3};

// What `run` answers: stop (SIGINT, SIGTERM) and reload (SIGHUP).
::sigset_t daemon_signals() {
  ::sigset_t set;
  ::sigemptyset(&set);
  for (const int signal : {SIGINT, SIGTERM, SIGHUP}) {
    ::sigaddset(&set, signal);
  }
  return set;
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

// The daemon's parts, wired onto one io_context and built in this order (so that they
// are torn down in the reverse one). Each step of run() is one method.
class Daemon {
 public:
  Daemon(const config::Config& config, bool once)
      : config_(config), once_(once), clock_(command_clock()) {}

  int run();

 private:
  void watch_signals();
  bool lock_store();
  bool open_store();
  bool open_parts();
  bool bind_to_archive();
  void watch_database();
  void database_gone(const std::string& why);
  std::string database_problem();
  bool serve_metrics();
  void start();
  void report_to_systemd();
  int finish();
  // What /healthz knows of the scheduler's loop, and how long its writes have found the
  // database locked by another process.
  LoopHealth loop_health() const {
    return {.alive_at = scheduler_->alive_at(),
            .alive = scheduler_->loop_alive(),
            .database_locked_for = scheduler_->database_locked_for()};
  }

  const config::Config& config_;
  const bool once_;
  const Clock& clock_;
  asio::io_context io_;
  int exit_code_ = 0;
  bool interrupted_ = false;
  asio::signal_set stops_{io_, SIGINT, SIGTERM};
  asio::signal_set hangups_{io_, SIGHUP};
  std::function<void(const boost::system::error_code&, int)> on_hangup_;
  // Declared before the store: its descriptor must outlive SQLite's (see db_lock.hpp).
  std::optional<state::DatabaseLock> db_lock_;
  // Why state_db no longer names the open database ("" while it does): /healthz says it.
  std::string db_gone_;
  std::optional<state::StateStore> store_;
  asio::steady_timer gone_timer_{io_};
  std::optional<async::DirWatch> database_watch_;  // state_db's directory (watch_database)
  std::optional<archive::Archive> archive_;
  std::optional<http::Client> http_;
  ops::Registry registry_;
  std::optional<asio::thread_pool> verify_pool_;
  std::optional<download::Downloader> downloader_;
  std::optional<scheduler::Scheduler> scheduler_;
  // Dates whose reconcile failed (a busy database): tried again at the next slot done.
  reconcile::FailedDates failed_reconciles_;
  std::optional<StatusPage> status_page_;
  std::optional<ops::Server> listener_;
};

int Daemon::run() {
  ops::configure_logging(config_.log);
  // A file-size limit (RLIMIT_FSIZE) must fail the write that hits it, as a full disk
  // does, not kill the daemon with SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
  // Signals first: a SIGTERM during a slow startup (a busy database) must still end
  // in a clean exit, delivered as soon as the loop runs.
  watch_signals();
  // Startup: every failure here is a clear message and exit status 1.
  try {
    if (!lock_store()) {
      return 1;
    }
    if (!open_store()) {
      spdlog::info("stopped");
      return 0;
    }
  } catch (const std::exception& error) {
    spdlog::critical("cannot start: {}", error.what());
    return 1;
  }
  if (!open_parts() || !bind_to_archive()) {
    return 1;
  }
  ops::declare_exporter_metrics(registry_);
  registry_.set(ops::kBuildInfo, {{"version", kVersion}}, 1);
  registry_.set(ops::kStartTime, {}, static_cast<double>(to_unix(clock_.now())));
  // The config this process started with counts as its first successful load, as in
  // Prometheus itself.
  ops::record_config_load(registry_, true, static_cast<double>(to_unix(clock_.now())));
  verify_pool_.emplace(std::max(1u, std::thread::hardware_concurrency()));
  downloader_.emplace(*http_, *verify_pool_, archive::best_inflater(),
                      download::Limits{.max_part_size = config_.limits.max_part_size});
  // Sinks hash parts on the verify pool too: both are CPU work off the loop.
  scheduler_.emplace(io_.get_executor(), std::make_shared<const config::Config>(config_), clock_,
                     *store_, *archive_, *http_, *downloader_, registry_,
                     scheduler::SinkSupport{.hash_pool = &*verify_pool_});
  // Hourly against daily: the dates completed before this start, then each date as its
  // last slot is done.
  reconcile::catch_up(config_, *store_, clock_.now(), failed_reconciles_);
  scheduler_->on_slot_done([this](const config::Config& now_config, const config::Job& job,
                                  const Slot& slot) {
    reconcile::after_slot_done(now_config, *store_, job, slot, clock_.now(), failed_reconciles_);
  });
  // The metrics and health listener (not for one pass): bound before READY=1, so a
  // probe that follows READY finds it.
  if (!once_ && !serve_metrics()) {
    return 1;
  }
  spdlog::info("gio-exporter starting: {} ({}), now {}", once_ ? "one pass" : "daemon",
               config::summary(config_), format_utc(clock_.now()));
  start();
  watch_database();
  if (!once_) {
    report_to_systemd();
  }
  io_.run();
  return finish();
}

// SIGINT and SIGTERM stop the daemon; SIGHUP reloads the config once the scheduler
// runs (before, it is only noted).
void Daemon::watch_signals() {
  stops_.async_wait([this](const boost::system::error_code& error, int signal) {
    if (error) {
      return;  // cancelled: the work ended first
    }
    spdlog::info("received {}; stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
    ops::notify("STOPPING=1");
    interrupted_ = true;
    if (scheduler_) {
      scheduler_->stop();
    }
    io_.stop();
  });
  on_hangup_ = [this](const boost::system::error_code& error, int) {
    if (error) {
      return;
    }
    if (scheduler_) {
      const bool applied = reload(*scheduler_);
      if (applied && status_page_) {
        status_page_->reloaded(clock_.now());
      }
      ops::record_config_load(registry_, applied, static_cast<double>(to_unix(clock_.now())));
    } else {
      spdlog::warn("SIGHUP during startup: ignored; send it again once running");
    }
    hangups_.async_wait(on_hangup_);
  };
  hangups_.async_wait(on_hangup_);
  // The handlers are installed (the signal sets' constructors did): a signal held
  // since hold_daemon_signals() is delivered to them now, and waits for the loop.
  ::sigset_t held = daemon_signals();
  ::pthread_sigmask(SIG_UNBLOCK, &held, nullptr);
}

// Opens the state database, waiting (never failing) while another process holds it
// locked; false when a stop signal came during the wait. Other failures throw.
bool Daemon::open_store() {
  std::filesystem::create_directories(config_.state_db.parent_path());
  for (bool said = false;;) {
    try {
      store_.emplace(config_.state_db);
      return true;
    } catch (const state::StateError& error) {
      if (!error.busy()) {
        throw;
      }
      if (!std::exchange(said, true)) {
        spdlog::warn("the state database {} is locked by another process; waiting",
                     config_.state_db.string());
      }
    }
    // Signals are delivered while waiting: a stop during the wait is still clean.
    io_.run_for(kLockedRetry);
    if (interrupted_) {
      return false;
    }
  }
}

// The database checked, the archive and the HTTP client; false after saying why.
bool Daemon::open_parts() {
  try {
    try {
      store_->check_integrity();
    } catch (const state::StateError& error) {
      throw std::runtime_error("state database " + config_.state_db.string() + ": " + error.what());
    }
    // Before the archive is touched (its staging emptied, its root made): a database
    // that describes another archive stops here.
    check_archive(*store_, config_);
    archive_.emplace(config_.archive_dir, config_.archive_umask);
    http::Settings settings = http_settings(config_.http);
    // The vendor's answers name the hosts to fetch from: only the daemon checks where they
    // lead (`fetch` takes the URLs its operator typed).
    settings.links = {.enforce = true,
                      .allow_private = config_.http.allow_private_links,
                      .api_base = config_.http.api_base};
    http_.emplace(io_.get_executor(), std::move(settings));
    if (const std::string proxies = http::describe_proxies(http_->settings().proxy);
        !proxies.empty()) {
      spdlog::info("proxy: {}", proxies);
    }
  } catch (const std::exception& error) {
    spdlog::critical("cannot start: {}", error.what());
    return false;
  }
  if (!archive_->exclusive()) {
    spdlog::critical("cannot start: another gio-exporter is running on the archive {}",
                     config_.archive_dir.string());
    return false;
  }
  return true;
}

// One daemon per state database, whatever its archive: the database's lock is taken
// before it is opened (db_lock.hpp), and a second daemon exits at once naming the first.
bool Daemon::lock_store() {
  try {
    std::filesystem::create_directories(config_.state_db.parent_path());
    db_lock_.emplace(config_.state_db);
  } catch (const std::exception& error) {
    spdlog::critical("cannot start: {}", error.what());
    return false;
  }
  return true;
}

// Records the archive's identity in the database when neither has one yet (checked
// before the archive was opened; checked again here, now that this daemon holds it).
bool Daemon::bind_to_archive() {
  try {
    bind_archive(*store_, config_);
  } catch (const std::exception& error) {
    spdlog::critical("cannot start: {}", error.what());
    return false;
  }
  return true;
}

// At each change in its directory (and at each /healthz, and every few minutes, or
// every kDatabaseWatchEvery without inotify): does state_db still name the file this
// daemon has open? A deleted or replaced database would take every later change into a
// file no command reads, and the next start would begin again from nothing.
void Daemon::watch_database() {
  const std::string name = config_.state_db.filename().string();
  database_watch_.emplace(io_.get_executor(), config_.state_db.parent_path(),
                          std::set<std::string>{name}, [this] { database_problem(); });
  const auto period = database_watch_->active() ? kDatabaseWatchedEvery : kDatabaseWatchEvery;
  asio::co_spawn(io_, every(period, [this] { database_problem(); }), asio::detached);
}

std::string Daemon::database_problem() {
  if (db_gone_.empty() && db_lock_) {
    if (const std::string why = db_lock_->gone(); !why.empty()) {
      database_gone(why);
    }
  }
  return db_gone_;
}

// No more work (its record would be lost); /healthz answers 503 with the reason for
// kGoneGrace, so that monitoring sees why, then the daemon exits with status 1.
void Daemon::database_gone(const std::string& why) {
  db_gone_ = "the state database " + config_.state_db.string() + " " + why +
             " while the daemon had it open; what it records from now on would be lost, so "
             "the daemon stops (restore the database, or run `gio-exporter adopt-archive` "
             "for a new one, then start again)";
  spdlog::critical("{}", db_gone_);
  ops::notify("STATUS=" + db_gone_);
  exit_code_ = 1;
  if (scheduler_) {
    scheduler_->stop();
  }
  gone_timer_.expires_after(listener_ ? kGoneGrace : std::chrono::seconds{0});
  gone_timer_.async_wait([this](const boost::system::error_code&) {
    stops_.cancel();
    hangups_.cancel();
    io_.stop();
  });
}

bool Daemon::serve_metrics() {
  if (config_.metrics.listen.empty()) {
    return true;
  }
  try {
    status_page_.emplace(*store_, clock_);
    listener_.emplace(io_.get_executor(), config_.metrics.listen,
                      [this](const ops::Request& request) -> ops::Reply {
                        if (request.path == "/metrics") {
                          return scrape(scheduler_->config(), *store_, registry_, clock_.now());
                        }
                        if (request.path == "/healthz") {
                          if (const std::string why = database_problem(); !why.empty()) {
                            return unhealthy_database(why);
                          }
                          return health(loop_health(), *store_, clock_.now());
                        }
                        if (auto page = status_page_->answer(request, scheduler_->config())) {
                          return std::move(*page);
                        }
                        return {.status = 404, .body = "try /, /api/slots, /metrics or /healthz\n"};
                      });
  } catch (const std::exception& error) {
    spdlog::critical("cannot start: {}", error.what());
    return false;
  }
  asio::co_spawn(io_, listener_->run(), asio::detached);
  spdlog::info("status page on http://{}/, metrics and health on /metrics and /healthz",
               config_.metrics.listen);
  return true;
}

// The scheduler's loop (or one pass); when it ends, the io_context stops.
void Daemon::start() {
  asio::co_spawn(io_, once_ ? scheduler_->run_once() : scheduler_->run(),
                 [this](std::exception_ptr error) {
                   if (error) {
                     try {
                       std::rethrow_exception(error);
                     } catch (const std::exception& e) {
                       spdlog::critical("fatal: {}", e.what());
                     }
                     exit_code_ = 1;
                   }
                   if (!db_gone_.empty()) {
                     return;  // database_gone() ends the loop once /healthz has said why
                   }
                   stops_.cancel();
                   hangups_.cancel();
                   io_.stop();
                 });
}

// READY=1, the unit's STATUS line every kStatusEvery, and the watchdog's pings.
void Daemon::report_to_systemd() {
  const auto report_status = [this] {
    ops::notify("STATUS=" + status_line(scheduler_->config(), *store_, clock_.now()));
  };
  report_status();
  ops::notify("READY=1");
  if (std::getenv("NOTIFY_SOCKET") != nullptr) {
    // Without a service manager to tell, an idle daemon does not wake for it.
    asio::co_spawn(io_, every(kStatusEvery, report_status), asio::detached);
  }
  if (const auto interval = ops::watchdog_interval()) {
    // Pinged from the loop itself: a loop that stops going round stops the pings,
    // and systemd restarts the service.
    asio::co_spawn(io_,
                   every(*interval / 2,
                         [this] {
                           if (scheduler_->loop_alive()) {
                             ops::notify("WATCHDOG=1");
                           }
                         }),
                   asio::detached);
  }
}

int Daemon::finish() {
  if (interrupted_ || exit_code_ != 0) {
    // Stopping mid-work is safe by construction: every state change is committed
    // before it is acted on, and files enter the archive only by rename after fsync.
    // So the in-flight coroutines are not unwound (their frames hold sockets and
    // timers of this loop); the process ends here, as after a crash, but on purpose.
    // Hooks are not the daemon's to leave behind: they would keep running, holding
    // what they inherited, after the service is stopped.
    if (const std::size_t hooks = ops::end_running_hooks(); hooks > 0) {
      ops::log_event(ops::Level::info, "hooks_ended", "hooks still running were ended",
                     {{"hooks", hooks}});
    }
    // rclone too: an upload cut short is landed again from the start at the next start.
    sink::Sink::end_all();
    spdlog::info("stopped");
    spdlog::shutdown();
    std::fflush(nullptr);
    std::_Exit(exit_code_);
  }
  verify_pool_->join();
  // A pass that ran but left slots failed or lost says so in its exit status, for the
  // timer unit that runs it; the slots themselves wait in `gaps`.
  const scheduler::Scheduler::Ended ended = scheduler_->ended();
  if (once_ && ended.failed + ended.lost > 0) {
    spdlog::warn(
        "pass complete: {} slot(s) failed, {} lost (exit status {}; gio-exporter gaps "
        "lists them)",
        ended.failed, ended.lost, kExitSlotsFailed);
    return kExitSlotsFailed;
  }
  spdlog::info("pass complete");
  return 0;
}

}  // namespace

void hold_daemon_signals() {
  ::sigset_t held = daemon_signals();
  ::pthread_sigmask(SIG_BLOCK, &held, nullptr);
}

int run_daemon(const config::Config& config, bool once) {
  // A config loaded without its secrets would only fail at the first API call.
  if (config.secrets != config::SecretMode::load) {
    throw std::logic_error("run needs a config loaded with its secrets");
  }
  Daemon daemon{config, once};
  return daemon.run();
}

}  // namespace gio::cli
