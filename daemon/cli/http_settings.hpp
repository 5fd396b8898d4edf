#pragma once

// The HTTP client's settings from the config's `http:` section: the daemon's and
// `fetch`'s, so both go through the network the same way.

#include "config/config.hpp"
#include "http/client.hpp"

namespace gio::cli {

http::Settings http_settings(const config::HttpSettings& http);

}  // namespace gio::cli
