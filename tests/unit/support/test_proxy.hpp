#pragma once

// A scripted forward proxy for the unit tests, on its own thread and loopback port. For
// each request head the test's handler returns a Reply to send (then the connection is
// closed: a refusal, or the answer to an absolute-form request), or nullopt to open a
// CONNECT tunnel: the proxy connects to the head's host:port, answers 200 and relays the
// bytes both ways.

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "test_server.hpp"

namespace gio::test {

class TestProxy {
 public:
  using Handler = std::function<std::optional<Reply>(const std::string& head)>;

  explicit TestProxy(Handler handler) : handler_(std::move(handler)), acceptor_(io_) {
    namespace asio = boost::asio;
    const asio::ip::tcp::endpoint endpoint{asio::ip::make_address("127.0.0.1"), 0};
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }

  ~TestProxy() {
    io_.stop();
    thread_.join();
  }

  TestProxy(const TestProxy&) = delete;
  TestProxy& operator=(const TestProxy&) = delete;

  std::string url(const std::string& userinfo = {}) const {
    return "http://" + (userinfo.empty() ? "" : userinfo + "@") +
           "127.0.0.1:" + std::to_string(port_);
  }
  int tunnels() const { return tunnels_; }
  std::vector<std::string> heads() const {
    std::lock_guard lock{mutex_};
    return heads_;
  }

 private:
  using tcp = boost::asio::ip::tcp;

  boost::asio::awaitable<void> accept_loop() {
    namespace asio = boost::asio;
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) {
        co_return;
      }
      asio::co_spawn(io_, serve(std::make_shared<tcp::socket>(std::move(socket))), asio::detached);
    }
  }

  boost::asio::awaitable<void> serve(std::shared_ptr<tcp::socket> client) {
    namespace asio = boost::asio;
    const auto use = asio::as_tuple(asio::use_awaitable);
    std::string buffer;
    auto [ec, size] =
        co_await asio::async_read_until(*client, asio::dynamic_buffer(buffer), "\r\n\r\n", use);
    if (ec) {
      co_return;
    }
    const std::string head = buffer.substr(0, size);
    {
      std::lock_guard lock{mutex_};
      heads_.push_back(head);
    }
    if (std::optional<Reply> answer = handler_(head)) {
      co_await asio::async_write(*client, asio::buffer(answer->raw), use);
      boost::system::error_code ignored;
      client->shutdown(tcp::socket::shutdown_both, ignored);
      co_return;
    }
    // "CONNECT host:port HTTP/1.1": the tunnel's far end.
    const auto authority_start = head.find(' ') + 1;
    const std::string authority =
        head.substr(authority_start, head.find(' ', authority_start) - authority_start);
    const auto colon = authority.rfind(':');
    std::string host = authority.substr(0, colon);
    if (host.size() > 1 && host.front() == '[') {
      host = host.substr(1, host.size() - 2);
    }
    auto origin = std::make_shared<tcp::socket>(io_);
    tcp::resolver resolver{io_};
    auto [resolve_ec, endpoints] =
        co_await resolver.async_resolve(host, authority.substr(colon + 1), use);
    if (!resolve_ec) {
      std::tie(resolve_ec, std::ignore) = co_await asio::async_connect(*origin, endpoints, use);
    }
    if (resolve_ec) {
      const std::string bad = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";
      co_await asio::async_write(*client, asio::buffer(bad), use);
      co_return;
    }
    ++tunnels_;
    const std::string ok = "HTTP/1.1 200 Connection established\r\n\r\n";
    co_await asio::async_write(*client, asio::buffer(ok), use);
    asio::co_spawn(io_, pump(origin, client), asio::detached);
    co_await pump(client, origin);
  }

  static boost::asio::awaitable<void> pump(std::shared_ptr<tcp::socket> from,
                                           std::shared_ptr<tcp::socket> to) {
    namespace asio = boost::asio;
    std::vector<char> chunk(64 << 10);
    for (;;) {
      auto [ec, got] =
          co_await from->async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable));
      if (got > 0) {
        auto [write_ec, written] = co_await asio::async_write(*to, asio::buffer(chunk.data(), got),
                                                              asio::as_tuple(asio::use_awaitable));
        if (write_ec) {
          ec = write_ec;
        }
      }
      if (ec) {
        boost::system::error_code ignored;
        to->shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
    }
  }

  Handler handler_;
  boost::asio::io_context io_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::thread thread_;
  std::atomic<int> tunnels_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> heads_;
};

}  // namespace gio::test
