#include "cli/http_settings.hpp"

namespace gio::cli {

http::Settings http_settings(const config::HttpSettings& http) {
  http::Settings settings;
  settings.timeout = http.timeout;
  settings.ca_file = http.ca_file;
  return settings;
}

}  // namespace gio::cli
