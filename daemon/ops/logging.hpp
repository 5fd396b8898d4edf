#pragma once

// The process-wide logger: one line per record on stderr, in the configured format,
// with journald's priority prefixes when stderr is the journal.

#include "config/config.hpp"

namespace gio::ops {

// Sets up (or, on a reload, changes) the process-wide logger: the config's level and
// format, and journald's priority prefixes when stderr is the journal.
void configure_logging(const config::LogSettings& log);

}  // namespace gio::ops
