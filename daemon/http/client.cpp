#include "http/client.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <cctype>
#include <map>

namespace gio::http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
namespace urls = boost::urls;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// A download's body buffer (and its connection's read buffer reservation). Beast reads
// the socket 64 KiB at a time whatever this is, and a 1 GiB body over loopback took
// 0.36 s with 64 KiB, 256 KiB or 1 MiB here; 1 MiB makes 16 times fewer sink writes.
constexpr std::size_t kDownloadBuffer = 1 << 20;
constexpr std::size_t kApiBuffer = 64 << 10;
// What is kept of a body that is not the point of the request (error answers, redirects).
constexpr std::size_t kSideBodyCap = 64 << 10;
// A kept-alive connection idle longer than this is dropped rather than reused: servers
// commonly close theirs after 60-75 s, and a reused dead connection costs a round trip.
constexpr auto kMaxIdle = std::chrono::seconds{30};
constexpr std::size_t kMaxIdlePerHost = 4;

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

std::optional<Target> parse_target(std::string_view text, std::string& why) {
  auto parsed = urls::parse_uri(text);
  if (!parsed) {
    why = "not a valid URL";
    return std::nullopt;
  }
  const urls::url_view& url = *parsed;
  Target target;
  if (url.scheme_id() == urls::scheme::https) {
    target.tls = true;
  } else if (url.scheme_id() != urls::scheme::http) {
    why = "only http and https URLs are supported";
    return std::nullopt;
  }
  target.host = url.host_address();
  if (target.host.empty()) {
    why = "the URL has no host";
    return std::nullopt;
  }
  target.host_is_address =
      url.host_type() == urls::host_type::ipv4 || url.host_type() == urls::host_type::ipv6;
  target.port = url.has_port() ? std::string{url.port()} : (target.tls ? "443" : "80");
  if (target.port.empty() || !std::all_of(target.port.begin(), target.port.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) != 0;
      })) {
    why = "the URL has an invalid port";
    return std::nullopt;
  }
  target.host_header = url.encoded_host_and_port();
  target.target = url.encoded_target();
  if (target.target.empty() || target.target.front() != '/') {
    target.target.insert(0, "/");
  }
  target.key = std::string{target.tls ? "https://" : "http://"} + target.host + "|" + target.port;
  return target;
}

bool is_redirect(unsigned status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool is_closed(const error_code& ec) {
  return ec == asio::error::eof || ec == bhttp::error::end_of_stream ||
         ec == bhttp::error::partial_message || ec == ssl::error::stream_truncated ||
         ec == asio::error::connection_reset || ec == asio::error::connection_aborted ||
         ec == asio::error::broken_pipe;
}

Failure classify(const error_code& ec, Failure step_failure) {
  if (ec == beast::error::timeout) {
    return Failure::timeout;
  }
  if (is_closed(ec)) {
    return Failure::reset;
  }
  if (ec == bhttp::error::header_limit || ec == bhttp::error::body_limit) {
    return Failure::too_large;
  }
  if (ec.category() == bhttp::make_error_code(bhttp::error::end_of_stream).category()) {
    return Failure::protocol;  // any other parser error: the answer is not valid HTTP
  }
  return step_failure;
}

// Why a handshake failed, in words an operator can act on: the certificate check's own
// reason, or that the server offers only protocol versions below TLS 1.2.
std::string tls_reason(const error_code& ec, long verify_result) {
  if (verify_result != X509_V_OK) {
    return std::string{" ("} + X509_verify_cert_error_string(verify_result) + ")";
  }
  if (ec.category() == asio::error::get_ssl_category()) {
    const int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION ||
        reason == SSL_R_WRONG_SSL_VERSION || reason == SSL_R_NO_PROTOCOLS_AVAILABLE) {
      return " (the server offers no TLS 1.2 or newer, which gio-exporter requires)";
    }
  }
  return {};
}

std::string seconds_text(std::chrono::seconds value) {
  return std::to_string(value.count()) + " s";
}

// One connection to one host: plain TCP, or TLS over TCP.
struct Connection {
  std::string key;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  Clock::time_point idle_since;

  beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
};

