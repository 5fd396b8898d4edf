#pragma once

// The answer of the raw event export endpoint (seed 002), parsed and checked.

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

}  // namespace gio::api
