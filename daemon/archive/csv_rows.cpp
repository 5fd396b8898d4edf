#include "archive/csv_rows.hpp"

#include <bit>
#include <charconv>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace gio::archive {
namespace {

// The special bytes of 64 bytes, one bit each (bit i = byte i).
struct Masks {
  std::uint64_t quote = 0, backslash = 0, lf = 0, cr = 0;
};

#if defined(__SSE2__)
std::uint64_t bits_of(const __m128i (&v)[4], __m128i byte) {
  std::uint64_t bits = 0;
  for (int k = 0; k < 4; ++k) {
    const auto lane = static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v[k], byte)));
    bits |= std::uint64_t{lane} << (16 * k);
  }
  return bits;
}

Masks masks_of(const char* data) {
  const __m128i v[4] = {_mm_loadu_si128(reinterpret_cast<const __m128i*>(data)),
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16)),
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 32)),
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 48))};
  return {.quote = bits_of(v, _mm_set1_epi8('"')),
          .backslash = bits_of(v, _mm_set1_epi8('\\')),
          .lf = bits_of(v, _mm_set1_epi8('\n')),
          .cr = bits_of(v, _mm_set1_epi8('\r'))};
}
#else
Masks masks_of(const char* data) {
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
      default:
        break;
    }
  }
  return masks;
}
#endif

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

// A record's split value as an hour of Beijing time; nullopt unless plain decimal digits
// that fit in 64 bits.
std::optional<std::size_t> beijing_hour(std::string_view millis) {
  std::uint64_t value = 0;
  if (millis.empty() || millis.front() < '0' || millis.front() > '9') {
    return std::nullopt;  // from_chars would take a sign
  }
  const auto [end, error] = std::from_chars(millis.data(), millis.data() + millis.size(), value);
  if (error != std::errc{} || end != millis.data() + millis.size()) {
    return std::nullopt;
  }
  constexpr std::uint64_t kBeijingOffset = 8 * 3600;
  return static_cast<std::size_t>((value / 1000 + kBeijingOffset) / 3600 % 24);
}

// Longest split value kept: more digits than any 64-bit number, so a longer one still
// fails to parse.
constexpr std::size_t kMaxValueBytes = 24;

}  // namespace

CsvRowCounter::CsvRowCounter(std::string split_column)
    : split_column_(std::move(split_column)), splitting_(true) {}

void CsvRowCounter::feed(const char* data, std::size_t size) {
  if (!header_done_ || splitting_) {
    const std::size_t used = scalar(data, size);
    data += used;
    size -= used;
  }
  if (size > 0) {
    fast(data, size);
  }
}

// Byte by byte: the header (then returns, leaving the rest to the fast scan unless
// splitting) and, when splitting, every record. Returns the bytes it consumed.
std::size_t CsvRowCounter::scalar(const char* data, std::size_t size) {
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
        end_field();
        break;
      case '\n':
        end_record();
        if (header_done_ && !splitting_) {
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
  if (!header_done_) {
    if (header_bytes_ < kMaxHeaderBytes) {
      ++header_bytes_;
      field_.push_back(byte);
    }
  } else if (split_index_ && field_index_ == *split_index_ && field_.size() < kMaxValueBytes) {
    field_.push_back(byte);
  }
}

void CsvRowCounter::end_field() {
  if (!header_done_) {
    if (header_bytes_ < kMaxHeaderBytes) {
      ++header_bytes_;  // a header of endless commas is cut too
      result_.columns.push_back(std::move(field_));
    }
  } else if (split_index_ && field_index_ == *split_index_) {
    value_ = std::move(field_);
    has_value_ = true;
  }
  field_.clear();
  ++field_index_;
}

void CsvRowCounter::end_record() {
  if (line_ == Line::content) {
    end_field();
    if (!header_done_) {
      header_done_ = true;
      for (std::size_t i = 0; splitting_ && i < result_.columns.size(); ++i) {
        if (result_.columns[i] == split_column_) {
          split_index_ = i;
          break;
        }
      }
    } else {
      ++result_.rows;
      if (splitting_) {
        const auto hour = has_value_ ? beijing_hour(value_) : std::nullopt;
        if (hour) {
          ++hours_[*hour];
        } else {
          ++result_.unhoured;
        }
      }
    }
  }
  // A blank line keeps nothing either: a header still to come starts afresh.
  if (!header_done_) {
    result_.columns.clear();
    header_bytes_ = 0;
  }
  line_ = Line::empty;
  field_.clear();
  field_index_ = 0;
  has_value_ = false;
}

// Counting only, 64 bytes at a time: the quotes, escapes and newlines of a block as bit
// masks, so the cost does not depend on how many fields or quotes the data has.
void CsvRowCounter::fast(const char* data, std::size_t size) {
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

void CsvRowCounter::block(const char* data, std::size_t size) {
  const Masks masks = masks_of(data);
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

  if (lf != 0) {
    const std::size_t after = size - 1 - static_cast<std::size_t>(63 - std::countl_zero(lf));
    const bool last_cr = ((cr >> (size - 1)) & 1) != 0;
    line_ = after == 0 ? Line::empty : (after == 1 && last_cr ? Line::cr : Line::content);
  } else {
    line_ = was_empty && size == 1 && (cr & 1) != 0 ? Line::cr : Line::content;
  }
}

CsvRows CsvRowCounter::finish() {
  // The last record, without its newline.
  if (!header_done_ || splitting_) {
    end_record();
  } else if (line_ == Line::content) {
    ++result_.rows;
  }
  if (splitting_) {
    result_.rows_by_hour.assign(hours_.begin(), hours_.end());
  }
  return std::move(result_);
}

}  // namespace gio::archive
