#pragma once

// An HTTP(S) client on Asio coroutines: the API answers (small, in memory) and the
// download links (large, streamed to a sink) both go through it.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/address.hpp"

namespace gio::http {

// Which forward proxy each kind of URL goes through: the config's http.proxy, or the
// environment's https_proxy / http_proxy / no_proxy (see proxy.hpp).
struct ProxySettings {
  std::string http;      // proxy URL for http:// URLs (absolute-form requests); "" direct
  std::string https;     // proxy URL for https:// URLs (a CONNECT tunnel); "" direct
  std::string no_proxy;  // curl's NO_PROXY list: the hosts reached directly
  // Where each URL came from (a config key or a variable name), for messages.
  std::string http_source = "http_proxy";
  std::string https_source = "https_proxy";
};

struct Settings {
  // Per network step: resolve, connect, handshake, write, the response head as a whole,
  // and each read of the body, which must fill its buffer (64 KiB for answers kept in
  // memory, 1 MiB for downloads) or end the body in time: a peer that trickles bytes is
  // cut like a silent one.
  std::chrono::seconds timeout{60};
  // Overall cap for one download, whatever its progress.
  std::chrono::seconds download_cap{3600};
  // Extra CA bundle (PEM), trusted in addition to the system store.
  std::filesystem::path ca_file;
  int max_redirects = 5;
  // Cap for in-memory bodies (API answers); a larger body, or one whose Content-Length
  // says it is larger (refused before reading it), is Failure::too_large.
  std::size_t max_body = 64 << 20;
  std::string user_agent = "gio-exporter";
  ProxySettings proxy;
  // Which addresses may be connected to (off by default): a refused one fails the
  // request with Failure::refused before any connection is made.
  LinkPolicy links;
};

struct Header {
  std::string name, value;
};

struct Response {
  unsigned status = 0;
  // The whole body for get(); for download(), a non-2xx answer's body (at most 64 KiB).
  std::string body;
  // Retry-After, as a delay from when the answer arrived (delta-seconds or HTTP date).
  std::optional<std::chrono::seconds> retry_after = std::nullopt;
  std::optional<std::uint64_t> content_length = std::nullopt;
  // Body bytes received (for download(): the bytes handed to the sink on a 2xx answer).
  std::uint64_t body_bytes = 0;
  // The URL that answered, after redirects (query included: never log it, use redact()).
  std::string final_url;
};

// refused: the URL (or a redirect) leads to an address that Settings::links does not allow.
enum class Failure {
  resolve,
  connect,
  tls,
  timeout,
  reset,
  protocol,
  too_large,
  redirect,
  io,
  refused
};
std::string_view to_string(Failure failure);

struct Error {
  Failure kind;
  std::string message;  // human text; names a URL only in its redact() form
  // The connection ended inside the body: what was received is incomplete.
  bool truncated = false;
  // A download's peer sent more bytes than its Content-Length (or than its last chunk).
  bool overlong = false;
};

template <class T>
using Result = boost::system::result<T, Error>;

// scheme://host[:port]/path: the query (link signatures) and userinfo removed. The only
// form of a URL allowed in logs and messages.
std::string redact(std::string_view url);

// Parses a Retry-After value: delta-seconds or an HTTP date (IMF-fixdate, RFC 850 or
// asctime), as a delay from `now` (a date in the past is 0 s). nullopt when malformed.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

// Receives a download's body as it arrives. write() may throw (e.g. disk full): the
// download then fails with Failure::io and the exception's message.
class BodySink {
 public:
  virtual ~BodySink() = default;
  // Once, before the first write() of a 2xx body, with its Content-Length when the answer
  // has one: may throw to refuse the body unread (then as for write()).
  virtual void begin(std::optional<std::uint64_t> content_length) { (void)content_length; }
  virtual void write(const char* data, std::size_t size) = 0;
};

// Every request goes through the proxy that settings.proxy names for its scheme, unless
// its host is in no_proxy: an https:// one in a CONNECT tunnel (TLS, SNI and the
// certificate check with the URL's host, never the proxy), an http:// one in
// absolute-form. Redirects are routed afresh for their own host.
class Client {
 public:
  // Builds the TLS context: throws when ca_file cannot be loaded or a proxy URL is not
  // usable (the message names its source, never the URL, which may hold a password).
  Client(boost::asio::any_io_executor executor, Settings settings);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // GET with the body kept in memory (up to settings.max_body). Follows redirects
  // (301/302/303/307/308, also to another host; Authorization and Cookie headers are
  // dropped when scheme, host or port change). Connections are kept alive and reused by
  // later get() calls to the same scheme, host and port.
  boost::asio::awaitable<Result<Response>> get(std::string url, std::vector<Header> headers);

  // POST `body` (its Content-Type among `headers`), the answer kept in memory as for
  // get(). Redirects are not followed: a 3xx is returned as the answer. Like get(), a
  // request that found a reused connection closed before any answer is sent once more
  // on a new one, so the endpoint must tolerate a repeat.
  boost::asio::awaitable<Result<Response>> post(std::string url, std::vector<Header> headers,
                                                std::string body);

  // GET streaming a 2xx body into `sink` on its own connection. A body that ends before
  // its Content-Length is an error (truncated); the sink's data is then incomplete. Bytes
  // after the announced end are an error too (overlong, Failure::protocol).
  boost::asio::awaitable<Result<Response>> download(std::string url, std::vector<Header> headers,
                                                    BodySink& sink);

  const Settings& settings() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gio::http
