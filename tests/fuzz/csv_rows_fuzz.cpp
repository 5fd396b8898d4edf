// CSV row counting: archive::CsvRowCounter, fed the input in pseudo-random pieces, must
// agree with a reference parse written separately and plainly (whole input at once,
// escapes and quotes first, then lines, then fields): rows, header, and (split mode)
// records per Beijing hour of the `time` column. The first input byte picks the mode
// (bit 0: split by "time"; bit 1: the scan for plain x86-64 rather than the one the CPU
// picks) and seeds the piece sizes.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "archive/csv_rows.hpp"
#include "fuzz_check.hpp"

namespace {

using gio::archive::CsvRowCounter;
using gio::archive::CsvRows;

// A byte of the input after escapes and quotes are resolved.
struct Token {
  enum Kind {
    literal,      // a byte of a value
    mark,         // a quote, or an escape with nothing after it: not blank, no value byte
    separator,    // an unquoted, unescaped ','
    end_of_line,  // an unquoted, unescaped '\n'
    bare_cr,      // an unquoted, unescaped '\r': never in a value
  } kind;
  char byte = 0;
};

std::vector<Token> tokens_of(std::string_view csv) {
  std::vector<Token> tokens;
  bool quoted = false;
  for (std::size_t i = 0; i < csv.size(); ++i) {
    const char c = csv[i];
    if (c == '\\') {  // the next byte, whatever it is, is a literal
      tokens.push_back(i + 1 < csv.size() ? Token{Token::literal, csv[++i]} : Token{Token::mark});
    } else if (c == '"') {
      quoted = !quoted;
      tokens.push_back({Token::mark});
    } else if (quoted) {
      tokens.push_back({Token::literal, c});
    } else if (c == ',') {
      tokens.push_back({Token::separator});
    } else if (c == '\n') {
      tokens.push_back({Token::end_of_line});
    } else if (c == '\r') {
      tokens.push_back({Token::bare_cr});
    } else {
      tokens.push_back({Token::literal, c});
    }
  }
  return tokens;
}

struct Line {
  std::vector<Token> tokens;
  // Nothing on it, or a lone '\r' (a blank CRLF line).
  bool blank() const {
    return tokens.empty() || (tokens.size() == 1 && tokens[0].kind == Token::bare_cr);
  }
};

std::optional<int> hour_of(const std::string& value) {
  if (value.empty() || value.size() > 20 ||
      !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  unsigned __int128 millis = 0;
  for (const char c : value) {
    millis = millis * 10 + static_cast<unsigned>(c - '0');
  }
  if (millis > UINT64_MAX) {
    return std::nullopt;
  }
  const auto seconds = static_cast<std::uint64_t>(millis) / 1000;
  return static_cast<int>(((seconds + 8 * 3600) / 3600) % 24);
}

CsvRows reference(bool split, const std::vector<Token>& tokens) {
  std::vector<Line> lines(1);
  for (const Token& token : tokens) {
    if (token.kind == Token::end_of_line) {
      lines.emplace_back();
    } else {
      lines.back().tokens.push_back(token);
    }
  }
  CsvRows result;
  std::array<std::uint64_t, 24> hours{};
  bool header_seen = false;
  std::optional<std::size_t> time_index;
  for (const Line& line : lines) {
    if (line.blank()) {
      continue;
    }
    std::vector<std::string> fields(1);
    for (const Token& token : line.tokens) {
      if (token.kind == Token::separator) {
        fields.emplace_back();
      } else if (token.kind == Token::literal) {
        fields.back().push_back(token.byte);
      }
    }
    if (!header_seen) {
      header_seen = true;
      result.columns = fields;
      for (std::size_t i = 0; i < fields.size(); ++i) {
        if (fields[i] == "time") {
          time_index = i;
          break;
        }
      }
      continue;
    }
    ++result.rows;
    if (split) {
      const auto hour =
          time_index && *time_index < fields.size() ? hour_of(fields[*time_index]) : std::nullopt;
      if (hour) {
        ++hours[static_cast<std::size_t>(*hour)];
      } else {
        ++result.unhoured;
      }
    }
  }
  if (split && time_index) {  // without the column no record has an hour: no split
    result.rows_by_hour.assign(hours.begin(), hours.end());
  }
  return result;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const bool split = (data[0] & 1) != 0;
  std::uint32_t seed = data[0] * 2654435761u + 1;
  const std::string_view csv = gio::fuzz::as_text(data + 1, size - 1);

  CsvRowCounter counter = split ? CsvRowCounter{"time"} : CsvRowCounter{};
  if ((data[0] & 2) != 0) {
    counter.use_portable_scan();
  }
  for (std::size_t at = 0; at < csv.size();) {
    seed = seed * 1664525u + 1013904223u;
    // Mostly short pieces (edges everywhere), sometimes long ones (the 64-byte blocks).
    const std::size_t piece = (seed >> 28) < 12 ? (seed >> 16) % 9 : (seed >> 16) % 300;
    const std::size_t take = std::min(piece, csv.size() - at);
    counter.feed(csv.data() + at, take);
    at += take;
  }
  const CsvRows counted = counter.finish();
  const CsvRows expected = reference(split, tokens_of(csv));

  GIO_FUZZ_CHECK(counted.rows == expected.rows,
                 "rows " + std::to_string(counted.rows) + " != " + std::to_string(expected.rows));
  if (csv.size() < CsvRowCounter::kMaxHeaderBytes) {  // beyond, the names are cut
    GIO_FUZZ_CHECK(counted.columns == expected.columns, "columns differ");
  }
  GIO_FUZZ_CHECK(counted.rows_by_hour == expected.rows_by_hour, "rows_by_hour differ");
  GIO_FUZZ_CHECK(
      counted.unhoured == expected.unhoured,
      "unhoured " + std::to_string(counted.unhoured) + " != " + std::to_string(expected.unhoured));
  return 0;
}
