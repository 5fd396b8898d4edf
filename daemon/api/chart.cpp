#include "api/chart.hpp"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <map>
#include <optional>
#include <set>
#include <vector>

namespace gio::api {
namespace {

namespace json = boost::json;

// Collects the text of every number in document order. Boost.JSON keeps a number
// only as int64/uint64/double, so 1.50 would come back as 1.5 (and 12.0 as 1.2E1):
// the CSV takes the digits exactly as the vendor wrote them instead. Also notes
// whether an object repeats a key: Boost.JSON then keeps the key's first place with
// its last value, so texts and values can no longer be paired by position.
class NumberTexts {
 public:
  static constexpr std::size_t max_array_size = -1;
  static constexpr std::size_t max_object_size = -1;
  static constexpr std::size_t max_string_size = -1;
  static constexpr std::size_t max_key_size = -1;

  std::vector<std::string> texts;
  bool duplicate_keys = false;

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t, json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    keys_.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    keys_.pop_back();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    key_.append(s.data(), s.size());
    if (!keys_.back().insert(std::move(key_)).second) {
      duplicate_keys = true;
    }
    key_.clear();
    return true;
  }
  bool on_number_part(json::string_view s, json::error_code&) {
    partial_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t, json::string_view s, json::error_code&) { return number(s); }
  bool on_uint64(std::uint64_t, json::string_view s, json::error_code&) { return number(s); }
  bool on_double(double, json::string_view s, json::error_code&) { return number(s); }
  bool on_bool(bool, json::error_code&) { return true; }
  bool on_null(json::error_code&) { return true; }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  bool number(json::string_view s) {
    partial_.append(s.data(), s.size());
    texts.push_back(std::move(partial_));
    partial_.clear();
    return true;
  }
  std::string partial_;
  std::string key_;
  std::vector<std::set<std::string>> keys_;  // of each open object
};

// The texts of the document's numbers, in order; nullopt when they cannot be paired
// with the parsed values (a repeated key, or text Boost.JSON reads differently).
std::optional<std::vector<std::string>> number_texts(std::string_view body) {
  json::basic_parser<NumberTexts> parser{json::parse_options{}};
  json::error_code ec;
  parser.write_some(false, body.data(), body.size(), ec);
  if (ec || parser.handler().duplicate_keys) {
    return std::nullopt;
  }
  return std::move(parser.handler().texts);
}

// Pairs each number of the parsed document with its text, walking in document order
// (json::object keeps the order of the keys).
void map_numbers(const json::value& value, const std::vector<std::string>& texts, std::size_t& next,
                 std::map<const json::value*, std::string_view>& out) {
  switch (value.kind()) {
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      if (next < texts.size()) {
        out.emplace(&value, texts[next]);
      }
      ++next;
      break;
    case json::kind::array:
      for (const json::value& item : value.get_array()) {
        map_numbers(item, texts, next, out);
      }
      break;
    case json::kind::object:
      for (const auto& member : value.get_object()) {
        map_numbers(member.value(), texts, next, out);
      }
      break;
    default:
      break;
  }
}

std::string cell_text(const json::value& cell,
                      const std::map<const json::value*, std::string_view>& numbers) {
  switch (cell.kind()) {
    case json::kind::null:
      return {};
    case json::kind::string:
      return std::string{cell.get_string()};
    case json::kind::bool_:
      return cell.get_bool() ? "true" : "false";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      if (const auto found = numbers.find(&cell); found != numbers.end()) {
        return std::string{found->second};
      }
      return json::serialize(cell);
    default:
      // A nested array or object is kept as its JSON text.
      return json::serialize(cell);
  }
}

}  // namespace

std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) {
    return std::string{text};
  }
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"') {
      out += '"';
    }
    out += c;
  }
  out += '"';
  return out;
}

namespace {

using ObjectResult = boost::system::result<json::value, std::string>;

// The answer as a JSON object, or what is wrong with it (never its content). The
// error is built in place: a json::value could be made from a string too.
ObjectResult parse_object(std::string_view body) {
  json::error_code ec;
  json::value document = json::parse(body, ec);
  if (ec) {
    return ObjectResult{boost::system::in_place_error, "answer is not JSON (" + ec.message() + ")"};
  }
  if (!document.is_object()) {
    return ObjectResult{boost::system::in_place_error, "answer is not a JSON object"};
  }
  return ObjectResult{boost::system::in_place_value, std::move(document)};
}

}  // namespace

std::string_view to_string(ChartStatus status) {
  switch (status) {
    case ChartStatus::doing:
      return "doing";
    case ChartStatus::done:
      return "done";
  }
  return "?";
}

namespace {

// Writes chart.csv of a finished document into answer.csv (the `meta` names, then one
// record per `data` row) and counts its rows; or says what is wrong with the document.
std::optional<std::string> write_csv(const json::value& document, std::string_view body,
                                     ChartAnswer& answer) {
  const json::object& object = document.get_object();
  const json::value* meta = object.if_contains("meta");
  if (meta == nullptr || !meta->is_array()) {
    return std::string{"finished answer has no \"meta\" array"};
  }
  const json::value* data = object.if_contains("data");
  if (data == nullptr || !data->is_array()) {
    return std::string{"finished answer has no \"data\" array"};
  }

  std::string csv;
  bool first = true;
  for (const json::value& column : meta->get_array()) {
    const json::object* fields = column.if_object();
    const json::value* name = fields != nullptr ? fields->if_contains("name") : nullptr;
    if (name == nullptr || !name->is_string()) {
      return std::string{"a \"meta\" entry has no \"name\" string"};
    }
    if (!first) {
      csv += ',';
    }
    first = false;
    csv += csv_field(name->get_string());
    answer.columns.emplace_back(name->get_string());
  }
  csv += "\r\n";

  // Numbers keep the vendor's digits when every text pairs with its value; otherwise
  // all of them take Boost.JSON's form (the same values, written its way).
  const auto texts = number_texts(body);
  std::map<const json::value*, std::string_view> numbers;
  if (texts) {
    std::size_t next = 0;
    map_numbers(document, *texts, next, numbers);
    if (next != texts->size()) {
      numbers.clear();
    }
  }

  for (const json::value& row : data->get_array()) {
    const json::array* cells = row.if_array();
    if (cells == nullptr) {
      return std::string{"a \"data\" row is not an array"};
    }
    for (std::size_t i = 0; i < cells->size(); ++i) {
      if (i > 0) {
        csv += ',';
      }
      csv += csv_field(cell_text((*cells)[i], numbers));
    }
    csv += "\r\n";
    ++answer.rows;
  }
  answer.csv = std::move(csv);
  return std::nullopt;
}

}  // namespace

