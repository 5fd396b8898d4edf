#pragma once

// What the harnesses share: a check that turns a broken invariant into a crash that
// libFuzzer records (the input is saved like any other crash), and small helpers.

#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

// Aborts with a message when `condition` is false: a logic bug, not only a crash.
#define GIO_FUZZ_CHECK(condition, message)                                                  \
  do {                                                                                      \
    if (!(condition)) {                                                                     \
      std::fprintf(stderr, "fuzz invariant broken at %s:%d: %s (%s)\n", __FILE__, __LINE__, \
                   #condition, std::string(message).c_str());                               \
      std::abort();                                                                         \
    }                                                                                       \
  } while (false)

namespace gio::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// True when `haystack` holds `needle`; an empty or short needle never counts, since
// short strings appear by chance (a link "a" is in "answer is not JSON").
inline bool leaks(std::string_view haystack, std::string_view needle, std::size_t min_size = 8) {
  return needle.size() >= min_size && haystack.find(needle) != std::string_view::npos;
}

// The document the parser under test read, parsed independently (nullptr when it is
// not a JSON object), so that a harness can say what the answer should have been.
inline boost::json::value parse_or_null(std::string_view body) {
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(body, ec);
  if (ec) {
    return nullptr;
  }
  return value;
}

}  // namespace gio::fuzz

namespace gio::fuzz {

// `value` with every string below it replaced by a distinct text ("\x01<n>"; empty
// ones stay empty), so that a harness can check that an error never depends on (and so never
// quotes) strings such as links or codes.
inline void replace_strings(boost::json::value& value, int& next) {
  if (value.is_string()) {
    if (!value.get_string().empty()) {  // emptiness is something parsers check
      value = "\x01" + std::to_string(next++);
    }
  } else if (value.is_array()) {
    for (auto& item : value.get_array()) {
      replace_strings(item, next);
    }
  } else if (value.is_object()) {
    for (auto& member : value.get_object()) {
      replace_strings(member.value(), next);
    }
  }
}

}  // namespace gio::fuzz
