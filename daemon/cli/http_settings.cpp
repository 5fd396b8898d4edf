#include "cli/http_settings.hpp"

#include <cstdlib>

#include "http/proxy.hpp"

namespace gio::cli {

http::Settings http_settings(const config::HttpSettings& http) {
  http::Settings settings;
  settings.timeout = http.timeout;
  settings.ca_file = http.ca_file;
  settings.proxy = proxy_settings(http, [](const char* name) { return std::getenv(name); });
  return settings;
}

http::ProxySettings proxy_settings(const config::HttpSettings& http,
                                   const std::function<const char*(const char*)>& lookup) {
  http::ProxySettings proxy = http::proxy_from_environment(lookup);
  // The config file wins over the environment: http.proxy replaces both variables
  // (for http:// and https:// URLs alike), http.no_proxy replaces no_proxy.
  if (http.proxy) {
    proxy.http = proxy.https = http.proxy->reveal();
    proxy.http_source = proxy.https_source = "http.proxy";
  }
  if (http.no_proxy) {
    proxy.no_proxy = *http.no_proxy;
  }
  return proxy;
}

}  // namespace gio::cli
