#pragma once

// The metrics and health listener: a small Beast HTTP/1.1 server on the daemon's
// io_context. It answers GET and HEAD through one handler and nothing else; every
// request is bounded (header size, no body, an idle timeout) and so is the number of
// connections, so a misbehaving scraper cannot take the daemon's memory or its loop.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gio::ops {

// What the handler is asked: the request target split at its first '?'. Both views live
// as long as the handler's call.
struct Request {
  std::string_view path;   // "/metrics", "/api/slots"
  std::string_view query;  // raw, after the '?' ("" when none), not decoded
};

struct Reply {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body{};
  // An answer shared between requests (a cached JSON, an embedded file): sent instead of
  // `body` when set, without a copy per request.
  std::shared_ptr<const std::string> shared_body{};
  // Further headers (Content-Security-Policy, Cache-Control, ETag...).
  std::vector<std::pair<std::string, std::string>> headers{};
};

using Handler = std::function<Reply(const Request& request)>;

class Server {
 public:
  // Binds and listens on `listen` ("host:port" or "[v6]:port"; a host name is
  // resolved once, here). Throws std::runtime_error naming the address and the cause
  // when it cannot (in use, not local, malformed): a startup error.
  Server(boost::asio::any_io_executor executor, std::string_view listen, Handler handler);

  // Accepts connections until the acceptor is closed.
  boost::asio::awaitable<void> run();
  boost::asio::ip::tcp::endpoint local_endpoint() const;

 private:
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);
  Reply answer(std::string_view target) const;
  std::optional<boost::asio::ip::tcp::socket> accept_one(boost::system::error_code& error);

  boost::asio::ip::tcp::acceptor acceptor_;
  Handler handler_;
  int connections_ = 0;
};

}  // namespace gio::ops
