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

// The special bytes of 64 bytes, one bit each (bit i = byte i). `comma` only when asked
// (splitting by a column needs the fields; counting needs only the records).
struct Masks {
  std::uint64_t quote = 0, backslash = 0, lf = 0, cr = 0, comma = 0;
};

#if defined(__x86_64__)
// 32 bytes at a time where the CPU has AVX2 (chosen at run time: the build targets
// plain x86-64).
__attribute__((target("avx2"))) std::uint64_t avx2_bits(const __m256i& low, const __m256i& high,
                                                        char byte) {
  const __m256i wanted = _mm256_set1_epi8(byte);
  const auto low_bits =
      static_cast<std::uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(low, wanted)));
  const auto high_bits =
      static_cast<std::uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(high, wanted)));
  return std::uint64_t{low_bits} | (std::uint64_t{high_bits} << 32);
}

__attribute__((target("avx2"))) Masks masks_avx2(const char* data, bool commas) {
  const __m256i low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data));
  const __m256i high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + 32));
  return {.quote = avx2_bits(low, high, '"'),
          .backslash = avx2_bits(low, high, '\\'),
          .lf = avx2_bits(low, high, '\n'),
          .cr = avx2_bits(low, high, '\r'),
          .comma = commas ? avx2_bits(low, high, ',') : 0};
}

// __builtin_cpu_supports reads what __builtin_cpu_init fills in; the compiler runs that
// init before ordinary static constructors only by accident of order, not by guarantee.
bool have_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") != 0;
}

const bool kHaveAvx2 = have_avx2();
#endif

#if defined(__SSE2__)
Masks masks_sse2(const char* data, bool commas) {
  const __m128i v[4] = {_mm_loadu_si128(reinterpret_cast<const __m128i*>(data)),
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16)),
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 32)),
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 48))};
  const auto bits = [&v](char byte) {
    const __m128i wanted = _mm_set1_epi8(byte);
    std::uint64_t out = 0;
    for (int k = 0; k < 4; ++k) {
      const auto lane = static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v[k], wanted)));
      out |= std::uint64_t{lane} << (16 * k);
    }
    return out;
  };
  return {.quote = bits('"'),
          .backslash = bits('\\'),
          .lf = bits('\n'),
          .cr = bits('\r'),
          .comma = commas ? bits(',') : 0};
}
#else
Masks masks_scalar(const char* data, bool commas) {
  Masks masks;
  for (int i = 0; i < 64; ++i) {
    const std::uint64_t bit = std::uint64_t{1} << i;
    switch (data[i]) {
      case '"':
        masks.quote |= bit;
        break;
      case '\\':
        masks.backslash |= bit;
        break;
      case '\n':
        masks.lf |= bit;
        break;
      case '\r':
        masks.cr |= bit;
        break;
      case ',':
        masks.comma |= commas ? bit : 0;
        break;
      default:
        break;
    }
  }
  return masks;
}
#endif

Masks masks_of(const char* data, bool commas) {
#if defined(__x86_64__)
  if (kHaveAvx2) {
    return masks_avx2(data, commas);
  }
#endif
#if defined(__SSE2__)
  return masks_sse2(data, commas);
#else
  return masks_scalar(data, commas);
#endif
}

// Bit i = XOR of bits 0..i: 1 from an opening quote up to (not including) its closing one.
std::uint64_t prefix_xor(std::uint64_t x) {
  x ^= x << 1;
  x ^= x << 2;
  x ^= x << 4;
  x ^= x << 8;
  x ^= x << 16;
  x ^= x << 32;
  return x;
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
  while (size >= 64) {
    block(data, 64);
    data += 64;
    size -= 64;
  }
  if (size > 0) {
    char padded[64] = {};  // zero bytes match no special byte
    std::memcpy(padded, data, size);
    block(padded, size);
  }
}

