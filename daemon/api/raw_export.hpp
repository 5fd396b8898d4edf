#pragma once

// The answers of the raw event export endpoints (seed 002: all types at once, or one
// type), parsed and checked.

#include <boost/system/result.hpp>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace gio::api {

enum class ExportStatus { finished, running, not_exists, error };

std::string_view to_string(ExportStatus status);  // as the API spells it: FINISHED, ...

struct RawExport {
  ExportStatus status = ExportStatus::running;
  // Data type -> download links; every type the API listed, [] when it has no files.
  // Empty unless status is finished.
  std::map<std::string, std::vector<std::string>> links;
  std::string error_message;  // the API's errorMsg
};

// Parses an all-types answer. The error names what is wrong with the document
// (never its links: they carry signatures).
boost::system::result<RawExport, std::string> parse_raw_export(std::string_view body);

// Parses a one-type answer (the per-type endpoint, asked for `data_type`): the same
// document, but `downloadLinks` is a plain array and `dataType` echoes the type. The
// result lists that one type, so answers for several types merge into one RawExport.
boost::system::result<RawExport, std::string> parse_raw_export_type(std::string_view body,
                                                                    std::string_view data_type);

}  // namespace gio::api
