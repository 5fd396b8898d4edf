// Link-to-file-name sanitizing: the input is a batch of download links, one per line.
// Every name must be a safe file name inside the partition folder (no '/', NUL or
// control character, never "." or "..", never hidden or one of the archive's reserved
// names, at most kMaxFileNameBytes, valid UTF-8), and the names of one batch unique.

#include <cstddef>
#include <cstdint>
#include <set>

#include "archive/archive.hpp"
#include "fuzz_check.hpp"

namespace {

bool valid_utf8(std::string_view text) {
  for (std::size_t pos = 0; pos < text.size();) {
    const auto lead = static_cast<unsigned char>(text[pos]);
    std::size_t length = lead < 0x80                    ? 1
                         : lead >= 0xC2 && lead <= 0xDF ? 2
                         : lead >= 0xE0 && lead <= 0xEF ? 3
                         : lead >= 0xF0 && lead <= 0xF4 ? 4
                                                        : 0;
    if (length == 0 || pos + length > text.size()) {
      return false;
    }
    char32_t code = length == 1 ? lead : lead & (0x7F >> length);
    for (std::size_t i = 1; i < length; ++i) {
      const auto next = static_cast<unsigned char>(text[pos + i]);
      if ((next & 0xC0) != 0x80) {
        return false;
      }
      code = (code << 6) | (next & 0x3F);
    }
    const char32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < least[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    pos += length;
  }
  return true;
}

void check_name(const std::string& name) {
  namespace archive = gio::archive;
  GIO_FUZZ_CHECK(!name.empty() && name.size() <= archive::kMaxFileNameBytes, "size: " + name);
  GIO_FUZZ_CHECK(name != "." && name != "..", "a dot name");
  GIO_FUZZ_CHECK(name.front() != '.' && name.front() != '_' && name.front() != ' ',
                 "hidden or reserved: " + name);
  GIO_FUZZ_CHECK(name != archive::kSuccessName && name != archive::kManifestName &&
                     name != archive::kStagingName,
                 "a reserved name");
  for (const char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    GIO_FUZZ_CHECK(c != '/' && c != '\\' && byte >= 0x20 && byte != 0x7f,
                   "a separator or control character");
  }
  GIO_FUZZ_CHECK(valid_utf8(name), "invalid UTF-8");
  GIO_FUZZ_CHECK(archive::is_safe_file_name(name), "is_safe_file_name refuses it: " + name);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = gio::fuzz::as_text(data, size);
  std::vector<std::string> urls;
  for (std::size_t start = 0; start <= text.size();) {
    const auto end = std::min(text.find('\n', start), text.size());
    urls.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }

  const std::vector<std::string> names = gio::archive::file_names_for_links(urls);
  GIO_FUZZ_CHECK(names.size() == urls.size(), "a name per link");
  std::set<std::string> seen;
  std::multiset<std::string> alone;
  for (std::size_t i = 0; i < urls.size(); ++i) {
    alone.insert(gio::archive::file_name_from_link(urls[i], i));
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    check_name(names[i]);
    GIO_FUZZ_CHECK(seen.insert(names[i]).second, "two links share the name " + names[i]);
    // A name no other link of the batch has on its own is kept as it is.
    const std::string own = gio::archive::file_name_from_link(urls[i], i);
    check_name(own);
    if (alone.count(own) == 1) {
      GIO_FUZZ_CHECK(names[i] == own, "a unique name was renamed");
    }
  }
  // is_safe_file_name on the raw text must agree with the rules above.
  if (gio::archive::is_safe_file_name(text)) {
    check_name(std::string{text});
  }
  return 0;
}
