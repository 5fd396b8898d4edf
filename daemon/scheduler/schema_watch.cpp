#include "scheduler/schema_watch.hpp"

#include <algorithm>
#include <set>

namespace gio::scheduler {

HeaderDiff diff_headers(const std::vector<std::string>& before,
                        const std::vector<std::string>& after) {
  HeaderDiff diff;
  const std::set<std::string> old_names(before.begin(), before.end());
  const std::set<std::string> new_names(after.begin(), after.end());
  for (const std::string& name : after) {
    if (!old_names.contains(name)) {
      diff.added.push_back(name);
    }
  }
  for (const std::string& name : before) {
    if (!new_names.contains(name)) {
      diff.removed.push_back(name);
    }
  }
  // Reordered: the names both headers have do not come in the same order. An added or
  // removed name alone moves the others' positions, which is not a reorder.
  std::vector<std::string> kept_before;
  std::vector<std::string> kept_after;
  std::copy_if(before.begin(), before.end(), std::back_inserter(kept_before),
               [&](const std::string& name) { return new_names.contains(name); });
  std::copy_if(after.begin(), after.end(), std::back_inserter(kept_after),
               [&](const std::string& name) { return old_names.contains(name); });
  diff.reordered = kept_before != kept_after;
  return diff;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) {
    text += (text.empty() ? "" : ",") + name;
  }
  return text;
}

SchemaDecision decide_schema(const std::vector<state::SchemaRecord>& rows, const std::string& slot,
                             const std::vector<std::string>& columns, Instant now) {
  SchemaDecision decision;
  decision.row = {.since_slot = slot, .columns = columns, .seen_at = now};
  if (rows.empty()) {
    decision.kind = SchemaDecision::Kind::first;
    return decision;
  }
  // Slot names of one job sort as their starts do (zero-padded, one granularity).
  const auto next = std::upper_bound(rows.begin(), rows.end(), slot,
                                     [](const std::string& name, const state::SchemaRecord& row) {
                                       return name < row.since_slot;
                                     });
  const state::SchemaRecord* in_force = next == rows.begin() ? nullptr : &*(next - 1);
  if (in_force != nullptr && in_force->columns == columns) {
    return decision;  // unchanged
  }
  if (next != rows.end() && next->columns == columns) {
    // An older slot already has the next row's header: that row starts here. Its own
    // change was announced when it was stored (or it was the first header).
    decision.kind = SchemaDecision::Kind::moved;
    decision.row.seen_at = next->seen_at;
    decision.remove = next->since_slot;
    return decision;
  }
  decision.kind = SchemaDecision::Kind::changed;
  if (in_force != nullptr) {
    decision.diff = diff_headers(in_force->columns, columns);
    decision.changed_at = slot;
  } else {
    // Older than every row: the change is from this header to the first row's.
    decision.diff = diff_headers(columns, next->columns);
    decision.changed_at = next->since_slot;
  }
  return decision;
}

std::optional<PartitionHeader> partition_header(
    const std::vector<std::vector<std::string>>& part_headers) {
  std::optional<PartitionHeader> header;
  for (const std::vector<std::string>& columns : part_headers) {
    if (columns.empty()) {
      continue;
    }
    if (!header) {
      header = PartitionHeader{.columns = columns};
    } else if (header->columns != columns) {
      header->mixed = true;
    }
  }
  return header;
}

}  // namespace gio::scheduler
