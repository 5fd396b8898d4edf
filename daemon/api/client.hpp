#pragma once

// The GrowingIO export API as gio-exporter uses it: one Client per project, every
// call behind that project's rate limiter, authenticated with the project's token or
// with a signed code (auth.hpp).

#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "api/auth.hpp"
#include "api/chart.hpp"
#include "api/rate_limiter.hpp"
#include "api/raw_export.hpp"
#include "config/config.hpp"
#include "http/client.hpp"
#include "ops/registry.hpp"
#include "slot/slot.hpp"

namespace gio::api {

struct Error {
  // transient: worth asking again later (network, 5xx, 429, a garbled answer);
  // otherwise the request itself is wrong (credentials, path) and retrying won't help.
  bool transient = true;
  unsigned status = 0;  // HTTP status; 0 when no answer arrived
  std::string message;  // names the project and the cause; never a secret
  std::optional<std::chrono::seconds> retry_after{};
  // Nothing was sent: the caller's Turn::hold said so when its turn came.
  bool held = false;
};

class Client {
 public:
  // `codes` keeps signed codes across restarts; it is used only by a project with
  // signed-code auth (it may be null for a token project). `clock` dates the codes and
  // signs the token requests. `metrics`, when set, counts every request by endpoint and
  // status, and every signed code obtained.
  Client(http::Client& http, std::string api_base, const config::Project& project,
         RateLimiter& limiter, const Clock& clock, CodeCache* codes,
         ops::Registry* metrics = nullptr);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The all-types raw export of `slot` (seed 002); links valid for `link_expire`.
  // `turn` places the call in the rate limiter's queue (default: a first ask of `slot`).
  boost::asio::awaitable<boost::system::result<RawExport, Error>> raw_export(
      const Slot& slot, std::chrono::minutes link_expire, std::optional<Turn> turn = {});
  // The one-type raw export of `slot`: its answer lists `data_type` alone.
  boost::asio::awaitable<boost::system::result<RawExport, Error>> raw_export_type(
      const Slot& slot, std::string data_type, std::chrono::minutes link_expire,
      std::optional<Turn> turn = {});

  // One chart-like request (charts, funnels, retentions, frequencies) for `slot`. Every
  // error message is complete: an HTTP-level one starts "chart <id>: ", a garbled or
  // refused answer is transient and reads "project <name>: <resource> <id> of <slot>: ..".
  boost::asio::awaitable<boost::system::result<ChartAnswer, Error>> chart(
      const ChartRequest& request, const Slot& slot, Turn turn);
  // One user list (segmentations, tags) taken for `slot`; links valid for `expire`.
  // Errors as for chart(), an HTTP-level one starting "<resource> <id>: ". `slot` only
  // names the slot in those errors: the API has no time range.
  boost::asio::awaitable<boost::system::result<UserListAnswer, Error>> user_list(
      const UserListRequest& request, const Slot& slot, std::chrono::minutes expire, Turn turn);

  // Any API call: `path` (with its query) below api_base, behind the rate limiter and
  // authenticated; a 2xx answer, or an Error classified as transient or not. With
  // signed-code auth a 401/403 gets one new code and one more try. `turn` places the
  // call in the rate limiter's queue.
  boost::asio::awaitable<boost::system::result<http::Response, Error>> get(std::string path,
                                                                           Turn turn = {});

 private:
  struct Renewal;
  // The code to send: the cached one, or a new one when there is none, when it nears
  // its end, or when it is `rejected` (the code the API just refused). Calls that need
  // a new code while one is being asked for wait for that one instead of asking again:
  // each new code would invalidate the others.
  boost::asio::awaitable<boost::system::result<std::string, Error>> signed_code(
      const std::string* rejected);
  boost::asio::awaitable<boost::system::result<CachedCode, Error>> request_code();
  void count_request(std::string_view endpoint, std::string code);

  http::Client& http_;
  std::string api_base_;
  const config::Project& project_;
  RateLimiter& limiter_;
  const Clock& clock_;
  CodeCache* codes_;
  ops::Registry* metrics_;
  bool cache_loaded_ = false;
  std::optional<CachedCode> code_;
  std::shared_ptr<Renewal> renewing_;  // the code request in flight, if any
  // Set once the token endpoint refused this project's key: the key is read only at
  // start, so every later ask would be refused too (and each is a call to the vendor).
  std::optional<Error> refused_;
};

}  // namespace gio::api