// Cuts a connection whose body stalls: one read (filling the body buffer, or ending the
// body) must finish within `timeout`, and the whole body by `deadline`. Beast's own
// per-operation timeout re-arms its timer for every TLS record (a timerfd syscall each,
// some 60,000 for a 1 GiB download); this timer wakes only when a limit may have passed
// and then looks at when the current read started.
class BodyWatch {
 public:
  BodyWatch(const asio::any_io_executor& executor, beast::tcp_stream& stream,
            Clock::duration timeout, Clock::time_point deadline)
      : state_(std::make_shared<State>(executor, stream, timeout, deadline)) {
    arm(state_);
  }
  ~BodyWatch() {
    state_->over = true;  // a wake-up already queued must not touch the stream
    state_->timer.cancel();
  }
  BodyWatch(const BodyWatch&) = delete;
  BodyWatch& operator=(const BodyWatch&) = delete;

  // Before each read.
  void reading() { state_->read_started = Clock::now(); }
  // The stream was closed because a limit passed.
  bool fired() const { return state_->fired; }

 private:
  struct State {
    State(const asio::any_io_executor& executor, beast::tcp_stream& watched,
          Clock::duration timeout, Clock::time_point deadline)
        : timer(executor), stream(watched), read_timeout(timeout), body_deadline(deadline) {}
    Clock::time_point due() const { return std::min(read_started + read_timeout, body_deadline); }

    asio::steady_timer timer;
    beast::tcp_stream& stream;
    Clock::duration read_timeout;
    Clock::time_point body_deadline;
    Clock::time_point read_started = Clock::now();
    bool over = false;
    bool fired = false;
  };

  static void arm(const std::shared_ptr<State>& state) {
    state->timer.expires_at(state->due());
    state->timer.async_wait([state](error_code ec) {
      if (ec || state->over) {
        return;
      }
      if (Clock::now() < state->due()) {
        arm(state);  // reads went on since this wake-up was set
        return;
      }
      state->fired = true;
      state->stream.close();  // the pending read ends with operation_aborted
    });
  }

  std::shared_ptr<State> state_;
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

using Request = bhttp::request<bhttp::string_body>;

}  // namespace

std::string_view to_string(Failure failure) {
  switch (failure) {
    case Failure::resolve:
      return "resolve";
    case Failure::connect:
      return "connect";
    case Failure::tls:
      return "tls";
    case Failure::timeout:
      return "timeout";
    case Failure::reset:
      return "reset";
    case Failure::protocol:
      return "protocol";
    case Failure::too_large:
      return "too_large";
    case Failure::redirect:
      return "redirect";
    case Failure::io:
      return "io";
  }
  return "unknown";
}

