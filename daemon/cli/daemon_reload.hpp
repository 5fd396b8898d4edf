#pragma once
// `run`'s SIGHUP: the config read again and applied to the running scheduler
// (daemon_command.cpp wires it to the signal).

#include "scheduler/scheduler.hpp"

namespace gio::cli {

// SIGHUP: the config file read again and validated whole; applied only when valid and
// when nothing that needs a restart changed, else the running config stays. True when
// applied. Tells systemd RELOADING=1, then READY=1 whatever the outcome.
bool reload(scheduler::Scheduler& scheduler);

}  // namespace gio::cli
