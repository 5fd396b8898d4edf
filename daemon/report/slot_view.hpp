#pragma once

// What every slot of a job is, as people look at it (issue 17): the calendar of
// `status --calendar`, the status page and its /api/slots. The ONE place that turns the
// store's rows, files and progress into shown states, reasons, sizes and time left, so
// the three views can never disagree.
//
// Secret-free by construction: it reads only slot rows, file records and progress
// (no link, token or code is stored there); last_error is as the daemon stored it
// (already redacted).

#include <array>
#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "slot/slot.hpp"
#include "state/state_store.hpp"

namespace gio::report {

// The shown states, in the order counts and legends list them. "waiting" is the store's
// pending or waiting; "not_ready": no row and its ready time is ahead; "unplanned": ready
// and no row (the daemon has not planned it, or it lies outside the backfill window).
inline constexpr std::array<std::string_view, 8> kShownStates = {
    "done", "waiting", "downloading", "uploading", "failed", "lost", "not_ready", "unplanned"};

// The shown state of one slot of `job`: its row's state, or for a slot without a row,
// not_ready / unplanned (lost once the vendor's retention has passed).
std::string_view shown_state(const config::Job& job, const Slot& slot,
                             const state::SlotRecord* record, Instant now);

// The job's next ask, as `systemctl list-timers` shows a timer's next run: the slot in
// the queue due first, or, when nothing is queued sooner, the next slot to become ready
// at its planned first ask (scheduler::PlannedFirstAsk: the readiness model's, which may
// differ from ready_at).
struct NextAsk {
  Instant at;
  std::string slot;
};
NextAsk next_ask(const config::Job& job, state::StateStore& store, const state::JobSummary& summary,
                 Instant now);

// Less than this before the vendor drops a slot that is not archived: at risk (as
// `status` counts it).
inline constexpr std::chrono::hours kAtRisk{72};

// One cell: a slot, or for a chart job one chart of a slot.
struct SlotView {
  std::string slot;
  Instant start;
  std::string_view state;  // one of kShownStates
  std::optional<std::string> chart;
  int attempts = 0;
  std::string api_status, last_error;
  std::size_t files = 0;
  std::uint64_t bytes = 0;
  std::optional<std::uint64_t> rows;  // nullopt when a file has no count
  // Downloading slots with a progress row only.
  std::optional<std::uint64_t> bytes_done;
  std::optional<std::uint64_t> bytes_total;
  std::optional<Instant> next_at;
  Instant lost_at;
  std::int64_t seconds_left = 0;
  bool at_risk = false;
};

struct DayView {
  std::string date;  // Beijing, YYYY-MM-DD
  std::vector<SlotView> cells;
};

struct JobView {
  const config::Job* job = nullptr;
  NextAsk next;
  std::array<int, kShownStates.size()> counts{};  // by kShownStates
  std::vector<SlotView> attention;                // failed, lost, at risk: most urgent first
  std::vector<DayView> days;                      // ascending
};

// from/to: Beijing dates YYYY-MM-DD, inclusive; default: the 15 days of retention up
// to today.
struct SlotQuery {
  std::optional<std::string> job{};
  std::optional<std::string> from{}, to{};
  // The status page's queries: `from` no older than kRetention before today and at most
  // kRetention + 1 days in all, since it renders on the daemon's loop (the CLI may ask
  // for up to kMaxRange: it is its own process).
  bool within_retention = false;
};

// A job the query names that the config does not have (the endpoint's 404).
class UnknownJob : public std::runtime_error {
 public:
  explicit UnknownJob(const std::string& job);
};

// The dates a query covers (Beijing, inclusive). Throws std::invalid_argument naming
// the parameter ("from" or "to") and why.
struct DateRange {
  Slot first, last;  // day slots
};
DateRange date_range(const SlotQuery& query, Instant now);

// One job over a range: two slot-table queries, one files query, one progress query.
JobView view_job(const config::Job& job, state::StateStore& store, Instant now,
                 const DateRange& range);
// Every job of the query, in config order. Throws UnknownJob, std::invalid_argument.
std::vector<JobView> view(const config::Config& config, state::StateStore& store, Instant now,
                          const SlotQuery& query);

boost::json::object slot_json(const SlotView& view);
// The /api/slots body (without "daemon": the endpoint adds it).
boost::json::object slots_json(const config::Config& config, state::StateStore& store, Instant now,
                               const SlotQuery& query);

}  // namespace gio::report
