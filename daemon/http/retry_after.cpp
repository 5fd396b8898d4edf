// Retry-After: delta-seconds or an HTTP date, as a delay.

#include <algorithm>
#include <array>
#include <cctype>
#include <vector>

#include "http/client.hpp"

namespace gio::http {

namespace {

using namespace std::chrono;

bool all_digits(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; });
}

std::string_view trim(std::string_view value) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) {
    value.remove_prefix(1);
  }
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
    value.remove_suffix(1);
  }
  return value;
}

// `value` is all digits.
seconds delta_seconds(std::string_view value) {
  if (value.size() > 9) {
    return seconds{999'999'999};  // absurd but well-formed: "a very long time"
  }
  return seconds{std::stoll(std::string{value})};
}

// The runs of letters and digits, whatever separates them.
std::vector<std::string_view> split_words(std::string_view value) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < value.size()) {
    while (i < value.size() && !std::isalnum(static_cast<unsigned char>(value[i]))) {
      ++i;
    }
    const std::size_t start = i;
    while (i < value.size() && std::isalnum(static_cast<unsigned char>(value[i]))) {
      ++i;
    }
    if (i > start) {
      words.push_back(value.substr(start, i - start));
    }
  }
  return words;
}

// 1 to 12 for a month's three-letter name in any case, else 0.
int month_number(std::string_view word) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
  std::string lower{word};
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto found = std::find(kMonths.begin(), kMonths.end(), lower);
  return found != kMonths.end() ? static_cast<int>(found - kMonths.begin()) + 1 : 0;
}

// An HTTP date in any of the three forms RFC 9110 asks recipients to accept:
//   Sun, 06 Nov 1994 08:49:37 GMT / Sunday, 06-Nov-94 08:49:37 GMT / Sun Nov  6 08:49:37 1994
std::optional<sys_seconds> parse_http_date(std::string_view value) {
  int month = 0;
  bool month_first = false;  // asctime puts the month before the day
  std::vector<int> numbers;
  for (std::string_view word : split_words(value)) {
    if (std::isdigit(static_cast<unsigned char>(word.front())) != 0) {
      if (word.size() > 4 || !all_digits(word)) {
        return std::nullopt;
      }
      numbers.push_back(std::stoi(std::string{word}));
      continue;
    }
    if (word.size() == 3 && month == 0) {
      if (const int found = month_number(word); found != 0) {
        month = found;
        month_first = numbers.empty();
      }
    }
  }
  if (month == 0 || numbers.size() != 5) {
    return std::nullopt;
  }
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  if (month_first) {
    day = numbers[0], hour = numbers[1], minute = numbers[2], second = numbers[3],
    year = numbers[4];
  } else {
    day = numbers[0], year = numbers[1], hour = numbers[2], minute = numbers[3],
    second = numbers[4];
  }
  if (year < 100) {
    year += year < 70 ? 2000 : 1900;
  }
  const year_month_day date{std::chrono::year{year},
                            std::chrono::month{static_cast<unsigned>(month)},
                            std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok() || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  return sys_days{date} + hours{hour} + minutes{minute} + seconds{second};
}

}  // namespace

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
  using namespace std::chrono;
  value = trim(value);
  if (value.empty()) {
    return std::nullopt;
  }
  if (all_digits(value)) {
    return delta_seconds(value);
  }
  const auto at = parse_http_date(value);
  if (!at) {
    return std::nullopt;
  }
  const auto delay = ceil<seconds>(*at - now);
  return std::max(delay, seconds{0});
}

}  // namespace gio::http