boost::system::result<ChartAnswer, std::string> parse_chart_answer(std::string_view body) {
  const auto document = parse_object(body);
  if (!document) {
    return document.error();
  }
  const json::object* object = &document->get_object();
  ChartAnswer answer;
  if (const json::value* status = object->if_contains("status")) {
    if (status->is_string() && status->get_string() == to_string(ChartStatus::doing)) {
      answer.status = ChartStatus::doing;
      return answer;
    }
    // A finished document has no status; anything else is the vendor's refusal.
    if (!object->contains("meta")) {
      std::string message = "the export answered status " + json::serialize(*status);
      if (const json::value* error = object->if_contains("errorMsg");
          error != nullptr && error->is_string() && !error->get_string().empty()) {
        message += ": " + std::string{error->get_string()};
      }
      return message;
    }
  }

  if (auto problem = write_csv(*document, body, answer)) {
    return std::move(*problem);
  }
  answer.status = ChartStatus::done;
  answer.body = std::string{body};
  return answer;
}

TimeRange time_range(const Slot& slot) {
  using std::chrono::milliseconds;
  const auto start = std::chrono::duration_cast<milliseconds>(slot.start().time_since_epoch());
  const auto end = std::chrono::duration_cast<milliseconds>(slot.end().time_since_epoch());
  return {.start_ms = start.count(), .end_ms = end.count() - 1};
}

std::string chart_path(std::string_view project_uid, const ChartRequest& request,
                       const Slot& slot) {
  const TimeRange range = time_range(slot);
  const auto interval_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(request.interval).count();
  // project_uid and chart ids are validated as plain letters, digits and . _ -:
  // nothing here needs percent-encoding.
  std::string path = "/v3/exporter/projects/" + std::string{project_uid} + "/" +
                     std::string{config::to_string(request.resource)} + "/" + request.chart_id +
                     "?interval=" + std::to_string(interval_ms) +
                     "&startTime=" + std::to_string(range.start_ms) +
                     "&endTime=" + std::to_string(range.end_ms);
  if (request.resource == config::ChartResource::funnels && request.conversion_window) {
    path += "&conversionWindow=" + std::to_string(request.conversion_window->count());
  }
  if (request.resource == config::ChartResource::retentions && !request.range.empty()) {
    path += "&range=" + request.range;
  }
  return path;
}

namespace {

// RFC 3986 unreserved characters stay; everything else is %XX.
std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
        (byte >= '0' && byte <= '9') || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  return out;
}

}  // namespace

std::string user_list_path(std::string_view project_uid, const UserListRequest& request,
                           std::chrono::minutes expire) {
  // project_uid and list ids are validated as plain letters, digits and . _ -.
  std::string path = "/v3/exporter/projects/" + std::string{project_uid} + "/" +
                     std::string{config::to_string(request.resource)} + "/" + request.list_id +
                     "/users?expire=" + std::to_string(expire.count());
  if (!request.parameters.empty()) {
    path += "&parameters=" + percent_encode(request.parameters);
  }
  return path;
}

std::string_view to_string(UserListStatus status) {
  switch (status) {
    case UserListStatus::doing:
      return "doing";
    case UserListStatus::done:
      return "done";
    case UserListStatus::failed:
      return "failed";
  }
  return "?";
}

boost::system::result<UserListAnswer, std::string> parse_user_list(std::string_view body) {
  const auto document = parse_object(body);
  if (!document) {
    return document.error();
  }
  const json::object* object = &document->get_object();
  const json::value* status = object->if_contains("status");
  if (status == nullptr || !status->is_string()) {
    return std::string{"answer has no \"status\" string"};
  }
  UserListAnswer answer;
  if (const json::value* error = object->if_contains("errorMsg");
      error != nullptr && error->is_string()) {
    answer.error_message = std::string{error->get_string()};
  }
  const std::string_view text = status->get_string();
  if (text == to_string(UserListStatus::doing)) {
    answer.status = UserListStatus::doing;
    return answer;
  }
  if (text == to_string(UserListStatus::failed)) {
    answer.status = UserListStatus::failed;
    return answer;
  }
  if (text != to_string(UserListStatus::done)) {
    return "unknown status " + json::serialize(*status);
  }
  answer.status = UserListStatus::done;
  const json::value* links = object->if_contains("downloadLinks");
  if (links == nullptr || !links->is_array()) {
    return std::string{"done answer has no \"downloadLinks\" array"};
  }
  for (const json::value& link : links->get_array()) {
    if (!link.is_string() || link.get_string().empty()) {
      return std::string{"a \"downloadLinks\" entry is not a non-empty string"};
    }
    answer.links.emplace_back(link.get_string());
  }
  return answer;
}

}  // namespace gio::api
