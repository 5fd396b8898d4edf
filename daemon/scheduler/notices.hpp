#pragma once

// What the scheduler's files share: the slot key of in-flight work, and the once-only
// log events already written for a slot (the store's `notices` bitmask), so that a
// restart or the next poll does not repeat them.

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace gio::scheduler {

constexpr int kNoticeWaiting = 1;    // event=slot_waiting
constexpr int kNoticeAtRisk72h = 2;  // event=slot_at_risk, 72 h before loss
constexpr int kNoticeAtRisk24h = 4;  // event=slot_at_risk, 24 h before loss
constexpr int kNoticeNotExists = 8;  // event=slot_not_exists: NOT_EXISTS past the grace
// event=local_pruned: a landed slot's local copy was removed after its sink's keep_local.
constexpr int kNoticeLocalPruned = 16;
// The slot became done by landing on its job's sink: only such a slot's local copy is
// pruned (not one done before its job had a sink).
constexpr int kNoticeLanded = 32;
constexpr std::chrono::hours kAtRisk72h{72};
constexpr std::chrono::hours kAtRisk24h{24};
// Slots landed at once per sink, and parts pre-uploaded at once per sink while slots
// download: each is one rclone process, so this bounds the processes and the sink's
// bandwidth share, whatever parallel_downloads says.
constexpr std::size_t kUploadsPerSink = 2;
// An upload that failed is tried again after 30 s, doubling up to this.
constexpr std::chrono::seconds kFirstUploadBackoff{30};
constexpr std::chrono::minutes kMaxUploadBackoff{10};

inline std::string slot_key(std::string_view job, std::string_view slot) {
  return std::string{job} + "/" + std::string{slot};
}

}  // namespace gio::scheduler
