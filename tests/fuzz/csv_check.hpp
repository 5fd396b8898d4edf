#pragma once

// An independent reader of chart.csv (RFC 4180 as parse_chart_answer writes it: every record
// ends in CRLF, a field is quoted exactly when it holds ',', '"', CR or LF), and the
// check that a CSV says what its finished document says.

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/chart.hpp"
#include "fuzz_check.hpp"

namespace gio::fuzz {

using Record = std::vector<std::string>;

// The records of `csv`, or nullopt when it is not well-formed.
inline std::optional<std::vector<Record>> read_csv(std::string_view csv) {
  std::vector<Record> records;
  std::size_t pos = 0;
  while (pos < csv.size()) {
    Record record;
    while (true) {
      std::string field;
      if (pos < csv.size() && csv[pos] == '"') {
        ++pos;
        while (true) {
          if (pos >= csv.size()) {
            return std::nullopt;  // unterminated quote
          }
          if (csv[pos] == '"') {
            if (pos + 1 < csv.size() && csv[pos + 1] == '"') {
              field += '"';
              pos += 2;
              continue;
            }
            ++pos;
            break;
          }
          field += csv[pos++];
        }
        // A quoted field must have needed its quotes (the writer quotes only then).
        if (field.find_first_of(",\"\r\n") == std::string::npos) {
          return std::nullopt;
        }
      } else {
        while (pos < csv.size() && csv[pos] != ',' && csv[pos] != '\r') {
          if (csv[pos] == '"' || csv[pos] == '\n') {
            return std::nullopt;  // would have been quoted
          }
          field += csv[pos++];
        }
      }
      record.push_back(std::move(field));
      if (pos < csv.size() && csv[pos] == ',') {
        ++pos;
        continue;
      }
      if (csv.substr(pos, 2) == "\r\n") {
        pos += 2;
        break;
      }
      return std::nullopt;  // a record must end in CRLF
    }
    records.push_back(std::move(record));
  }
  return records;
}

// Equal JSON values, doubles within a relative 1e-12: Boost.JSON's default number parsing
// is not correctly rounded, and may round the same digits differently depending on what
// follows them (the end of the input or more of the document).
inline bool same_value(const boost::json::value& a, const boost::json::value& b) {
  if (a.is_number() && b.is_number()) {
    const double x = a.to_number<double>();
    const double y = b.to_number<double>();
    if (!std::isfinite(x) || !std::isfinite(y)) {
      return true;  // an exponent such as 0E+31333: Boost.JSON reads it inconsistently
    }
    return x == y || std::fabs(x - y) <= 1e-12 * std::max(std::fabs(x), std::fabs(y));
  }
  if (a.kind() != b.kind()) {
    return false;
  }
  if (a.is_array()) {
    const auto& p = a.get_array();
    const auto& q = b.get_array();
    if (p.size() != q.size()) {
      return false;
    }
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (!same_value(p[i], q[i])) {
        return false;
      }
    }
    return true;
  }
  if (a.is_object()) {
    const auto& p = a.get_object();
    const auto& q = b.get_object();
    if (p.size() != q.size()) {
      return false;
    }
    for (const auto& member : p) {
      const boost::json::value* other = q.if_contains(member.key());
      if (other == nullptr || !same_value(member.value(), *other)) {
        return false;
      }
    }
    return true;
  }
  return a == b;
}

// How a cell must read in the CSV. `exact_numbers`: a number must be the very text of
// the document (false when the document has duplicate keys, where only its value counts).
inline bool cell_matches(const boost::json::value& cell, const std::string& field,
                         const std::string* number_text) {
  namespace json = boost::json;
  switch (cell.kind()) {
    case json::kind::null:
      return field.empty();
    case json::kind::string:
      return field == std::string_view{cell.get_string()};
    case json::kind::bool_:
      return field == (cell.get_bool() ? "true" : "false");
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      if (number_text != nullptr) {
        return field == *number_text;
      }
      [[fallthrough]];
    default: {
      // Numbers in Boost's form, nested arrays and objects as JSON text: equal values.
      const json::value back = parse_or_null(field);
      if (back.is_null() &&
          (field.find("Infinity") != std::string::npos || field.find("NaN") != std::string::npos)) {
        // Boost.JSON 1.81 reads some numbers as non-finite doubles (1e999 as Infinity,
        // 0E+3331 as NaN) and writes those as text that is not JSON: the CSV can only
        // say what the parsed document says.
        return true;
      }
      return same_value(cell, back);
    }
  }
}

// A record matches `expected` fields; an empty line is both no field and one empty one.
inline bool record_size_matches(const Record& record, std::size_t expected) {
  return record.size() == expected || (expected == 0 && record.size() == 1 && record[0].empty());
}

// Checks `answer` (parse_chart_answer succeeded on a finished document) against `document`.
// `number_texts`, when given, are the texts of the data cells' numbers in row order.
inline void check_csv(const api::ChartAnswer& answer, const boost::json::value& document,
                      const std::vector<std::string>* number_texts) {
  namespace json = boost::json;
  const json::object& object = document.get_object();
  const json::array& meta = object.at("meta").get_array();
  const json::array& data = object.at("data").get_array();
  GIO_FUZZ_CHECK(answer.rows == data.size(), "rows differ from data");
  const auto records = read_csv(answer.csv);
  GIO_FUZZ_CHECK(records.has_value(), "chart.csv is not well-formed RFC 4180");
  GIO_FUZZ_CHECK(records->size() == data.size() + 1, "a record per row plus the header");
  const Record& header = records->front();
  GIO_FUZZ_CHECK(record_size_matches(header, meta.size()), "header size");
  for (std::size_t i = 0; i < meta.size(); ++i) {
    GIO_FUZZ_CHECK(header[i] == std::string_view{meta[i].get_object().at("name").get_string()},
                   "a header name changed");
  }
  std::size_t next_number = 0;
  for (std::size_t r = 0; r < data.size(); ++r) {
    const json::array& cells = data[r].get_array();
    const Record& record = (*records)[r + 1];
    GIO_FUZZ_CHECK(record_size_matches(record, cells.size()), "row size");
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::string* text = nullptr;
      if (number_texts != nullptr && cells[c].is_number()) {
        GIO_FUZZ_CHECK(next_number < number_texts->size(), "harness: number texts");
        text = &(*number_texts)[next_number++];
      }
      GIO_FUZZ_CHECK(
          cell_matches(cells[c], record[c], text),
          "row " + std::to_string(r) + " cell " + std::to_string(c) + " reads '" + record[c] + "'");
    }
  }
}

}  // namespace gio::fuzz
