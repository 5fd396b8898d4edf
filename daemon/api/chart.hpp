#pragma once

// Chart exports (seed 000) and the vendor's other analyses that answer the same way
// (funnels, retentions, frequencies): the request for one slot, the asynchronous
// answer, and the CSV made from a finished document. Also the user lists
// (segmentations, tags), asked below the same path and answered with download links.
//
// The finished document is archived byte-exact as chart.json; chart.csv is a
// convenience view of its `meta` and `data`, never a replacement.

#include <boost/system/result.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "slot/slot.hpp"

namespace gio::api {

inline constexpr std::string_view kChartJsonName = "chart.json";
inline constexpr std::string_view kChartCsvName = "chart.csv";
// The vendor cuts a chart download at this many rows; reaching it means data is missing.
inline constexpr std::size_t kChartRowCap = 200'000;

// What the API is asked for one slot: [start_ms, end_ms], both inclusive unix
// milliseconds. The slot's Beijing boundaries; end_ms is the slot's last millisecond.
struct TimeRange {
  std::int64_t start_ms = 0;
  std::int64_t end_ms = 0;
};
TimeRange time_range(const Slot& slot);

// What one chart-like request asks (config::ChartResource stays the enum in config/).
struct ChartRequest {
  config::ChartResource resource = config::ChartResource::charts;
  std::string chart_id{};
  config::Duration interval{std::chrono::days{1}};
  std::optional<std::chrono::days> conversion_window{};  // sent for funnels only
  std::string range{};                                   // sent for retentions only
};

// The path and query below api_base for one chart and one slot:
// /v3/exporter/projects/{project_uid}/{resource}/{id}?interval=..&startTime=..&endTime=..
// plus conversionWindow (funnels) or range (retentions) when the request sets them.
std::string chart_path(std::string_view project_uid, const ChartRequest& request, const Slot& slot);

enum class ChartStatus { doing, done };

std::string_view to_string(ChartStatus status);  // "doing" / "done"

struct ChartAnswer {
  // doing: {"id":..,"status":"doing"}, still being computed: ask again.
  ChartStatus status = ChartStatus::doing;
  std::string body{};                  // the finished document, byte-exact (archived as chart.json)
  std::size_t rows = 0;                // rows in `data`
  std::string csv{};                   // chart.csv (RFC 4180, CRLF)
  std::vector<std::string> columns{};  // chart.csv's header: the `meta` names
};

// Parses one answer; a finished one keeps `body` in ChartAnswer::body. A finished
// document must be an object with a `meta` array of objects with a string `name` and a
// `data` array of arrays; anything else is an error naming what is wrong (never
// echoing the document). A `status` other than "doing" without `meta` (e.g. "failed")
// is an error too, carrying the vendor's errorMsg if any.
boost::system::result<ChartAnswer, std::string> parse_chart_answer(std::string_view body);

// User lists (resource: segmentations | tags). The slot only decides when the list is
// taken (a daily or hourly snapshot): the API has no time range.
struct UserListRequest {
  config::ChartResource resource = config::ChartResource::segmentations;
  std::string list_id{};
  std::string parameters{};  // sent percent-encoded when not empty
};

// /v3/exporter/projects/{project_uid}/{segmentations|tags}/{id}/users?expire=M
// plus &parameters=<percent-encoded> when the request sets them.
std::string user_list_path(std::string_view project_uid, const UserListRequest& request,
                           std::chrono::minutes expire);

enum class UserListStatus { doing, done, failed };

std::string_view to_string(UserListStatus status);  // "doing" / "done" / "failed"

struct UserListAnswer {
  UserListStatus status = UserListStatus::doing;
  std::vector<std::string> links{};  // downloadLinks of a done answer (may be empty)
  std::string error_message{};       // the vendor's errorMsg
};

// Parses one user-list answer. The error names what is wrong with the document
// (never its links: they carry signatures).
boost::system::result<UserListAnswer, std::string> parse_user_list(std::string_view body);

// RFC 4180 field: quoted when it holds ',', '"', CR or LF, quotes doubled.
std::string csv_field(std::string_view text);

}  // namespace gio::api
