#include "archive/csv_rows.hpp"

#include <bit>
#include <charconv>
#include <cstring>
#include <fstream>

#include "archive/checksums.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace gio::archive {
namespace {

// The special bytes of 64 bytes, one bit each (csv_scan.inc fills them in).
struct Masks {
  std::uint64_t quote = 0, backslash = 0, lf = 0, cr = 0, comma = 0;
};

// Counting's common case (csv_scan.inc's count_blocks).
struct QuickMasks {
  std::uint64_t quote = 0, lf = 0;
  bool rare = false;  // any '\\' or '\r'
};

// What a block's scan tells the split: its record ends, which of them close blank
// lines, its field ends, and the bytes that are no part of a value.
struct BlockEnds {
  std::uint64_t lf = 0, blank = 0, commas = 0, dropped = 0;
};

namespace portable {
#include "archive/csv_scan.inc"
}  // namespace portable

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define GIO_CSV_SCAN_HASWELL 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,bmi,bmi2,lzcnt,popcnt,pclmul"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,bmi,bmi2,lzcnt,popcnt,pclmul")
#endif
namespace haswell {
#include "archive/csv_scan.inc"
}  // namespace haswell
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#undef GIO_CSV_SCAN_HASWELL
#define GIO_HAVE_HASWELL_SCAN 1
#endif

// The scan a CPU runs, chosen once.
struct Scanner {
  void (*count_blocks)(const char* data, std::size_t blocks, detail::CsvScan& scan);
  BlockEnds (*split_scan)(const char* data, std::size_t size, detail::CsvScan& scan);
};

constexpr Scanner kPortable{portable::count_blocks, portable::split_scan};

Scanner pick_scanner() {
#if defined(GIO_HAVE_HASWELL_SCAN)
  // __builtin_cpu_supports reads what __builtin_cpu_init fills in; the compiler runs that
  // init before ordinary static constructors only by accident of order, not by guarantee.
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("pclmul") &&
      __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
      __builtin_cpu_supports("popcnt")) {
    return {haswell::count_blocks, haswell::split_scan};
  }
#endif
  return kPortable;
}

const Scanner kBest = pick_scanner();

const Scanner& scanner_for(bool portable) {
  return portable ? kPortable : kBest;
}

// Longest split value read: the digits of the largest 64-bit number. One byte more is
// kept, so that a longer value (leading zeros included) is refused, not cut.
constexpr std::size_t kMaxValueBytes = 20;

// A record's split value as an hour of Beijing time; nullopt unless 1 to 20 plain
// decimal digits that fit in 64 bits, within `window`.
std::optional<std::size_t> beijing_hour(std::string_view millis, const SplitWindow& window) {
  std::uint64_t value = 0;
  if (millis.empty() || millis.size() > kMaxValueBytes || millis.front() < '0' ||
      millis.front() > '9') {
    return std::nullopt;  // from_chars would take a sign
  }
  const auto [end, error] = std::from_chars(millis.data(), millis.data() + millis.size(), value);
  if (error != std::errc{} || end != millis.data() + millis.size()) {
    return std::nullopt;
  }
  if (value < window.start_ms || value >= window.end_ms) {
    return std::nullopt;  // another day's event: in no hour of this one
  }
  constexpr std::uint64_t kBeijingOffset = 8 * 3600;
  return static_cast<std::size_t>((value / 1000 + kBeijingOffset) / 3600 % 24);
}

}  // namespace

CsvRowCounter::CsvRowCounter(std::string split_column, SplitWindow window)
    : split_column_(std::move(split_column)), window_(window), splitting_(true) {}

void CsvRowCounter::feed(const char* data, std::size_t size) {
  bytes_fed_ += size;
  if (!header_done_) {
    const std::size_t used = header(data, size);
    data += used;
    size -= used;
  }
  if (splitting_) {
    for (; size >= 64; data += 64, size -= 64) {
      split_block(data, 64);
    }
  } else {
    scanner_for(portable_scan_).count_blocks(data, size / 64, scan_);
    data += size / 64 * 64;
    size %= 64;
  }
  if (size > 0) {
    char padded[64] = {};  // zero bytes match no special byte
    std::memcpy(padded, data, size);
    if (splitting_) {
      split_block(padded, size);
    } else {
      scanner_for(portable_scan_).split_scan(padded, size, scan_);
    }
  }
}

