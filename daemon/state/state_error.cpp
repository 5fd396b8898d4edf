#include "state/state_error.hpp"

#include <sqlite3.h>

namespace gio::state {

bool StateError::busy() const noexcept {
  const int primary = code_ & 0xff;  // the extended code's primary part
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

}  // namespace gio::state
