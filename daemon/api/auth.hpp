#pragma once

// Signed-code authentication (the vendor's legacy scheme, growingio-api.md section 1):
// a code obtained from POST /auth/token with an HMAC-SHA256 signature made with the
// project's private key, then sent as "Authorization: Token <code>" with X-Client-Id.
//
// A code is valid 30 days and asking for a new one invalidates the previous one, so
// codes are cached (CodeCache, kept in the state database by the scheduler) and reused
// across restarts; a new one is asked for only when none is cached, when the cached one
// nears the end of its life, or when the API refuses it.

#include <boost/system/result.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "http/client.hpp"
#include "slot/slot.hpp"

namespace gio::api {

inline constexpr std::string_view kTokenPath = "/auth/token";
inline constexpr std::chrono::days kCodeLifetime{30};
// A code this close to the end of its life is replaced before use, so that a slow call
// never carries a code that dies on the way.
inline constexpr std::chrono::days kCodeRenewBefore{2};

struct CachedCode {
  std::string code;       // a secret: never logged
  std::string client_id;  // the public key it was issued to; another one needs a new code
  Instant obtained_at;
};

// Where codes outlive the process. The api module does not know where that is.
class CodeCache {
 public:
  virtual ~CodeCache() = default;
  virtual std::optional<CachedCode> load(std::string_view project) = 0;
  virtual void save(std::string_view project, const CachedCode& code) = 0;
};

// A cached code as text for a key/value store, and back (nullopt when malformed).
std::string to_text(const CachedCode& code);
std::optional<CachedCode> cached_code_from_text(std::string_view text);

// True when `code` cannot be used at `now` for `client_id`: issued to another client
// id, or within kCodeRenewBefore of the end of its 30 days (or dated in the future,
// which means the clock moved and its age is unknown).
bool needs_renewal(const CachedCode& code, std::string_view client_id, Instant now);

// Lowercase hex HMAC-SHA256 of "POST\n/auth/token\nproject=<uid>&ai=<ai>&tm=<tm>" keyed
// with the private key.
std::string token_signature(std::string_view private_key, std::string_view project_uid,
                            std::string_view ai, std::int64_t tm_ms);

struct TokenRequest {
  std::vector<http::Header> headers;  // X-Client-Id, Content-Type, Accept
  std::string body;                   // project=..&ai=..&tm=..&auth=<signature>
};
// The POST /auth/token request of `project` (signed-code auth) at unix time `tm_ms`.
TokenRequest make_token_request(const config::Project& project, std::int64_t tm_ms);

struct TokenAnswerProblem {
  // The answer is well-formed but says no (a status other than "success"): asking again
  // with the same key won't help. Otherwise the answer is garbled.
  bool refused = false;
  std::string message;  // what is wrong; never quotes the answer (it may hold a code)
};
// {"status":"success","code":"..."} -> the code.
boost::system::result<std::string, TokenAnswerProblem> parse_token_answer(std::string_view body);

}  // namespace gio::api
