#include "http/client.hpp"

#include <fcntl.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <cerrno>
#include <map>

#include "http/detail.hpp"
#include "http/url.hpp"

namespace gio::http {

using namespace detail;

namespace {

namespace urls = boost::urls;
using tcp = asio::ip::tcp;

// A kept-alive connection idle longer than this is dropped rather than reused: servers
// commonly close theirs after 60-75 s, and a reused dead connection costs a round trip.
constexpr auto kMaxIdle = std::chrono::seconds{30};
constexpr std::size_t kMaxIdlePerHost = 4;
// How long a proxied target's name may take to resolve here for the address check.
constexpr auto kProxiedLookup = std::chrono::seconds{5};

std::vector<asio::ip::address> addresses_of(const tcp::resolver::results_type& endpoints) {
  std::vector<asio::ip::address> out;
  for (const auto& entry : endpoints) {
    out.push_back(entry.endpoint().address());
  }
  return out;
}

std::optional<Proxy> load_proxy(const std::string& url, const std::string& source) {
  if (url.empty()) {
    return std::nullopt;
  }
  std::string why;
  auto proxy = parse_proxy(url, why);
  if (!proxy) {
    throw std::runtime_error("the proxy in " + source + " is not usable: " + why);
  }
  return proxy;
}

// Connects `stream` to the first of `endpoints` that answers, as Asio's range connect
// does, but makes each socket close-on-exec as soon as it is opened: Asio opens sockets
// without SOCK_CLOEXEC, and the loop may start a hook while a connect is pending.
asio::awaitable<error_code> connect_any(beast::tcp_stream& stream,
                                        const tcp::resolver::results_type& endpoints) {
  error_code last = asio::error::host_not_found;
  for (const auto& entry : endpoints) {
    error_code ec;
    stream.socket().close(ec);
    stream.socket().open(entry.endpoint().protocol(), ec);
    if (!ec && ::fcntl(stream.socket().native_handle(), F_SETFD, FD_CLOEXEC) != 0) {
      ec.assign(errno, boost::system::system_category());
    }
    if (!ec) {
      auto [connect_ec] = co_await stream.async_connect(entry.endpoint(), kTuple);
      ec = connect_ec;
    }
    if (!ec) {
      co_return ec;
    }
    last = ec;
    if (ec == beast::error::timeout || ec == asio::error::operation_aborted) {
      break;  // the connect's time is up, for every address
    }
  }
  co_return last;
}

}  // namespace

struct Client::Impl {
  asio::any_io_executor executor;
  Settings settings;
  ssl::context tls{ssl::context::tls_client};
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle;
  std::optional<Proxy> http_proxy;
  std::optional<Proxy> https_proxy;
  AddressGuard guard;

