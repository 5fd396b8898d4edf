#pragma once

// The records of one of the vendor's CSV files, counted from its inflated bytes as the
// gzip check produces them (GzipChecker::count_rows): no second read of the file.
//
// The vendor's format: ',' separates fields, '"' opens and closes a quoted field (quoted
// fields may span lines), '\' escapes the next byte wherever it is (quoted or not: the
// byte is taken literally, '"', ',', '\n' included), records end at an unquoted,
// unescaped '\n' (CRLF allowed: an unquoted '\r' is never part of a value), the first
// record is the header. Bytes are bytes: invalid UTF-8 is counted like any other.
//
// What counts as a record: every line with something on it. A blank line (nothing, or a
// lone '\r', before its '\n') is not a record, so neither a trailing newline nor a
// stray empty line adds one; a last record without its '\n' counts. An empty file has 0
// rows and no columns; a header alone, 0 rows.

#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gio::archive {

namespace detail {
// Where the record scan stands between two pieces of bytes (csv_rows.cpp).
struct CsvScan {
  // Whether the current line has something on it yet: a blank line is no record.
  enum class Line : std::uint8_t { empty, cr, content };
  bool escaped = false;  // the next byte is taken literally
  bool quoted = false;
  Line line = Line::empty;
  std::uint64_t rows = 0;  // records ended after the header so far
};
}  // namespace detail

struct CsvRows {
  std::uint64_t rows = 0;            // records, header excluded
  std::vector<std::string> columns;  // the header's fields (unquoted, unescaped)
  // Only when the counter splits by a column that the header has: records per Beijing
  // hour (UTC+8) of that column's value read as milliseconds since the epoch, 24
  // entries; empty when the header lacks the column (no split is possible). A record
  // whose value is missing (too few fields), empty, not a plain decimal number or
  // outside the split window (another day's event) is in `rows` but in no hour: it is
  // counted in `unhoured`, so sum(rows_by_hour) + unhoured == rows when split.
  std::vector<std::uint64_t> rows_by_hour;
  std::uint64_t unhoured = 0;

  friend bool operator==(const CsvRows&, const CsvRows&) = default;
};

// The milliseconds since the epoch [start_ms, end_ms) whose records a split puts in
// hours: a daily file's Beijing date, so that an event of another day is not counted in
// this day's hours. The default takes every time.
struct SplitWindow {
  std::uint64_t start_ms = 0;
  std::uint64_t end_ms = UINT64_MAX;
};

class CsvRowCounter {
 public:
  // Header bytes kept as column names; a header longer than this (not the vendor's) is
  // still skipped correctly, its names beyond are cut.
  static constexpr std::size_t kMaxHeaderBytes = 64 << 10;

  // Counts records and reads the header.
  CsvRowCounter() = default;
  // Also splits the records by the hour of `split_column` (e.g. "time"), those of
  // `window` only.
  explicit CsvRowCounter(std::string split_column, SplitWindow window = {});

  // Scans with the code for plain x86-64 even where the CPU has AVX2 (the one the
  // counter otherwise picks): for tests, which check that both give the same counts.
  void use_portable_scan() { portable_scan_ = true; }

  // The next inflated bytes, in pieces of any size (a quote, an escape or a CRLF may
  // straddle two pieces).
  void feed(const char* data, std::size_t size);
  void feed(std::string_view bytes) { feed(bytes.data(), bytes.size()); }
  // The counts, the last record counted even without its newline. Call once, after the
  // last feed().
  CsvRows finish();
  // True once the header has been read (its newline seen).
  bool header_read() const { return header_done_; }
  // The inflated bytes fed so far.
  std::uint64_t bytes_fed() const { return bytes_fed_; }

 private:
  using Line = detail::CsvScan::Line;

  std::size_t header(const char* data, std::size_t size);
  void take(char byte);
  void end_column();
  void end_header_line();
  // Splitting: one block's scan, then its field and record ends walked.
  void split_block(const char* data, std::size_t size);
  void hour_of_record();

  // Where the byte stream stands.
  detail::CsvScan scan_;
  bool portable_scan_ = false;
  bool header_done_ = false;
  std::uint64_t bytes_fed_ = 0;

  // The header, read byte by byte.
  std::string field_;
  std::size_t header_bytes_ = 0;

  // Splitting: the records' split column, tracked through the blocks' field ends.
  std::string split_column_;
  SplitWindow window_{};
  bool splitting_ = false;
  std::optional<std::size_t> split_index_;  // the split column's place in the header
  std::size_t field_index_ = 0;             // of the current record
  std::string value_;                       // the split column's bytes so far
  bool has_value_ = false;                  // the record reached the split column

  CsvRows result_;
  std::array<std::uint64_t, 24> hours_{};
};

// The header of a gzip CSV file, inflating only as far as its first newline (for a part
// an earlier pass counted: the state keeps its rows, not its header). Empty when the
// file cannot be read or is not valid gzip as far as read, and when no header ends
// within kMaxHeaderScanBytes inflated bytes (a file without a newline, or with an
// unclosed quote, is not inflated whole). Blocking.
inline constexpr std::size_t kMaxHeaderScanBytes = 1 << 20;
std::vector<std::string> read_csv_header(const std::filesystem::path& gzip_file);

}  // namespace gio::archive
