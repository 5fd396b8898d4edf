// Names: data types become folders and link names become files, so both are
// untrusted input that must stay inside the archive.

#include <algorithm>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <set>
#include <string>

#include "archive/archive.hpp"

namespace gio::archive {
namespace {

// Extensions kept whole when a name is shortened or made unique.
constexpr std::size_t kMaxExtensionBytes = 16;

bool is_control(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

// Replaces separators, control characters and bytes that are not valid UTF-8 by '_'.
std::string replace_unsafe(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t pos = 0; pos < raw.size();) {
    const std::size_t length = utf8_sequence_length(raw, pos);
    if (length == 0) {
      out += '_';
      ++pos;
      continue;
    }
    const char c = raw[pos];
    if (length == 1 && (c == '/' || c == '\\' || is_control(static_cast<unsigned char>(c)))) {
      out += '_';
    } else {
      out.append(raw.substr(pos, length));
    }
    pos += length;
  }
  return out;
}

// Splits "name.csv.gz" into {"name", ".csv.gz"}: the last extension, and the one before
// it when the last is a compression suffix. Dots at the start are not extensions.
std::pair<std::string_view, std::string_view> split_extension(std::string_view name) {
  const auto last = name.rfind('.');
  if (last == std::string_view::npos || last == 0) {
    return {name, {}};
  }
  std::size_t start = last;
  const std::string_view suffix = name.substr(last);
  if (suffix == ".gz" || suffix == ".bz2" || suffix == ".zst" || suffix == ".xz") {
    const auto before = name.rfind('.', last - 1);
    if (before != std::string_view::npos && before != 0 && before != last - 1) {
      start = before;
    }
  }
  if (name.size() - start > kMaxExtensionBytes) {
    start = last;
    if (name.size() - start > kMaxExtensionBytes) {
      return {name, {}};
    }
  }
  return {name.substr(0, start), name.substr(start)};
}

// The longest prefix of valid UTF-8 `text` of at most `max_bytes` that ends on a
// character boundary.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) {
    return text;
  }
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return text.substr(0, cut);
}

// stem + suffix + extension within kMaxFileNameBytes, shortening the stem if needed.
std::string compose(std::string_view stem, std::string_view suffix, std::string_view extension) {
  const std::size_t room =
      kMaxFileNameBytes - std::min(kMaxFileNameBytes, suffix.size() + extension.size());
  std::string out{utf8_prefix(stem, room)};
  out += suffix;
  out += extension;
  return out;
}

std::string fallback_name(std::size_t index) {
  return "part-" + std::to_string(index) + ".csv.gz";
}

}  // namespace

std::size_t utf8_sequence_length(std::string_view text, std::size_t pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) {
    return 1;
  }
  std::size_t length = 0;
  unsigned char low = 0x80;  // bounds of the second byte (Unicode table 3-7)
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    low = lead == 0xE0 ? 0xA0 : 0x80;
    high = lead == 0xED ? 0x9F : 0xBF;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    low = lead == 0xF0 ? 0x90 : 0x80;
    high = lead == 0xF4 ? 0x8F : 0xBF;
  } else {
    return 0;
  }
  if (pos + length > text.size()) {
    return 0;
  }
  if (byte(pos + 1) < low || byte(pos + 1) > high) {
    return 0;
  }
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(pos + i) < 0x80 || byte(pos + i) > 0xBF) {
      return 0;
    }
  }
  return length;
}

bool is_safe_data_type(std::string_view data_type) {
  if (data_type.empty() || data_type.size() > kMaxDataTypeBytes) {
    return false;
  }
  // Never a leading '-': a folder that reads as an option to the tools that list it.
  if (data_type.front() == '-') {
    return false;
  }
  for (const char c : data_type) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

bool is_safe_file_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxFileNameBytes || name.front() == '.' ||
      name.front() == '_' || name.front() == ' ') {
    return false;
  }
  return replace_unsafe(name) == name;
}

std::string file_name_from_link(std::string_view url, std::size_t index) {
  const auto parsed = boost::urls::parse_uri_reference(url);
  if (!parsed) {
    return fallback_name(index);
  }
  // segments() percent-decodes; "%2F" stays inside its segment as a '/' (replaced below).
  const auto segments = parsed->segments();
  if (segments.empty()) {
    return fallback_name(index);
  }
  std::string name = replace_unsafe(segments.back());

  // Leading dots would hide the file (or name "." / ".."); leading spaces confuse people.
  const auto first = name.find_first_not_of(". ");
  name.erase(0, first == std::string::npos ? name.size() : first);
  if (name.empty()) {
    return fallback_name(index);
  }
  // Hive and Spark skip names starting with '_' or '.', and _SUCCESS/_manifest.json are ours.
  if (name.front() == '_') {
    name.insert(0, "part-");
  }
  if (name.size() > kMaxFileNameBytes) {
    const auto [stem, extension] = split_extension(name);
    name = compose(stem, {}, extension);
  }
  return name;
}

std::vector<std::string> file_names_for_links(const std::vector<std::string>& urls) {
  std::vector<std::string> names;
  names.reserve(urls.size());
  for (std::size_t i = 0; i < urls.size(); ++i) {
    names.push_back(file_name_from_link(urls[i], i));
  }
  // Every name some link has on its own is taken, so that a renamed duplicate never
  // lands on it ("a", "a", "a-2" gives "a", "a-3", "a-2").
  std::set<std::string> taken(names.begin(), names.end());
  std::set<std::string> seen;
  for (std::string& name : names) {
    if (seen.insert(name).second) {
      continue;
    }
    const auto [stem, extension] = split_extension(name);
    for (std::size_t n = 2;; ++n) {
      std::string candidate = compose(stem, "-" + std::to_string(n), extension);
      if (taken.insert(candidate).second) {
        seen.insert(candidate);
        name = std::move(candidate);
        break;
      }
    }
  }
  return names;
}

}  // namespace gio::archive
