#pragma once

// What one pass of slot work came to, as a value. A worker never records its slot's
// fate itself: the scheduler turns an Outcome into the state change, the event line,
// the metrics and the hook, in one place (scheduler/settle.cpp).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

namespace gio::work {

// Every part, chart or list of the slot is archived and its partitions are complete.
struct Done {
  std::size_t files = 0;    // in the slot's partitions (this pass and earlier ones)
  std::uint64_t bytes = 0;  // their total size
  std::string items{};      // "charts=N" or "lists=N" for chart and user-list jobs, else ""
  std::optional<std::string> api_status{};  // the status to record, when this pass has a new one
};

// The vendor has not finished the export: asked again at the next poll.
struct Wait {
  std::string api_status{};  // api::to_string of the answer
  bool not_exists = false;   // the vendor knows no such export (yet)
  std::string detail{};      // " charts_doing=N" and the like, for the event line; may be empty
};

enum class RetryClass {
  transient,      // network, 5xx, 429, a garbled answer, parts not archived: backoff
  export_failed,  // the vendor's export failed (ERROR): asked again after poll_every
  links_expired,  // the file host refused the links (most often expired): ask again at once
  held,           // the API call was held (api::Error::held): nothing asked, still due
};

// Worth trying again later; nothing archived is lost.
struct Retry {
  RetryClass kind = RetryClass::transient;
  std::string reason{};
  std::optional<std::chrono::seconds> retry_after{};  // the server's Retry-After
  std::optional<std::string> api_status{};            // export_failed: the vendor's status
};

// Trying again will not help (credentials, an unknown id, an answer the archive cannot
// hold): the slot needs a person, or `gio-exporter retry` once the cause is fixed.
struct Failed {
  std::string reason{};
};

// What the pass did on the way, whatever its result (the metrics and the log hear of
// each step as it happens, through work::Observer).
struct Progress {
  bool asked = false;              // the pass made at least one API call
  std::size_t archived_files = 0;  // files published into the archive
  std::uint64_t archived_bytes = 0;
};

using Result = std::variant<Done, Wait, Retry, Failed>;

struct Outcome {
  Result result{};
  Progress progress{};
};

}  // namespace gio::work
