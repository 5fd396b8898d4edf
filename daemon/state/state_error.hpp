#pragma once

#include <stdexcept>
#include <string>

namespace gio::state {

// A failure of the state database. code() is SQLite's extended result code
// (SQLITE_BUSY, SQLITE_CONSTRAINT_FOREIGNKEY, SQLITE_NOTADB, ...), so callers can
// tell "locked for longer than the busy timeout" from "the file is damaged".
// Messages name tables, columns and paths, never bound values.
class StateError : public std::runtime_error {
 public:
  StateError(const std::string& message, int code) : std::runtime_error(message), code_(code) {}
  int code() const noexcept { return code_; }
  // Another connection holds the database (SQLITE_BUSY or SQLITE_LOCKED, extended
  // codes included) for longer than the busy timeout: waiting and trying again may
  // succeed, unlike for any other code. Callers ask this instead of reading codes.
  bool busy() const noexcept;

 private:
  int code_;
};

}  // namespace gio::state
