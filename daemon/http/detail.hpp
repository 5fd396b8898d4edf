#pragma once

// What the http module's own .cpp files share: not part of its API (client.hpp is).

#include <algorithm>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/address.hpp"
#include "http/client.hpp"
#include "http/proxy.hpp"

namespace gio::http::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

inline constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// Host names and schemes compare without case (ASCII only, as DNS names do).
inline std::string lowercase(std::string_view text) {
  std::string out{text};
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// A download's body buffer (and its connection's read buffer reservation). Beast reads
// the socket 64 KiB at a time whatever this is, and a 1 GiB body over loopback took
// 0.36 s with 64 KiB, 256 KiB or 1 MiB here; 1 MiB makes 16 times fewer sink writes.
inline constexpr std::size_t kDownloadBuffer = 1 << 20;
inline constexpr std::size_t kApiBuffer = 64 << 10;
// What is kept of a body that is not the point of the request (error answers, redirects).
inline constexpr std::size_t kSideBodyCap = 64 << 10;

// Where a URL points, split the way a connection needs it.
struct Target {
  bool tls = false;
  std::string host;         // for resolving and certificate checks: IPv6 without brackets
  std::string port;         // numeric
  std::string host_header;  // as in the URL: brackets and a non-default port kept
  std::string target;       // path and query
  std::string key;          // which kept-alive connections may serve it
  bool host_is_address = false;
};

// nullopt, with `why` set, when `text` is not an http(s) URL a connection can serve.
std::optional<Target> parse_target(std::string_view text, std::string& why);

bool is_redirect(unsigned status);

// Applies a LinkPolicy to the addresses a connection would use (address.cpp).
class AddressGuard {
 public:
  explicit AddressGuard(LinkPolicy policy);
  // Whether addresses are checked at all (enforced, and not every address allowed).
  bool active() const;
  // The API base's host (lowercase) and port, "" without one.
  const std::string& base_host() const { return base_host_; }
  const std::string& base_port() const { return base_port_; }
  bool is_base(const std::string& host) const;
  // Whether the API base's addresses have been seen (learn_base) since the start.
  bool base_known() const { return base_known_; }
  // The API base's host resolves to `addresses`: their classes are allowed from now on.
  void learn_base(const std::vector<asio::ip::address>& addresses);
  // Why `host`, at `address`, may not be reached; nullopt when it may.
  std::optional<std::string> refusal(const std::string& host,
                                     const asio::ip::address& address) const;

 private:
  LinkPolicy policy_;
  std::string base_host_, base_port_;
  bool base_known_ = false;
  unsigned allowed_ = 0;  // a bit per AddressClass
};

// The peer closed the connection (cleanly or not).
bool is_closed(const error_code& ec);

// What a failed network step means, `step_failure` when nothing more specific fits.
Failure classify(const error_code& ec, Failure step_failure);

// A parenthesised reason to add to a failed handshake's message, or nothing.
std::string tls_reason(const error_code& ec, long verify_result);

std::string seconds_text(std::chrono::seconds value);

// The error for a failed network step of the request `shown`.
Error failure(const std::string& shown, std::string_view step, const error_code& ec,
              Failure step_failure, std::chrono::seconds timeout);

// The words for a proxy that refused `what` (a CONNECT, or a request through it) with
// `status` and `reason`, with a hint for 407 and 403.
std::string proxy_refusal(const Proxy& proxy, std::string_view what, unsigned status,
                          std::string_view reason);

// Asks `proxy`, on the freshly connected `stream`, for a tunnel to `target`'s host and
// port (CONNECT): nullopt once the tunnel is open. Defined in proxy.cpp.
asio::awaitable<std::optional<Error>> open_tunnel(beast::tcp_stream& stream,
                                                  beast::flat_buffer& buffer, const Target& target,
                                                  const Proxy& proxy, const std::string& shown,
                                                  const Settings& settings);

// One connection to one host: plain TCP, or TLS over TCP.
struct Connection {
  std::string key;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  Clock::time_point idle_since;

  beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
};

// What one request on one connection produced.
struct Hop {
  unsigned status = 0;
  std::string body;
  std::string location;
  std::string retry_after;
  std::optional<std::uint64_t> content_length;
  std::uint64_t body_bytes = 0;
  bool keep_alive = false;
};

struct HopFailure {
  Error error;
  bool before_response = false;  // nothing of an answer arrived: a stale kept-alive connection?
};

using HopResult = boost::system::result<Hop, HopFailure>;
using Request = bhttp::request<bhttp::string_body>;

// Sends `request` and reads the answer. A 2xx body goes to `sink` when there is one;
// any other body is kept in Hop::body up to a cap. Defined (and instantiated for both
// streams below) in exchange.cpp.
template <class Stream>
asio::awaitable<HopResult> exchange(Stream& stream, Connection& connection, const Request& request,
                                    const std::string& shown, BodySink* sink,
                                    Clock::time_point deadline, const Settings& settings);

extern template asio::awaitable<HopResult> exchange(beast::tcp_stream&, Connection&, const Request&,
                                                    const std::string&, BodySink*,
                                                    Clock::time_point, const Settings&);
extern template asio::awaitable<HopResult> exchange(beast::ssl_stream<beast::tcp_stream>&,
                                                    Connection&, const Request&, const std::string&,
                                                    BodySink*, Clock::time_point, const Settings&);

}  // namespace gio::http::detail
