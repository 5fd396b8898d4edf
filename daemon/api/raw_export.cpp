#include "api/raw_export.hpp"

#include <boost/json.hpp>

namespace gio::api {
namespace json = boost::json;

std::string_view to_string(ExportStatus status) {
  switch (status) {
    case ExportStatus::finished:
      return "FINISHED";
    case ExportStatus::running:
      return "RUNNING";
    case ExportStatus::not_exists:
      return "NOT_EXISTS";
    case ExportStatus::error:
      return "ERROR";
  }
  return "?";
}

boost::system::result<RawExport, std::string> parse_raw_export(std::string_view body) {
  boost::system::error_code ec;
  const json::value document = json::parse(body, ec);
  if (ec) {
    return "answer is not JSON (" + ec.message() + ")";
  }
  const json::object* object = document.if_object();
  if (object == nullptr) {
    return std::string{"answer is not a JSON object"};
  }

  RawExport answer;
  const json::value* status = object->if_contains("status");
  if (status == nullptr || !status->is_string()) {
    return std::string{"answer has no \"status\" string"};
  }
  const std::string_view status_text = status->get_string();
  if (status_text == "FINISHED") {
    answer.status = ExportStatus::finished;
  } else if (status_text == "RUNNING") {
    answer.status = ExportStatus::running;
  } else if (status_text == "NOT_EXISTS") {
    answer.status = ExportStatus::not_exists;
  } else if (status_text == "ERROR") {
    answer.status = ExportStatus::error;
  } else {
    return "unknown status \"" + std::string{status_text.substr(0, 40)} + "\"";
  }

  if (const json::value* message = object->if_contains("errorMsg");
      message != nullptr && message->is_string()) {
    answer.error_message = std::string{message->get_string()};
  }
  if (answer.status != ExportStatus::finished) {
    return answer;
  }

  const json::value* links = object->if_contains("downloadLinks");
  if (links == nullptr || !links->is_object()) {
    return std::string{"FINISHED answer has no \"downloadLinks\" object"};
  }
  // Unknown keys are further data types, not errors (the vendor adds types).
  for (const auto& [type, urls] : links->get_object()) {
    const json::array* list = urls.if_array();
    if (list == nullptr) {
      return "downloadLinks." + std::string{type} + " is not an array";
    }
    std::vector<std::string>& out = answer.links[std::string{type}];
    for (const json::value& url : *list) {
      if (!url.is_string()) {
        return "downloadLinks." + std::string{type} + " holds a non-string link";
      }
      out.emplace_back(url.get_string());
    }
  }
  return answer;
}

}  // namespace gio::api
