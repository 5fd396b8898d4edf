#pragma once

// The state database's schema migrations (migrations.cpp): each step brings PRAGMA
// user_version one further, up to kLatestSchemaVersion.

#include "state/sqlite.hpp"

namespace gio::state {

// The schema this program reads and writes; one more with each new migration step.
constexpr int kLatestSchemaVersion = 8;

// Applies every step after `version`, in order, inside the caller's transaction (which
// also checks the foreign keys before it commits).
void apply_migrations(sqlite::Database& db, int version);

}  // namespace gio::state
