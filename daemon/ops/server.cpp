#include "ops/server.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/http/span_body.hpp>
#include <cerrno>
#include <memory>
#include <optional>
#include <stdexcept>

namespace gio::ops {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

constexpr std::size_t kMaxHeaderBytes = 8 * 1024;
constexpr std::chrono::seconds kIdleTimeout{10};
// Scrapers and probes hold one or two connections, and every open status page one more
// (a browser keeps its connection alive between polls): 20 pages and the scrapers fit;
// more is a fault or an attack. Each connection is bounded (header, idle timeout).
constexpr int kMaxConnections = 64;

tcp::endpoint resolve(asio::any_io_executor executor, std::string_view listen) {
  std::string host;
  std::string port;
  if (!listen.empty() && listen.front() == '[') {
    const auto close = listen.find("]:");
    if (close == std::string_view::npos) {
      throw std::runtime_error("metrics.listen " + std::string{listen} + ": not host:port");
    }
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    const auto colon = listen.rfind(':');
    if (colon == std::string_view::npos) {
      throw std::runtime_error("metrics.listen " + std::string{listen} + ": not host:port");
    }
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  tcp::resolver resolver{executor};
  boost::system::error_code error;
  const auto results =
      resolver.resolve(host, port, tcp::resolver::passive | tcp::resolver::numeric_service, error);
  if (error || results.empty()) {
    throw std::runtime_error("metrics.listen " + std::string{listen} + ": " +
                             (error ? error.message() : "no address"));
  }
  return results.begin()->endpoint();
}

}  // namespace

Server::Server(asio::any_io_executor executor, std::string_view listen, Handler handler)
    : acceptor_(executor), handler_(std::move(handler)) {
  const tcp::endpoint endpoint = resolve(executor, listen);
  boost::system::error_code error;
  acceptor_.open(endpoint.protocol(), error);
  // Asio opens sockets without SOCK_CLOEXEC: a hook (or anything else the daemon
  // starts) would inherit the listener and keep its port after the daemon is gone.
  if (!error && ::fcntl(acceptor_.native_handle(), F_SETFD, FD_CLOEXEC) != 0) {
    error.assign(errno, boost::system::system_category());
  }
  if (!error) {
    // accept4() below needs a listener that says "not yet" instead of blocking.
    acceptor_.non_blocking(true, error);
  }
  if (!error) {
    acceptor_.set_option(asio::socket_base::reuse_address(true), error);
  }
  if (!error) {
    acceptor_.bind(endpoint, error);
  }
  if (!error) {
    acceptor_.listen(asio::socket_base::max_listen_connections, error);
  }
  if (error) {
    throw std::runtime_error("metrics.listen " + std::string{listen} + ": " + error.message());
  }
}

tcp::endpoint Server::local_endpoint() const {
  return acceptor_.local_endpoint();
}

// One waiting connection, accepted close-on-exec at once (Asio's accept() has no
// SOCK_CLOEXEC, and the loop may start a hook before a later fcntl); EAGAIN when another
// wake-up took it.
std::optional<tcp::socket> Server::accept_one(boost::system::error_code& error) {
  const int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
    error.assign(errno, boost::system::system_category());
    return std::nullopt;
  }
  tcp::socket socket{acceptor_.get_executor()};
  socket.assign(acceptor_.local_endpoint().protocol(), fd, error);
  if (error) {
    ::close(fd);
    return std::nullopt;
  }
  return socket;
}

asio::awaitable<void> Server::run() {
  for (;;) {
    auto [wait_error] = co_await acceptor_.async_wait(tcp::acceptor::wait_read,
                                                      asio::as_tuple(asio::use_awaitable));
    if (wait_error == asio::error::operation_aborted || !acceptor_.is_open()) {
      co_return;
    }
    boost::system::error_code error = wait_error;
    std::optional<tcp::socket> socket;
    if (!error) {
      socket = accept_one(error);
    }
    if (error == asio::error::would_block || error == asio::error::try_again ||
        error == asio::error::connection_aborted || error == asio::error::interrupted) {
      continue;
    }
    if (error) {
      // Out of file descriptors, say: the listener goes on; the next accept may work.
      spdlog::warn("metrics listener: accept failed: {}", error.message());
      continue;
    }
    if (connections_ >= kMaxConnections) {
      continue;  // the socket closes as it goes out of scope
    }
    asio::co_spawn(acceptor_.get_executor(), serve(std::move(*socket)), asio::detached);
  }
}

// The handler's answer to one GET or HEAD of `target`; a handler that throws is a 500.
Reply Server::answer(std::string_view target) const {
  const std::size_t mark = target.find('?');
  const Request request{
      .path = target.substr(0, mark),
      .query = mark == std::string_view::npos ? std::string_view{} : target.substr(mark + 1)};
  try {
    return handler_(request);
  } catch (const std::exception& error) {
    return {.status = 500, .body = std::string{"internal error: "} + error.what() + "\n"};
  }
}

asio::awaitable<void> Server::serve(tcp::socket socket) {
  ++connections_;
  struct Count {
    int& connections;
    ~Count() { --connections; }
  } count{connections_};

  beast::tcp_stream stream{std::move(socket)};
  beast::flat_buffer buffer{kMaxHeaderBytes};
  for (;;) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    parser.body_limit(0);
    stream.expires_after(kIdleTimeout);
    auto [read_error, read] =
        co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    if (read_error) {
      break;  // closed, timed out, or not HTTP we accept: nothing to answer
    }
    const auto& request = parser.get();
    http::response<http::span_body<const char>> response;
    response.version(request.version());
    response.keep_alive(request.keep_alive());
    response.set(http::field::server, "gio-exporter");
    // Kept alive until the answer is written: the span below points into it.
    std::shared_ptr<const std::string> body;
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      response.result(http::status::method_not_allowed);
      response.set(http::field::allow, "GET, HEAD");
      response.set(http::field::content_type, "text/plain; charset=utf-8");
      body = std::make_shared<const std::string>("GET or HEAD only\n");
    } else {
      Reply reply = answer(request.target());
      response.result(reply.status);
      response.set(http::field::content_type, reply.content_type);
      for (const auto& [name, value] : reply.headers) {
        response.set(name, value);
      }
      body = reply.shared_body ? std::move(reply.shared_body)
                               : std::make_shared<const std::string>(std::move(reply.body));
    }
    response.body() = {body->data(), body->size()};
    response.prepare_payload();
    if (request.method() == http::verb::head) {
      response.body() = {};  // Content-Length stays that of the GET answer
    }
    stream.expires_after(kIdleTimeout);
    auto [write_error, written] =
        co_await http::async_write(stream, response, asio::as_tuple(asio::use_awaitable));
    if (write_error || !response.keep_alive()) {
      break;
    }
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace gio::ops