  Impl(asio::any_io_executor executor_in, Settings settings_in)
      : executor(std::move(executor_in)),
        settings(std::move(settings_in)),
        http_proxy(load_proxy(settings.proxy.http, settings.proxy.http_source)),
        https_proxy(load_proxy(settings.proxy.https, settings.proxy.https_source)),
        guard(settings.links) {
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

  // The proxy that `target` goes through; nullptr to connect to it directly. Fixed per
  // scheme, host and port, so kept-alive connections (keyed so) always took the same way.
  const Proxy* route(const Target& target) const {
    const std::optional<Proxy>& proxy = target.tls ? https_proxy : http_proxy;
    if (!proxy || no_proxy_matches(settings.proxy.no_proxy, target.host, target.port)) {
      return nullptr;
    }
    return &*proxy;
  }

  Error failure(const std::string& shown, std::string_view step, const error_code& ec,
                Failure step_failure) const {
    return detail::failure(shown, step, ec, step_failure, settings.timeout);
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

  // `host` and `port` are the target's or its proxy's; `what` names the host in messages.
  asio::awaitable<Result<tcp::resolver::results_type>> resolve(const std::string& host,
                                                               const std::string& port,
                                                               const std::string& what,
                                                               const std::string& shown,
                                                               std::chrono::seconds timeout) {
    // The resolver has no deadline of its own: a timer cancels it. Both live in shared
    // state because the timer's handler may run after this coroutine has moved on.
    auto resolver = std::make_shared<tcp::resolver>(executor);
    auto timed_out = std::make_shared<bool>(false);
    asio::steady_timer timer{executor, timeout};
    timer.async_wait([resolver, timed_out](const error_code& ec) {
      if (!ec) {
        *timed_out = true;
        resolver->cancel();
      }
    });
    auto [ec, endpoints] =
        co_await resolver->async_resolve(host, port, tcp::resolver::numeric_service, kTuple);
    timer.cancel();
    if (*timed_out) {
      co_return Error{Failure::timeout, shown + ": resolving " + what + ": no answer within " +
                                            seconds_text(timeout)};
    }
    if (ec) {
      co_return Error{Failure::resolve, shown + ": resolving " + what + ": " + ec.message()};
    }
    co_return endpoints;
  }

  // Why the connection to `target` at `addresses` may not be made (Settings::links), or
  // nullopt. The connection then uses exactly these addresses: a name that resolves to
  // another address after this check (DNS rebinding) is never asked again.
  asio::awaitable<std::optional<Error>> vet(const Target& target,
                                            const std::vector<asio::ip::address>& addresses,
                                            const std::string& shown) {
    if (!guard.active()) {
      co_return std::nullopt;
    }
    if (guard.is_base(target.host)) {
      guard.learn_base(addresses);
    }
    for (const auto& address : addresses) {
      if (classify_address(address) != AddressClass::global && !guard.base_known() &&
          !guard.base_host().empty()) {
        // The API base's kind of address, looked up when first needed (its own
        // connections, checked like any other, keep it current).
        auto base = co_await resolve(guard.base_host(), guard.base_port(),
                                     "the API base " + guard.base_host(), shown, settings.timeout);
        if (base) {
          guard.learn_base(addresses_of(*base));
        }
      }
      if (auto why = guard.refusal(target.host, address)) {
        co_return Error{Failure::refused, shown + ": " + *why};
      }
    }
    co_return std::nullopt;
  }

  // vet() for a target reached through a proxy, which resolves the name itself: an
  // address literal is checked as it is, a name by what it resolves to here. A name that
  // does not resolve here goes to the proxy unchecked (the proxy's own rules apply).
  asio::awaitable<std::optional<Error>> vet_proxied(const Target& target,
                                                    const std::string& shown) {
    if (!guard.active()) {
      co_return std::nullopt;
    }
    std::vector<asio::ip::address> addresses;
    if (target.host_is_address) {
      error_code ec;
      addresses.push_back(asio::ip::make_address(target.host, ec));
      if (ec) {
        co_return Error{Failure::refused,
                        shown + ": " + target.host + " is not an IP address the daemon can check"};
      }
    } else {
      // A proxy is often there because this host cannot resolve outside names: do not
      // wait long for an answer that will not come.
      auto local = co_await resolve(target.host, target.port, target.host, shown,
                                    std::min(settings.timeout, kProxiedLookup));
      if (!local) {
        co_return std::nullopt;
      }
      addresses = addresses_of(*local);
    }
    co_return co_await vet(target, addresses, shown);
  }

  // A new connection to `target`, through `via` when it is not nullptr: to the proxy,
  // then (for https) a CONNECT tunnel in which the TLS handshake and the certificate
  // check are with the target itself.
  asio::awaitable<Result<std::unique_ptr<Connection>>> open(const Target& target, const Proxy* via,
                                                            const std::string& shown,
                                                            std::size_t buffer_size) {
    // Not a conditional expression: GCC 12 miscompiles co_await inside one.
    Result<tcp::resolver::results_type> endpoints{Error{}};
    std::optional<Error> not_allowed;
    if (via != nullptr) {
      not_allowed = co_await vet_proxied(target, shown);
      if (!not_allowed) {
        endpoints = co_await resolve(via->host, via->port, "the proxy host " + via->host, shown,
                                     settings.timeout);
      }
    } else {
      endpoints = co_await resolve(target.host, target.port, target.host, shown, settings.timeout);
      if (endpoints) {
        not_allowed = co_await vet(target, addresses_of(*endpoints), shown);
      }
    }
    if (not_allowed) {
      co_return std::move(*not_allowed);
    }
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
    const error_code connect_ec = co_await connect_any(lowest, *endpoints);
    if (connect_ec) {
      co_return failure(shown,
                        via != nullptr ? "connecting to the proxy " + via->shown : "connecting",
                        connect_ec, Failure::connect);
    }
    lowest.socket().set_option(tcp::no_delay{true});
    if (via != nullptr && target.tls) {
      auto refused =
          co_await open_tunnel(lowest, connection->buffer, target, *via, shown, settings);
      if (refused) {
        co_return std::move(*refused);
      }
    }

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

  // One request on a kept-alive or new connection.
  asio::awaitable<boost::system::result<Hop, HopFailure>> send(
      const Target& target, const Proxy* via, const Request& request, const std::string& shown,
      BodySink* sink, Clock::time_point deadline) {
    const bool pooled = sink == nullptr;
    for (int attempt = 0;; ++attempt) {
      std::unique_ptr<Connection> connection = pooled ? take_idle(target.key) : nullptr;
      const bool reused = connection != nullptr;
      if (!connection) {
        auto opened = co_await open(target, via, shown, pooled ? kApiBuffer : kDownloadBuffer);
        if (!opened) {
          co_return HopFailure{opened.error()};
        }
        connection = std::move(*opened);
      }
      // Not a conditional expression: GCC 12 miscompiles co_await inside one.
      boost::system::result<Hop, HopFailure> hop{HopFailure{}};
      if (connection->secure) {
        hop = co_await exchange(*connection->secure, *connection, request, shown, sink, deadline,
                                settings);
      } else {
        hop = co_await exchange(*connection->plain, *connection, request, shown, sink, deadline,
                                settings);
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

  // The request for one hop. `first_origin` is the key of the URL first asked for. Through
  // a proxy, an http:// request names its whole URL (absolute-form) and carries the
  // proxy's credentials; an https:// one is as direct, inside its tunnel.
  Request make_request(bhttp::verb method, const Target& target, const Proxy* via,
                       const std::vector<Header>& headers, const std::string& first_origin,
                       const std::string& body, bool download) const {
    const bool absolute = via != nullptr && !target.tls;
    Request request{method,
                    absolute ? "http://" + target.host_header + target.target : target.target, 11};
    request.set(bhttp::field::host, target.host_header);
    request.set(bhttp::field::user_agent, settings.user_agent);
    request.set(bhttp::field::accept, "*/*");
    for (const Header& header : headers) {
      // Credentials for the API host are not handed to whatever host it redirects to.
      if (target.key != first_origin &&
          (beast::iequals(header.name, "authorization") || beast::iequals(header.name, "cookie"))) {
        continue;
      }
      request.set(header.name, header.value);
    }
    if (absolute && !via->authorization.empty()) {
      request.set(bhttp::field::proxy_authorization, via->authorization);
    }
    if (download) {
      request.set(bhttp::field::connection, "close");
    }
    if (method != bhttp::verb::get) {
      request.body() = body;
      request.prepare_payload();
    }
    return request;
  }

  // The URL that `hop`, a redirect answered to `current` after `redirects` others, points to.
  Result<std::string> redirect_location(const std::string& current, const Hop& hop,
                                        const std::string& shown, int redirects) const {
    if (redirects >= settings.max_redirects) {
      return Error{Failure::redirect,
                   shown + ": more than " + std::to_string(settings.max_redirects) + " redirects"};
    }
    // Resolved on the encoded strings: the Location's bytes are the object's key.
    const std::optional<std::string> resolved = resolve_reference(current, hop.location);
    const auto next = resolved ? urls::parse_uri(*resolved) : urls::parse_uri("");
    if (!next) {
      return Error{Failure::redirect, shown + ": answered " + std::to_string(hop.status) +
                                          " with an invalid Location"};
    }
    if (next->scheme_id() != urls::scheme::http && next->scheme_id() != urls::scheme::https) {
      return Error{Failure::redirect, shown + ": redirected to a " + std::string{next->scheme()} +
                                          " URL; only http and https are followed"};
    }
    return *resolved;
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

      const Proxy* via = route(*target);
      const Request request =
          make_request(method, *target, via, headers, first_origin, body, sink != nullptr);
      auto hop = co_await send(*target, via, request, shown, sink, deadline);
      if (!hop) {
        co_return std::move(hop.error().error);
      }
      if (via != nullptr && !target->tls && hop->status == 407) {
        // The proxy's answer, not the server's: the server was never asked.
        co_return Error{Failure::connect, shown + ": " +
                                              proxy_refusal(*via, "the request", hop->status,
                                                            "Proxy Authentication Required")};
      }

      if (method == bhttp::verb::get && is_redirect(hop->status) && !hop->location.empty()) {
        auto next = redirect_location(current, *hop, shown, redirects);
        if (!next) {
          co_return next.error();
        }
        current = std::move(*next);
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