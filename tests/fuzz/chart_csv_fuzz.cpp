// The chart-to-CSV writer, driven with well-formed finished documents built from the
// fuzzer's bytes (meta names and cells of every JSON kind, numbers written in any valid
// form, extra keys around): parse_chart_answer must accept every one, and chart.csv must
// carry every name and cell exactly, numbers as the vendor wrote their digits.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>

#include "api/chart.hpp"
#include "csv_check.hpp"
#include "fuzz_check.hpp"

namespace json = boost::json;

namespace {

// A valid JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
std::string number_text(FuzzedDataProvider& in) {
  std::string text;
  if (in.ConsumeBool()) {
    text += '-';
  }
  const auto digits = [&](std::size_t most, bool leading_zero_ok) {
    const std::size_t count = in.ConsumeIntegralInRange<std::size_t>(1, most);
    for (std::size_t i = 0; i < count; ++i) {
      char digit = static_cast<char>('0' + in.ConsumeIntegralInRange(0, 9));
      if (i == 0 && !leading_zero_ok && count > 1 && digit == '0') {
        digit = '1';
      }
      text += digit;
    }
  };
  digits(24, false);
  if (in.ConsumeBool()) {
    text += '.';
    digits(24, true);
  }
  if (in.ConsumeBool()) {
    text += in.PickValueInArray({"e", "E", "e+", "e-", "E-"});
    digits(2, true);  // within double's range: Boost would write a nested 1e999 as Infinity
  }
  return text;
}

std::string string_text(FuzzedDataProvider& in) {
  return json::serialize(json::string{in.ConsumeRandomLengthString(40)});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  std::vector<std::string> numbers;  // texts of the top-level numeric cells, in order
  bool duplicate_keys = false;

  std::string body = "{";
  // Keys before meta, possibly holding numbers, as the vendor's aggregator does.
  if (in.ConsumeBool()) {
    body += "\"aggregator\":" +
            (in.ConsumeBool() ? "{\"values\":[" + number_text(in) + "," + number_text(in) + "]}"
                              : string_text(in)) +
            ",";
  }
  if (in.ConsumeBool()) {
    body += "\"id\":" + string_text(in) + ",";
  }
  body += "\"meta\":[";
  const std::size_t columns = in.ConsumeIntegralInRange<std::size_t>(0, 6);
  for (std::size_t i = 0; i < columns; ++i) {
    body += (i ? "," : "");
    body += "{\"name\":" + string_text(in) + ",\"dimension\":true}";
  }
  body += "],\"data\":[";
  const std::size_t rows = in.ConsumeIntegralInRange<std::size_t>(0, 8);
  for (std::size_t r = 0; r < rows; ++r) {
    body += (r ? ",[" : "[");
    const std::size_t cells = in.ConsumeIntegralInRange<std::size_t>(0, 6);
    for (std::size_t c = 0; c < cells; ++c) {
      body += (c ? "," : "");
      switch (in.ConsumeIntegralInRange(0, 5)) {
        case 0:
          body += string_text(in);
          break;
        case 1:
          numbers.push_back(number_text(in));
          body += numbers.back();
          break;
        case 2:
          body += in.ConsumeBool() ? "true" : "false";
          break;
        case 3:
          body += "null";
          break;
        case 4:
          body += "[" + number_text(in) + "," + string_text(in) + "]";
          break;
        default:
          body += "{\"k\":" + number_text(in) + "}";
          break;
      }
    }
    body += "]";
  }
  body += "]";
  // Keys after data; a repeated key (the last one wins) shifts the numbers' order.
  if (in.ConsumeBool()) {
    body += ",\"total\":" + number_text(in);
  }
  if (in.ConsumeBool()) {
    body += ",\"aggregator\":" + (in.ConsumeBool() ? number_text(in) : string_text(in));
    duplicate_keys = true;
  }
  body += "}";

  const json::value document = gio::fuzz::parse_or_null(body);
  if (!document.is_object()) {
    return 0;  // a number beyond Boost.JSON's range: not the writer's concern
  }
  const auto answer = gio::api::parse_chart_answer(body);
  GIO_FUZZ_CHECK(answer.has_value(), "a well-formed document refused: " + answer.error());
  GIO_FUZZ_CHECK(answer->status == gio::api::ChartStatus::done,
                 "a finished document read as doing");
  gio::fuzz::check_csv(*answer, document, duplicate_keys ? nullptr : &numbers);

  // csv_field on its own: one field that reads back as the text.
  const std::string text = in.ConsumeRemainingBytesAsString();
  const auto records = gio::fuzz::read_csv(gio::api::csv_field(text) + "\r\n");
  GIO_FUZZ_CHECK(records && records->size() == 1 &&
                     gio::fuzz::record_size_matches(records->front(), text.empty() ? 0 : 1),
                 "csv_field does not read back");
  GIO_FUZZ_CHECK(text.empty() || records->front().front() == text, "csv_field changed the text");
  return 0;
}
