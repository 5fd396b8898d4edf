#pragma once

// URL references resolved the way RFC 3986 section 5.2 says, on the encoded strings: a
// percent-encoded byte stays encoded, so "..%2F" and "%2E%2E" in an object key are parts
// of a name, never path steps. (Boost.URL 1.81's resolve decodes before removing dot
// segments, and a signed object-storage link then asks for another key.)

#include <optional>
#include <string>
#include <string_view>

namespace gio::http {

// The target URI of `reference` (a Location header: absolute, or relative to `base`),
// without its fragment; nullopt when either is not a valid URI (reference). The path and
// query keep their bytes exactly, percent-encoding and case included; only literal "."
// and ".." segments are removed.
std::optional<std::string> resolve_reference(std::string_view base, std::string_view reference);

// RFC 3986 section 5.2.4 on an encoded path: only the literal segments "." and ".."
// count, so "%2E%2E" and "..%2F" are kept as they are.
std::string remove_dot_segments(std::string_view path);

}  // namespace gio::http
