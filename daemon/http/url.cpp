// URLs: splitting one into what a connection needs, and the redacted form for logs.

#include "http/url.hpp"

#include <algorithm>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <cctype>

#include "http/detail.hpp"

namespace gio::http {

namespace detail {

namespace urls = boost::urls;

std::optional<Target> parse_target(std::string_view text, std::string& why) {
  auto parsed = urls::parse_uri(text);
  if (!parsed) {
    why = "not a valid URL";
    return std::nullopt;
  }
  const urls::url_view& url = *parsed;
  Target target;
  if (url.scheme_id() == urls::scheme::https) {
    target.tls = true;
  } else if (url.scheme_id() != urls::scheme::http) {
    why = "only http and https URLs are supported";
    return std::nullopt;
  }
  target.host = url.host_address();
  if (target.host.empty()) {
    why = "the URL has no host";
    return std::nullopt;
  }
  target.host_is_address =
      url.host_type() == urls::host_type::ipv4 || url.host_type() == urls::host_type::ipv6;
  target.port = url.has_port() ? std::string{url.port()} : (target.tls ? "443" : "80");
  if (target.port.empty() || !std::all_of(target.port.begin(), target.port.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) != 0;
      })) {
    why = "the URL has an invalid port";
    return std::nullopt;
  }
  target.host_header = url.encoded_host_and_port();
  target.target = url.encoded_target();
  if (target.target.empty() || target.target.front() != '/') {
    target.target.insert(0, "/");
  }
  target.key = std::string{target.tls ? "https://" : "http://"} + target.host + "|" + target.port;
  return target;
}

bool is_redirect(unsigned status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace detail

namespace {

namespace urls = boost::urls;

// One URI (reference) split into its five components, each as written (encoded). An
// absent component differs from an empty one ("?" is an empty query).
struct Parts {
  std::optional<std::string> scheme, authority;
  std::string path;
  std::optional<std::string> query;
};

Parts split(const boost::urls::url_view& url) {
  Parts parts;
  if (url.has_scheme()) {
    parts.scheme = std::string{url.scheme()};
  }
  if (url.has_authority()) {
    parts.authority = std::string{url.encoded_authority()};
  }
  parts.path = std::string{url.encoded_path()};
  if (url.has_query()) {
    parts.query = std::string{url.encoded_query()};
  }
  return parts;
}

// Section 5.2.3: the reference's relative path appended to the base's folder.
std::string merge(const Parts& base, std::string_view path) {
  if (base.authority && base.path.empty()) {
    return "/" + std::string{path};
  }
  const auto slash = base.path.rfind('/');
  return (slash == std::string::npos ? std::string{} : base.path.substr(0, slash + 1)) +
         std::string{path};
}

// The last segment of `output`, and the "/" before it, removed (section 5.2.4, C).
void drop_last_segment(std::string& output) {
  const auto slash = output.rfind('/');
  output.erase(slash == std::string::npos ? 0 : slash);
}

}  // namespace

std::string remove_dot_segments(std::string_view input) {
  std::string output;
  while (!input.empty()) {
    if (input.starts_with("../")) {  // A
      input.remove_prefix(3);
    } else if (input.starts_with("./")) {
      input.remove_prefix(2);
    } else if (input.starts_with("/./")) {  // B
      input.remove_prefix(2);
    } else if (input == "/.") {
      input = "/";
    } else if (input.starts_with("/../")) {  // C
      input.remove_prefix(3);
      drop_last_segment(output);
    } else if (input == "/..") {
      input = "/";
      drop_last_segment(output);
    } else if (input == "." || input == "..") {  // D
      input = {};
    } else {  // E: the first segment, with its leading "/", moves to the output
      const auto end = input.find('/', input.front() == '/' ? 1 : 0);
      const std::size_t size = end == std::string_view::npos ? input.size() : end;
      output.append(input.substr(0, size));
      input.remove_prefix(size);
    }
  }
  return output;
}

std::optional<std::string> resolve_reference(std::string_view base_text,
                                             std::string_view reference_text) {
  const auto base_url = urls::parse_uri(base_text);
  const auto reference_url = urls::parse_uri_reference(reference_text);
  if (!base_url || !reference_url) {
    return std::nullopt;
  }
  const Parts base = split(*base_url);
  const Parts reference = split(*reference_url);
  // Section 5.2.2, strict: a reference with a scheme is taken as it is.
  Parts target;
  if (reference.scheme) {
    target = reference;
    target.path = remove_dot_segments(reference.path);
  } else {
    target.scheme = base.scheme;
    if (reference.authority) {
      target.authority = reference.authority;
      target.path = remove_dot_segments(reference.path);
      target.query = reference.query;
    } else {
      target.authority = base.authority;
      if (reference.path.empty()) {
        target.path = base.path;
        target.query = reference.query ? reference.query : base.query;
      } else {
        target.path = remove_dot_segments(
            reference.path.front() == '/' ? reference.path : merge(base, reference.path));
        target.query = reference.query;
      }
    }
  }
  // Section 5.3, without the fragment (it is never sent).
  std::string out = *target.scheme + ":";
  if (target.authority) {
    out += "//" + *target.authority;
  }
  out += target.path;
  if (target.query) {
    out += "?" + *target.query;
  }
  return out;
}

std::string redact(std::string_view url) {
  // Plain string work rather than a URL parser: this must also make garbage safe to log.
  url = url.substr(0, url.find('#'));
  url = url.substr(0, url.find('?'));
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return std::string{url};
  }
  const std::string_view scheme = url.substr(0, scheme_end + 3);
  std::string_view rest = url.substr(scheme_end + 3);
  const auto authority_end = std::min(rest.find('/'), rest.size());
  std::string_view authority = rest.substr(0, authority_end);
  const std::string_view path = rest.substr(authority_end);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string out;
  out.reserve(url.size() + 1);
  out.append(scheme).append(authority).append(path.empty() ? "/" : path);
  return out;
}

}  // namespace gio::http
