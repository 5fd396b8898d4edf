// Chart answers (seed 000) as bytes: parse_chart_answer must return an answer or an error
// (never throw), decide doing / finished / refused as the document says, and a
// finished answer's chart.csv must read back as the document's meta and data.

#include <cstddef>
#include <cstdint>

#include "api/chart.hpp"
#include "csv_check.hpp"
#include "fuzz_check.hpp"

namespace json = boost::json;

namespace {

// What parse_chart_answer must make of `document`, decided independently.
enum class Expected { error, doing, finished };

Expected expected_of(const json::value& document) {
  const json::object* object = document.if_object();
  if (object == nullptr) {
    return Expected::error;
  }
  if (const json::value* status = object->if_contains("status")) {
    if (status->is_string() && status->get_string() == "doing") {
      return Expected::doing;
    }
    if (!object->contains("meta")) {
      return Expected::error;
    }
  }
  const json::value* meta = object->if_contains("meta");
  const json::value* data = object->if_contains("data");
  if (meta == nullptr || !meta->is_array() || data == nullptr || !data->is_array()) {
    return Expected::error;
  }
  for (const json::value& column : meta->get_array()) {
    const json::value* name =
        column.is_object() ? column.get_object().if_contains("name") : nullptr;
    if (name == nullptr || !name->is_string()) {
      return Expected::error;
    }
  }
  for (const json::value& row : data->get_array()) {
    if (!row.is_array()) {
      return Expected::error;
    }
  }
  return Expected::finished;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body = gio::fuzz::as_text(data, size);
  const json::value document = gio::fuzz::parse_or_null(body);
  const Expected expected = expected_of(document);

  const auto answer = gio::api::parse_chart_answer(body);
  if (!answer) {
    GIO_FUZZ_CHECK(expected == Expected::error, "a good answer refused: " + answer.error());
    GIO_FUZZ_CHECK(!answer.error().empty(), "an empty error");
    return 0;
  }
  GIO_FUZZ_CHECK(expected != Expected::error, "a bad answer accepted");
  const bool doing = answer->status == gio::api::ChartStatus::doing;
  GIO_FUZZ_CHECK(doing == (expected == Expected::doing), "doing differs");
  if (doing) {
    GIO_FUZZ_CHECK(answer->csv.empty() && answer->rows == 0 && answer->body.empty(),
                   "a doing answer with data");
    return 0;
  }
  // chart.json is the document byte for byte.
  GIO_FUZZ_CHECK(answer->body == body, "the finished document changed");
  gio::fuzz::check_csv(*answer, document, nullptr);
  return 0;
}
