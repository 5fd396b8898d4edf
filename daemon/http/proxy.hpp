#pragma once

// Forward proxies: parsing a proxy URL, curl's NO_PROXY rules, and the proxy variables of
// the environment. The client (client.cpp) sends https:// requests through a CONNECT
// tunnel and http:// requests in absolute-form.

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "http/client.hpp"

namespace gio::http {

// One http:// proxy. Its credentials live only in `authorization`.
struct Proxy {
  std::string host;           // for resolving: IPv6 without brackets
  std::string port;           // numeric; 1080 when the URL has none, as curl
  std::string authorization;  // "Basic ..." for Proxy-Authorization; "" without userinfo
  std::string shown;          // http://host:port: the only form for logs and messages
};

// `text` is http://[user[:password]@]host[:port][/], or the same without "http://" (as
// curl takes it). nullopt, with `why` set, when it is not such a URL; `why` never quotes
// `text`, which may hold a password.
std::optional<Proxy> parse_proxy(std::string_view text, std::string& why);

// Whether the NO_PROXY-style `list` says to reach host:port directly (curl's rules): the
// entries are separated by commas or spaces; `*` matches every host; a name matches
// itself and its subdomains (a leading dot changes nothing: ".corp" and "corp" both
// match "corp" and "a.corp"); an IP address matches itself, or an address in its
// network with a /bits suffix (10.0.0.0/8); any entry may end in :port ([::1]:8080 for
// IPv6) to match that port only. Names are compared without case. `host` is as in a URL,
// IPv6 without brackets.
bool no_proxy_matches(std::string_view list, std::string_view host, std::string_view port);

// The proxy settings from the environment: http_proxy, https_proxy and no_proxy, each
// read in lowercase first and then in uppercase (HTTP_PROXY...); an empty variable
// counts as unset. `lookup` returns a variable's value or nullptr (std::getenv).
ProxySettings proxy_from_environment(const std::function<const char*(const char*)>& lookup);

// One line for the logs on which proxies are used ("" when none): the proxies in their
// shown form, where each came from and the no_proxy list, never a credential.
std::string describe_proxies(const ProxySettings& settings);

}  // namespace gio::http
