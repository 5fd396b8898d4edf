#pragma once

// Chart exports (seed 000) and the vendor's other analyses that answer the same way
// (funnels, retentions, frequencies): the request for one slot, the asynchronous
// answer, and the CSV made from a finished document.
//
// The finished document is archived byte-exact as chart.json; chart.csv is a
// convenience view of its `meta` and `data`, never a replacement.

#include <boost/system/result.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "slot/slot.hpp"

namespace gio::chart {

inline constexpr std::string_view kJsonName = "chart.json";
inline constexpr std::string_view kCsvName = "chart.csv";
// The vendor cuts a chart download at this many rows; reaching it means data is missing.
inline constexpr std::size_t kRowCap = 200'000;

// What the API is asked for one slot: [start_ms, end_ms], both inclusive unix
// milliseconds. The slot's Beijing boundaries; end_ms is the slot's last millisecond.
struct TimeRange {
  std::int64_t start_ms = 0;
  std::int64_t end_ms = 0;
};
TimeRange time_range(const Slot& slot);

// The path and query below api_base for one chart id of a chart job and one slot:
// /v3/exporter/projects/{project_uid}/{resource}/{id}?interval=..&startTime=..&endTime=..
// plus conversionWindow (funnels) or range (retentions) when the job sets them.
std::string request_path(const config::ChartJob& chart_job, std::string_view project_uid,
                         std::string_view chart_id, const Slot& slot);

struct Answer {
  bool doing = false;    // {"id":..,"status":"doing"}: still being computed, ask again
  std::string id;        // the answer's id (the random id while doing, the chart's after)
  std::size_t rows = 0;  // rows in `data` of a finished document
  std::string csv;       // chart.csv of a finished document (RFC 4180, CRLF)
};

// Parses one answer. A finished document must be an object with a `meta` array of
// objects with a string `name` and a `data` array of arrays; anything else is an
// error naming what is wrong (never echoing the document). A `status` other than
// "doing" (e.g. "failed") is an error too, carrying the vendor's errorMsg if any.
boost::system::result<Answer, std::string> parse_answer(std::string_view body);

// User lists (resource: segmentations | tags). The slot only decides when the list is
// taken (a daily or hourly snapshot): the API has no time range.

// /v3/exporter/projects/{project_uid}/{segmentations|tags}/{id}/users?expire=M
// plus &parameters=<percent-encoded> when the job sets them.
std::string user_list_path(const config::UserListJob& lists, std::string_view project_uid,
                           std::string_view list_id, std::chrono::minutes expire);

enum class UserListStatus { doing, done, failed };

struct UserListAnswer {
  UserListStatus status = UserListStatus::doing;
  std::vector<std::string> links;  // downloadLinks of a done answer (may be empty)
  std::string error_message;       // the vendor's errorMsg
};

// Parses one user-list answer. The error names what is wrong with the document
// (never its links: they carry signatures).
boost::system::result<UserListAnswer, std::string> parse_user_list(std::string_view body);

// RFC 4180 field: quoted when it holds ',', '"', CR or LF, quotes doubled.
std::string csv_field(std::string_view text);

}  // namespace gio::chart