// Byte by byte, until the header's newline (blank lines before it skipped): returns the
// bytes it consumed.
std::size_t CsvRowCounter::header(const char* data, std::size_t size) {
  for (std::size_t i = 0; i < size; ++i) {
    const char byte = data[i];
    if (escaped_) {
      escaped_ = false;
      line_ = Line::content;
      take(byte);
      continue;
    }
    if (quoted_) {
      if (byte == '"') {
        quoted_ = false;
      } else if (byte == '\\') {
        escaped_ = true;
      } else {
        take(byte);
      }
      continue;  // the line has content since its opening quote
    }
    switch (byte) {
      case '\\':
        escaped_ = true;
        line_ = Line::content;
        break;
      case '"':
        quoted_ = true;
        line_ = Line::content;
        break;
      case ',':
        line_ = Line::content;
        end_column();
        break;
      case '\n':
        end_header_line();
        if (header_done_) {
          return i + 1;
        }
        break;
      case '\r':  // never part of a value; a line of only "\r" is blank
        line_ = line_ == Line::empty ? Line::cr : Line::content;
        break;
      default:
        line_ = Line::content;
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
  if (line_ == Line::content) {
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
  line_ = Line::empty;
}

// 64 bytes at a time (`size` of them valid): the quotes, escapes and newlines of a block
// as bit masks, so the cost does not depend on how many fields or quotes the data has.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// Cloned for CPUs from Haswell on (AVX2, BMI, POPCNT, PCLMUL: about twice the speed
// with the helpers inlined into it) and plain x86-64, picked once at load time.
__attribute__((target_clones("arch=haswell", "default")))
#endif
void CsvRowCounter::block(const char* data, std::size_t size) {
  const Masks masks = masks_of(data, splitting_);
  // Escapes: each unescaped backslash takes the byte after it (rare: a loop is fine).
  std::uint64_t escaped = escaped_ ? 1 : 0;
  std::uint64_t backslash = masks.backslash & ~escaped;
  escaped_ = false;
  while (backslash != 0) {
    const int at = std::countr_zero(backslash);
    if (static_cast<std::size_t>(at) + 1 >= size) {
      escaped_ = true;  // escapes the first byte of the next block
      break;
    }
    const std::uint64_t next = std::uint64_t{2} << at;
    escaped |= next;
    backslash &= ~(next | (next >> 1));
  }
  const std::uint64_t quotes = masks.quote & ~escaped;
  const std::uint64_t inside = prefix_xor(quotes) ^ (quoted_ ? ~std::uint64_t{0} : 0);
  quoted_ = ((inside >> (size - 1)) & 1) != 0;
  const std::uint64_t lf = masks.lf & ~escaped & ~inside;  // record ends
  const std::uint64_t cr = masks.cr & ~escaped & ~inside;

  // A record end closes a blank line when the byte before is a record end (or the
  // start), or is '\r' with a record end (or the start) before it.
  const bool was_empty = line_ == Line::empty;
  const bool was_cr = line_ == Line::cr;
  const std::uint64_t lf_before = (lf << 1) | (was_empty ? 1 : 0);
  const std::uint64_t cr_before = (cr << 1) | (was_cr ? 1 : 0);
  const std::uint64_t lf_two_before = (lf << 2) | (was_cr ? 1 : 0) | (was_empty ? 2 : 0);
  const std::uint64_t blank = lf & (lf_before | (cr_before & lf_two_before));
  result_.rows += static_cast<std::uint64_t>(std::popcount(lf) - std::popcount(blank));

  if (splitting_) {
    // Bytes that are no part of a value: quotes, escaping backslashes, bare '\r'.
    const std::uint64_t dropped = quotes | (masks.backslash & ~escaped) | cr;
    split_block(data, size, masks.comma & ~escaped & ~inside, lf, blank, dropped);
  }

  if (lf != 0) {
    const std::size_t after = size - 1 - static_cast<std::size_t>(63 - std::countl_zero(lf));
    const bool last_cr = ((cr >> (size - 1)) & 1) != 0;
    line_ = after == 0 ? Line::empty : (after == 1 && last_cr ? Line::cr : Line::content);
  } else {
    line_ = was_empty && size == 1 && (cr & 1) != 0 ? Line::cr : Line::content;
  }
}

// Splitting: walks the block's field and record ends, keeping the split column's value
// and giving each record that ends here its hour.
void CsvRowCounter::split_block(const char* data, std::size_t size, std::uint64_t commas,
                                std::uint64_t lf, std::uint64_t blank, std::uint64_t dropped) {
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
  } else if (line_ == Line::content) {
    ++result_.rows;  // the last record, without its newline
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
