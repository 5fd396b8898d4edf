#pragma once

// The HTTP client's settings from the config's `http:` section and the environment's
// proxy variables: the daemon's and `fetch`'s, so both go through the network the same way.

#include <functional>

#include "config/config.hpp"
#include "http/client.hpp"

namespace gio::cli {

http::Settings http_settings(const config::HttpSettings& http);

// Which proxies: http.proxy and http.no_proxy when set, else the environment's
// https_proxy / http_proxy / no_proxy (`lookup` reads a variable, as std::getenv).
http::ProxySettings proxy_settings(const config::HttpSettings& http,
                                   const std::function<const char*(const char*)>& lookup);

}  // namespace gio::cli
