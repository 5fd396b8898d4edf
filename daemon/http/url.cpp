// URLs: splitting one into what a connection needs, and the redacted form for logs.

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
