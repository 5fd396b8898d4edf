#include "api/raw_export.hpp"

#include <boost/json.hpp>

namespace gio::api {
namespace json = boost::json;

namespace {

// The JSON object of an answer, or what is wrong with it.
boost::system::result<json::object, std::string> parse_object(std::string_view body) {
  boost::system::error_code ec;
  json::value document = json::parse(body, ec);
  if (ec) {
    return "answer is not JSON (" + ec.message() + ")";
  }
  if (!document.is_object()) {
    return std::string{"answer is not a JSON object"};
  }
  return std::move(document.get_object());
}

// Reads `status` and `errorMsg`, which both endpoints answer alike.
boost::system::result<RawExport, std::string> parse_status(const json::object& object) {
  RawExport answer;
  const json::value* status = object.if_contains("status");
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

  if (const json::value* message = object.if_contains("errorMsg");
      message != nullptr && message->is_string()) {
    answer.error_message = std::string{message->get_string()};
  }
  return answer;
}

// One type's links; the error names the type, never a link (they carry signatures).
boost::system::result<std::vector<std::string>, std::string> parse_links(const json::value& urls,
                                                                         std::string_view type) {
  const json::array* list = urls.if_array();
  if (list == nullptr) {
    return "downloadLinks." + std::string{type} + " is not an array";
  }
  std::vector<std::string> out;
  for (const json::value& url : *list) {
    if (!url.is_string()) {
      return "downloadLinks." + std::string{type} + " holds a non-string link";
    }
    out.emplace_back(url.get_string());
  }
  return out;
}

}  // namespace

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
  const auto document = parse_object(body);
  if (!document) {
    return document.error();
  }
  const json::object& object = *document;
  auto answer = parse_status(object);
  if (!answer || answer->status != ExportStatus::finished) {
    return answer;
  }

  const json::value* links = object.if_contains("downloadLinks");
  if (links == nullptr || !links->is_object()) {
    return std::string{"FINISHED answer has no \"downloadLinks\" object"};
  }
  // Unknown keys are further data types, not errors (the vendor adds types).
  for (const auto& [type, urls] : links->get_object()) {
    auto list = parse_links(urls, type);
    if (!list) {
      return list.error();
    }
    answer->links[std::string{type}] = std::move(*list);
  }
  return answer;
}

boost::system::result<RawExport, std::string> parse_raw_export_type(std::string_view body,
                                                                    std::string_view data_type) {
  const auto document = parse_object(body);
  if (!document) {
    return document.error();
  }
  const json::object& object = *document;
  // An answer about another type would archive its files under the wrong folder.
  if (const json::value* echo = object.if_contains("dataType");
      echo != nullptr && !(echo->is_string() && echo->get_string() == data_type)) {
    return "answer is about another data type than " + std::string{data_type};
  }
  auto answer = parse_status(object);
  if (!answer || answer->status != ExportStatus::finished) {
    return answer;
  }

  const json::value* links = object.if_contains("downloadLinks");
  if (links == nullptr || !links->is_array()) {
    return std::string{"FINISHED answer has no \"downloadLinks\" array"};
  }
  auto list = parse_links(*links, data_type);
  if (!list) {
    return list.error();
  }
  answer->links[std::string{data_type}] = std::move(*list);
  return answer;
}

}  // namespace gio::api
