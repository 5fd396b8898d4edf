#pragma once

// The schema watch (issue 16): each job and data type's header history, one row per
// header, kept in the state store's `schemas` table as a step function over slot order
// (a row's columns hold from its since_slot up to the next row's). This file is the pure
// part: what a partition's header means for that history. Scheduler::watch_schemas
// (schemas.cpp) reads the headers, applies the decision and announces it.
//
// Slots complete out of order (backfill, retries), so a header is placed by its slot,
// not by when it arrived:
//   - the first header of a job and type is recorded silently;
//   - a header equal to the one in force at its slot changes nothing;
//   - a header equal to the next row's, from an older slot, moves that row back to this
//     slot, silently: the change it marks (warned about already) happened earlier;
//   - any other header is a change: a new row at its slot, warned about once. When the
//     slot is older than every row, the change is the one from this (older) header to
//     the first row's, and it is named at that row's slot;
//   - a slot that already begins a row, fetched again with another header, replaces
//     that row's header, and that is warned about as a change too.
// "Current" is the last row in slot order, whatever order the slots completed in.

#include <optional>
#include <string>
#include <vector>

#include "state/state_store.hpp"

namespace gio::scheduler {

// What differs from one header to the next: names added and removed (in the newer
// header's order, then the older's), and whether the names both share changed order.
struct HeaderDiff {
  std::vector<std::string> added, removed;
  bool reordered = false;

  bool empty() const { return added.empty() && removed.empty() && !reordered; }
  friend bool operator==(const HeaderDiff&, const HeaderDiff&) = default;
};

HeaderDiff diff_headers(const std::vector<std::string>& before,
                        const std::vector<std::string>& after);

// "a,b,c" (what the event line and the hook get).
std::string join_names(const std::vector<std::string>& names);

// What to do with the history (`rows`, since_slot ascending) when `slot` completed with
// `columns`.
struct SchemaDecision {
  enum class Kind {
    unchanged,  // nothing to store
    first,      // the first header: store `row`, silently
    moved,      // store `row` in place of the row at `remove`, silently
    changed,    // store `row` (replacing a row at its slot), and warn about `diff`
  };
  Kind kind = Kind::unchanged;
  state::SchemaRecord row{};          // the row to store (not for unchanged)
  std::optional<std::string> remove;  // moved: since_slot of the row it replaces
  HeaderDiff diff{};                  // changed: from the older header to the newer
  std::string changed_at{};           // changed: the slot the newer header is seen from

  bool warns() const { return kind == Kind::changed; }
};

SchemaDecision decide_schema(const std::vector<state::SchemaRecord>& rows, const std::string& slot,
                             const std::vector<std::string>& columns, Instant now);

// A partition's header from the headers of its parts (files with no header, empty ones,
// are left out): the first part's, and whether another part has a different one.
struct PartitionHeader {
  std::vector<std::string> columns;
  bool mixed = false;
};
std::optional<PartitionHeader> partition_header(
    const std::vector<std::vector<std::string>>& part_headers);

}  // namespace gio::scheduler