// Byte by byte, until the header's newline (blank lines before it skipped): returns the
// bytes it consumed.
std::size_t CsvRowCounter::header(const char* data, std::size_t size) {
  for (std::size_t i = 0; i < size; ++i) {
    const char byte = data[i];
    if (scan_.escaped) {
      scan_.escaped = false;
      scan_.line = Line::content;
      take(byte);
      continue;
    }
    if (scan_.quoted) {
      if (byte == '"') {
        scan_.quoted = false;
      } else if (byte == '\\') {
        scan_.escaped = true;
      } else {
        take(byte);
      }
      continue;  // the line has content since its opening quote
    }
    switch (byte) {
      case '\\':
        scan_.escaped = true;
        scan_.line = Line::content;
        break;
      case '"':
        scan_.quoted = true;
        scan_.line = Line::content;
        break;
      case ',':
        scan_.line = Line::content;
        end_column();
        break;
      case '\n':
        end_header_line();
        if (header_done_) {
          return i + 1;
        }
        break;
      case '\r':  // never part of a value; a line of only "\r" is blank
        scan_.line = scan_.line == Line::empty ? Line::cr : Line::content;
        break;
      default:
        scan_.line = Line::content;
        take(byte);
        break;
    }
  }
  return size;
}

void CsvRowCounter::take(char byte) {
  if (header_bytes_ < kMaxHeaderBytes) {
    ++header_bytes_;
    field_.push_back(byte);
  }
}

void CsvRowCounter::end_column() {
  if (header_bytes_ < kMaxHeaderBytes) {
    ++header_bytes_;  // a header of endless commas is cut too
    result_.columns.push_back(std::move(field_));
  }
  field_.clear();
}

void CsvRowCounter::end_header_line() {
  if (scan_.line == Line::content) {
    end_column();
    header_done_ = true;
    for (std::size_t i = 0; splitting_ && i < result_.columns.size(); ++i) {
      if (result_.columns[i] == split_column_) {
        split_index_ = i;
        break;
      }
    }
  } else {  // a blank line: the header is still to come
    result_.columns.clear();
    header_bytes_ = 0;
    field_.clear();
  }
  scan_.line = Line::empty;
}

// Splitting: walks the block's field and record ends, keeping the split column's value
// and giving each record that ends here its hour.
void CsvRowCounter::split_block(const char* data, std::size_t size) {
  const auto [lf, blank, commas, dropped] =
      scanner_for(portable_scan_).split_scan(data, size, scan_);
  std::size_t from = 0;
  for (std::uint64_t ends = commas | lf;; ends &= ends - 1) {
    const std::size_t to = ends == 0 ? size : static_cast<std::size_t>(std::countr_zero(ends));
    if (split_index_ && field_index_ == *split_index_) {
      for (std::size_t i = from; i < to && value_.size() <= kMaxValueBytes; ++i) {
        if (((dropped >> i) & 1) == 0) {
          value_.push_back(data[i]);
        }
      }
    }
    if (ends == 0) {
      return;
    }
    if (split_index_ && field_index_ == *split_index_) {
      has_value_ = true;
    }
    const std::uint64_t bit = std::uint64_t{1} << to;
    if ((lf & bit) != 0) {
      if ((blank & bit) == 0) {
        hour_of_record();
      }
      field_index_ = 0;
      value_.clear();
      has_value_ = false;
    } else {
      ++field_index_;
    }
    from = to + 1;
  }
}

void CsvRowCounter::hour_of_record() {
  const auto hour = has_value_ ? beijing_hour(value_, window_) : std::nullopt;
  if (hour) {
    ++hours_[*hour];
  } else {
    ++result_.unhoured;
  }
}

CsvRows CsvRowCounter::finish() {
  if (!header_done_) {
    end_header_line();  // a header without its newline
  } else if (scan_.line == Line::content) {
    ++scan_.rows;  // the last record, without its newline
    if (splitting_) {
      if (split_index_ && field_index_ == *split_index_) {
        has_value_ = true;
      }
      hour_of_record();
    }
  }
  if (splitting_ && split_index_) {  // without the column no record has an hour
    result_.rows_by_hour.assign(hours_.begin(), hours_.end());
  }
  result_.rows = scan_.rows;
  return std::move(result_);
}

std::vector<std::string> read_csv_header(const std::filesystem::path& gzip_file) {
  std::ifstream in{gzip_file, std::ios::binary};
  CsvRowCounter counter;
  GzipChecker checker;
  checker.count_rows(&counter);
  // Small pieces: deflate inflates at most ~1032 bytes per byte, so one piece adds at
  // most ~1 MiB beyond the bound. The bound counts inflated bytes (what costs time on
  // the caller's thread): a header that long is no vendor's header.
  std::vector<char> piece(1 << 10);
  std::uint64_t offset = 0;
  while (in && !counter.header_read() && counter.bytes_fed() < kMaxHeaderScanBytes) {
    in.read(piece.data(), static_cast<std::streamsize>(piece.size()));
    const auto got = static_cast<std::size_t>(in.gcount());
    if (got == 0 || checker.feed(piece.data(), got, offset)) {
      break;
    }
    offset += got;
  }
  return counter.header_read() ? counter.finish().columns : std::vector<std::string>{};
}

}  // namespace gio::archive