std::string redact(std::string_view url) {
  // Plain string work rather than a URL parser: this must also make garbage safe to log.
  url = url.substr(0, url.find('#'));
  url = url.substr(0, url.find('?'));
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return std::string{url};
  }
  const std::string_view scheme = url.substr(0, scheme_end + 3);
  std::string_view rest = url.substr(scheme_end + 3);
  const auto authority_end = std::min(rest.find('/'), rest.size());
  std::string_view authority = rest.substr(0, authority_end);
  const std::string_view path = rest.substr(authority_end);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string out;
  out.reserve(url.size() + 1);
  out.append(scheme).append(authority).append(path.empty() ? "/" : path);
  return out;
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
  using namespace std::chrono;
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) {
    value.remove_prefix(1);
  }
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
    value.remove_suffix(1);
  }
  if (value.empty()) {
    return std::nullopt;
  }
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
    if (value.size() > 9) {
      return seconds{999'999'999};  // absurd but well-formed: "a very long time"
    }
    return seconds{std::stoll(std::string{value})};
  }

  // An HTTP date in any of the three forms RFC 9110 asks recipients to accept:
  //   Sun, 06 Nov 1994 08:49:37 GMT / Sunday, 06-Nov-94 08:49:37 GMT / Sun Nov  6 08:49:37 1994
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < value.size()) {
    while (i < value.size() && !std::isalnum(static_cast<unsigned char>(value[i]))) {
      ++i;
    }
    const std::size_t start = i;
    while (i < value.size() && std::isalnum(static_cast<unsigned char>(value[i]))) {
      ++i;
    }
    if (i > start) {
      words.push_back(value.substr(start, i - start));
    }
  }
  static constexpr std::array<std::string_view, 12> kMonths = {
      "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
  int month = 0;
  bool month_first = false;  // asctime puts the month before the day
  std::vector<int> numbers;
  for (std::string_view word : words) {
    if (std::isdigit(static_cast<unsigned char>(word.front())) != 0) {
      if (word.size() > 4 || !std::all_of(word.begin(), word.end(), [](char c) {
            return std::isdigit(static_cast<unsigned char>(c)) != 0;
          })) {
        return std::nullopt;
      }
      numbers.push_back(std::stoi(std::string{word}));
      continue;
    }
    if (word.size() == 3 && month == 0) {
      std::string lower{word};
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      const auto found = std::find(kMonths.begin(), kMonths.end(), lower);
      if (found != kMonths.end()) {
        month = static_cast<int>(found - kMonths.begin()) + 1;
        month_first = numbers.empty();
      }
    }
  }
  if (month == 0 || numbers.size() != 5) {
    return std::nullopt;
  }
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  if (month_first) {
    day = numbers[0], hour = numbers[1], minute = numbers[2], second = numbers[3],
    year = numbers[4];
  } else {
    day = numbers[0], year = numbers[1], hour = numbers[2], minute = numbers[3],
    second = numbers[4];
  }
  if (year < 100) {
    year += year < 70 ? 2000 : 1900;
  }
  const year_month_day date{std::chrono::year{year},
                            std::chrono::month{static_cast<unsigned>(month)},
                            std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok() || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  const sys_seconds at = sys_days{date} + hours{hour} + minutes{minute} + seconds{second};
  const auto delay = ceil<seconds>(at - now);
  return std::max(delay, seconds{0});
}

struct Client::Impl {
  asio::any_io_executor executor;
  Settings settings;
  ssl::context tls{ssl::context::tls_client};
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle;

  Impl(asio::any_io_executor executor_in, Settings settings_in)
      : executor(std::move(executor_in)), settings(std::move(settings_in)) {
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    tls.set_default_verify_paths();
    if (!settings.ca_file.empty()) {
      error_code ec;
      tls.load_verify_file(settings.ca_file.string(), ec);
      if (ec) {
        throw std::runtime_error("cannot load the CA file " + settings.ca_file.string() + ": " +
                                 ec.message());
      }
    }
    tls.set_verify_mode(ssl::verify_peer);
  }

  Error failure(const std::string& shown, std::string_view step, const error_code& ec,
                Failure step_failure) const {
    const Failure kind = classify(ec, step_failure);
    std::string message = shown + ": " + std::string{step} + ": ";
    if (kind == Failure::timeout) {
      message += "no progress within " + seconds_text(settings.timeout);
    } else {
      message += ec.message();
    }
    return Error{kind, std::move(message)};
  }

  std::unique_ptr<Connection> take_idle(const std::string& key) {
    auto found = idle.find(key);
    while (found != idle.end() && !found->second.empty()) {
      std::unique_ptr<Connection> connection = std::move(found->second.back());
      found->second.pop_back();
      if (Clock::now() - connection->idle_since < kMaxIdle) {
        return connection;
      }
    }
    return nullptr;
  }

  void keep_idle(std::unique_ptr<Connection> connection) {
    auto& pool = idle[connection->key];
    if (pool.size() < kMaxIdlePerHost) {
      connection->idle_since = Clock::now();
      pool.push_back(std::move(connection));
    }
  }

  asio::awaitable<Result<tcp::resolver::results_type>> resolve(const Target& target,
                                                               const std::string& shown) {
    // The resolver has no deadline of its own: a timer cancels it. Both live in shared
    // state because the timer's handler may run after this coroutine has moved on.
    auto resolver = std::make_shared<tcp::resolver>(executor);
    auto timed_out = std::make_shared<bool>(false);
    asio::steady_timer timer{executor, settings.timeout};
    timer.async_wait([resolver, timed_out](const error_code& ec) {
      if (!ec) {
        *timed_out = true;
        resolver->cancel();
      }
    });
    auto [ec, endpoints] = co_await resolver->async_resolve(target.host, target.port,
                                                            tcp::resolver::numeric_service, kTuple);
    timer.cancel();
    if (*timed_out) {
      co_return Error{Failure::timeout, shown + ": resolving " + target.host +
                                            ": no answer within " + seconds_text(settings.timeout)};
    }
    if (ec) {
      co_return Error{Failure::resolve, shown + ": resolving " + target.host + ": " + ec.message()};
    }
    co_return endpoints;
  }

  asio::awaitable<Result<std::unique_ptr<Connection>>> open(const Target& target,
                                                            const std::string& shown,
                                                            std::size_t buffer_size) {
    auto endpoints = co_await resolve(target, shown);
    if (!endpoints) {
      co_return endpoints.error();
    }
    auto connection = std::make_unique<Connection>();
    connection->key = target.key;
    connection->buffer = beast::flat_buffer{};
    connection->buffer.reserve(buffer_size);
    if (target.tls) {
      connection->secure.emplace(executor, tls);
    } else {
      connection->plain.emplace(executor);
    }
    beast::tcp_stream& lowest = connection->lowest();

    lowest.expires_after(settings.timeout);
    auto [connect_ec, endpoint] = co_await lowest.async_connect(*endpoints, kTuple);
    if (connect_ec) {
      co_return failure(shown, "connecting", connect_ec, Failure::connect);
    }
    lowest.socket().set_option(tcp::no_delay{true});

    if (target.tls) {
      auto& stream = *connection->secure;
      // SNI carries names only; an address literal is checked against the certificate's
      // IP entries instead. OpenSSL checks the name itself (not a verify callback) so
      // that a mismatch is reported as such by SSL_get_verify_result.
      SSL* ssl_handle = stream.native_handle();
      const bool name_set =
          target.host_is_address
              ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_handle), target.host.c_str()) == 1
              : SSL_set_tlsext_host_name(ssl_handle, target.host.c_str()) == 1 &&
                    SSL_set1_host(ssl_handle, target.host.c_str()) == 1;
      if (!name_set) {
        co_return Error{Failure::tls, shown + ": cannot set the TLS server name " + target.host};
      }
      SSL_set_hostflags(ssl_handle, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      lowest.expires_after(settings.timeout);
      auto [handshake_ec] = co_await stream.async_handshake(ssl::stream_base::client, kTuple);
      if (handshake_ec) {
        Error error =
            failure(shown, "TLS handshake with " + target.host, handshake_ec, Failure::tls);
        if (error.kind != Failure::timeout) {
          error.kind = Failure::tls;
          error.message += tls_reason(handshake_ec, SSL_get_verify_result(ssl_handle));
        }
        co_return error;
      }
    }
    co_return connection;
  }

  // Sends `request` and reads the answer. A 2xx body goes to `sink` when there is one;
  // any other body is kept in Hop::body up to a cap.
  template <class Stream>
  asio::awaitable<boost::system::result<Hop, HopFailure>> exchange(
      Stream& stream, Connection& connection, const Request& request, const std::string& shown,
      BodySink* sink, Clock::time_point deadline) {
    beast::tcp_stream& lowest = connection.lowest();
    lowest.expires_after(settings.timeout);
    auto [write_ec, written] = co_await bhttp::async_write(stream, request, kTuple);
    if (write_ec) {
      co_return HopFailure{failure(shown, "sending the request", write_ec, Failure::reset), true};
    }

    bhttp::response_parser<bhttp::buffer_body> parser;
    parser.body_limit(boost::none);  // the caps are applied below, per destination
    parser.header_limit(64 << 10);
    lowest.expires_after(settings.timeout);
    auto [header_ec, header_bytes] =
        co_await bhttp::async_read_header(stream, connection.buffer, parser, kTuple);
    if (header_ec) {
      const bool nothing = header_bytes == 0 && is_closed(header_ec);
      co_return HopFailure{failure(shown, "reading the response", header_ec, Failure::reset),
                           nothing};
    }

    Hop hop;
    const auto& head = parser.get();
    hop.status = head.result_int();
    if (const auto length = parser.content_length()) {
      hop.content_length = *length;
    }
    hop.location = std::string{head[bhttp::field::location]};
    hop.retry_after = std::string{head[bhttp::field::retry_after]};
    const bool redirect = is_redirect(hop.status) && !hop.location.empty();
    const bool to_sink = sink != nullptr && !redirect && hop.status / 100 == 2;
    const std::size_t cap = (sink != nullptr || redirect) ? kSideBodyCap : settings.max_body;
    const auto expected = [&] {
      return hop.content_length ? " of " + std::to_string(*hop.content_length) : std::string{};
    };

    if (sink == nullptr && !redirect && hop.content_length && *hop.content_length > cap) {
      // Refused before reading: a hostile or broken server must not make us take it all in.
      co_return HopFailure{{Failure::too_large, shown + ": the answer announces " +
                                                    std::to_string(*hop.content_length) +
                                                    " bytes, more than the cap of " +
                                                    std::to_string(cap)}};
    }

    std::vector<char> chunk(sink != nullptr ? kDownloadBuffer : kApiBuffer);
    bool complete = true;
    lowest.expires_never();
    BodyWatch watch{lowest.get_executor(), lowest, settings.timeout, deadline};
    while (!parser.is_done()) {
      parser.get().body().data = chunk.data();
      parser.get().body().size = chunk.size();
      watch.reading();
      auto [ec, ignored] = co_await bhttp::async_read(stream, connection.buffer, parser, kTuple);
      const std::size_t got = chunk.size() - parser.get().body().size;
      if (got > 0) {
        hop.body_bytes += got;
        if (to_sink) {
          try {
            sink->write(chunk.data(), got);
          } catch (const std::exception& error) {
            co_return HopFailure{{Failure::io, shown + ": " + error.what()}};
          }
        } else if (hop.body.size() + got <= cap) {
          hop.body.append(chunk.data(), got);
        } else if (sink == nullptr && !redirect) {
          co_return HopFailure{{Failure::too_large, shown + ": the answer is larger than " +
                                                        std::to_string(cap) + " bytes"}};
        } else {
          hop.body.append(chunk.data(), cap - hop.body.size());
          complete = false;  // the rest is of no interest; the connection is not reused
          break;
        }
      }
      if (ec == bhttp::error::need_buffer) {
        continue;
      }
      if (ec == ssl::error::stream_truncated && !parser.content_length() && !parser.chunked()) {
        // A body that ends with the connection, over TLS without close_notify: as
        // complete as the peer tells. (With a Content-Length the parser checks the count.)
        error_code eof_ec;
        parser.put_eof(eof_ec);
        if (!eof_ec) {
          break;
        }
      }
      if (watch.fired()) {
        const bool capped = Clock::now() >= deadline;
        co_return HopFailure{
            {Failure::timeout,
             shown + ": " +
                 (capped ? "not finished within the cap of " + seconds_text(settings.download_cap)
                         : "no data for " + seconds_text(settings.timeout)) +
                 " after " + std::to_string(hop.body_bytes) + expected() + " bytes"}};
      }
      if (ec && is_closed(ec)) {
        co_return HopFailure{{Failure::reset,
                              shown + ": connection closed after " +
                                  std::to_string(hop.body_bytes) + expected() + " bytes",
                              /*truncated=*/true}};
      }
      if (ec) {
        co_return HopFailure{failure(shown, "reading the body", ec, Failure::protocol)};
      }
    }
    // Bytes after the end of the message are not the start of another answer (nothing
    // else was asked on this connection): the peer sent more than it announced.
    const bool overlong = complete && connection.buffer.size() > 0;
    if (overlong && to_sink) {
      co_return HopFailure{{Failure::protocol,
                            shown + ": the server sent more than the " +
                                std::to_string(hop.body_bytes) + " bytes it announced",
                            /*truncated=*/false, /*overlong=*/true}};
    }
    hop.keep_alive = complete && !overlong && parser.keep_alive();
    co_return hop;
  }

  // One request on a kept-alive or new connection.
  asio::awaitable<boost::system::result<Hop, HopFailure>> send(const Target& target,
                                                               const Request& request,
                                                               const std::string& shown,
                                                               BodySink* sink,
                                                               Clock::time_point deadline) {
    const bool pooled = sink == nullptr;
    for (int attempt = 0;; ++attempt) {
      std::unique_ptr<Connection> connection = pooled ? take_idle(target.key) : nullptr;
      const bool reused = connection != nullptr;
      if (!connection) {
        auto opened = co_await open(target, shown, pooled ? kApiBuffer : kDownloadBuffer);
        if (!opened) {
          co_return HopFailure{opened.error()};
        }
        connection = std::move(*opened);
      }
      // Not a conditional expression: GCC 12 miscompiles co_await inside one.
      boost::system::result<Hop, HopFailure> hop{HopFailure{}};
      if (connection->secure) {
        hop = co_await exchange(*connection->secure, *connection, request, shown, sink, deadline);
      } else {
        hop = co_await exchange(*connection->plain, *connection, request, shown, sink, deadline);
      }
      if (!hop && reused && hop.error().before_response && attempt == 0) {
        continue;  // the server had closed the idle connection: the request is sent again
      }
      if (hop && hop->keep_alive && pooled) {
        keep_idle(std::move(connection));
      }
      co_return hop;
    }
  }

  asio::awaitable<Result<Response>> request(bhttp::verb method, std::string url,
                                            std::vector<Header> headers, std::string body,
                                            BodySink* sink) {
    const Clock::time_point deadline =
        sink != nullptr ? Clock::now() + settings.download_cap : Clock::time_point::max();
    std::string current = std::move(url);
    std::string first_origin;
    for (int redirects = 0;; ++redirects) {
      const std::string shown = std::string{bhttp::to_string(method)} + " " + redact(current);
      std::string why;
      const auto target = parse_target(current, why);
      if (!target) {
        co_return Error{redirects == 0 ? Failure::protocol : Failure::redirect, shown + ": " + why};
      }
      if (redirects == 0) {
        first_origin = target->key;
      }

      Request request{method, target->target, 11};
      request.set(bhttp::field::host, target->host_header);
      request.set(bhttp::field::user_agent, settings.user_agent);
      request.set(bhttp::field::accept, "*/*");
      for (const Header& header : headers) {
        // Credentials for the API host are not handed to whatever host it redirects to.
        if (target->key != first_origin && (beast::iequals(header.name, "authorization") ||
                                            beast::iequals(header.name, "cookie"))) {
          continue;
        }
        request.set(header.name, header.value);
      }
      if (sink != nullptr) {
        request.set(bhttp::field::connection, "close");
      }
      if (method != bhttp::verb::get) {
        request.body() = body;
        request.prepare_payload();
      }

      auto hop = co_await send(*target, request, shown, sink, deadline);
      if (!hop) {
        co_return std::move(hop.error().error);
      }

      if (method == bhttp::verb::get && is_redirect(hop->status) && !hop->location.empty()) {
        if (redirects >= settings.max_redirects) {
          co_return Error{
              Failure::redirect,
              shown + ": more than " + std::to_string(settings.max_redirects) + " redirects"};
        }
        auto base = urls::parse_uri(current);
        auto reference = urls::parse_uri_reference(hop->location);
        urls::url next;
        if (!base || !reference || !urls::resolve(*base, *reference, next)) {
          co_return Error{Failure::redirect, shown + ": answered " + std::to_string(hop->status) +
                                                 " with an invalid Location"};
        }
        next.remove_fragment();
        if (next.scheme_id() != urls::scheme::http && next.scheme_id() != urls::scheme::https) {
          co_return Error{Failure::redirect, shown + ": redirected to a " +
                                                 std::string{next.scheme()} +
                                                 " URL; only http and https are followed"};
        }
        current = std::string{next.buffer()};
        continue;
      }

      Response response;
      response.status = hop->status;
      response.body = std::move(hop->body);
      response.content_length = hop->content_length;
      response.body_bytes = hop->body_bytes;
      if (!hop->retry_after.empty()) {
        response.retry_after =
            parse_retry_after(hop->retry_after, std::chrono::system_clock::now());
      }
      response.final_url = std::move(current);
      co_return response;
    }
  }
};

Client::Client(asio::any_io_executor executor, Settings settings)
    : impl_(std::make_unique<Impl>(std::move(executor), std::move(settings))) {}

Client::~Client() = default;

const Settings& Client::settings() const {
  return impl_->settings;
}

asio::awaitable<Result<Response>> Client::get(std::string url, std::vector<Header> headers) {
  return impl_->request(bhttp::verb::get, std::move(url), std::move(headers), {}, nullptr);
}

asio::awaitable<Result<Response>> Client::post(std::string url, std::vector<Header> headers,
                                               std::string body) {
  return impl_->request(bhttp::verb::post, std::move(url), std::move(headers), std::move(body),
                        nullptr);
}

asio::awaitable<Result<Response>> Client::download(std::string url, std::vector<Header> headers,
                                                   BodySink& sink) {
  return impl_->request(bhttp::verb::get, std::move(url), std::move(headers), {}, &sink);
}

}  // namespace gio::http
