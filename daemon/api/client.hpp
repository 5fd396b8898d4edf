#pragma once

// The GrowingIO export API as gio-exporter uses it: one Client per project, every
// call behind that project's rate limiter, authenticated with the project's token.

#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <optional>
#include <string>

#include "api/rate_limiter.hpp"
#include "api/raw_export.hpp"
#include "config/config.hpp"
#include "http/client.hpp"
#include "slot/slot.hpp"

namespace gio::api {

struct Error {
  // transient: worth asking again later (network, 5xx, 429, a garbled answer);
  // otherwise the request itself is wrong (credentials, path) and retrying won't help.
  bool transient = true;
  unsigned status = 0;  // HTTP status; 0 when no answer arrived
  std::string message;  // names the project and the cause; never a secret
  std::optional<std::chrono::seconds> retry_after{};
};

class Client {
 public:
  Client(http::Client& http, std::string api_base, const config::Project& project,
         RateLimiter& limiter);

  // The all-types raw export of `slot` (seed 002); links valid for `link_expire`.
  boost::asio::awaitable<boost::system::result<RawExport, Error>> raw_export(
      const Slot& slot, std::chrono::minutes link_expire);

  // Any API call: `path` (with its query) below api_base, behind the rate limiter and
  // authenticated; a 2xx answer, or an Error classified as transient or not.
  boost::asio::awaitable<boost::system::result<http::Response, Error>> get(std::string path);

 private:
  http::Client& http_;
  std::string api_base_;
  const config::Project& project_;
  RateLimiter& limiter_;
};

}  // namespace gio::api
