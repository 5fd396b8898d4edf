#pragma once

// A scripted HTTP(S) server for the unit tests: it runs on its own thread and io_context,
// listens on a loopback port, and answers each request with whatever the test's handler
// returns, byte for byte (so a test can also send broken answers).

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace gio::test {

struct Reply {
  std::string raw{};         // status line, headers and body, sent as they are
  bool close_after = false;  // close the connection (without TLS close_notify) after `raw`
  bool silent = false;       // read the request, then never answer
  // After `raw`, these bytes one at a time, `drip_every` apart (a peer that trickles).
  std::string drip{};
  std::chrono::milliseconds drip_every{0};
};

inline Reply reply(unsigned status, std::string body, std::vector<std::string> headers = {}) {
  std::string raw = "HTTP/1.1 " + std::to_string(status) + " Test\r\n";
  for (const std::string& header : headers) {
    raw += header + "\r\n";
  }
  raw += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return Reply{std::move(raw)};
}

class TestServer {
 public:
  using Handler = std::function<Reply(const std::string& target, const std::string& head)>;

  // Adjusts the server's TLS context before it listens (e.g. offer only old versions).
  using TlsTuning = std::function<void(boost::asio::ssl::context&)>;

  // With a certificate chain and key (PEM files), the server speaks TLS.
  explicit TestServer(Handler handler, std::string cert_file = {}, std::string key_file = {},
                      std::string address = "127.0.0.1", TlsTuning tune = {})
      : handler_(std::move(handler)), acceptor_(io_) {
    namespace asio = boost::asio;
    const asio::ip::tcp::endpoint endpoint{asio::ip::make_address(address), 0};
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    host_ = endpoint.address().is_v6() ? "[" + address + "]" : address;
    if (!cert_file.empty()) {
      tls_.emplace(asio::ssl::context::tls_server);
      tls_->use_certificate_chain_file(cert_file);
      tls_->use_private_key_file(key_file, asio::ssl::context::pem);
      if (tune) {
        tune(*tls_);
      }
    }
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }

  ~TestServer() {
    io_.stop();
    thread_.join();
  }

  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  unsigned short port() const { return port_; }
  std::string url(const std::string& path) const {
    return std::string{tls_ ? "https://" : "http://"} + host_ + ":" + std::to_string(port_) + path;
  }
  int connections() const { return connections_; }
  int requests() const { return requests_; }
  std::vector<std::string> heads() const {
    std::lock_guard lock{mutex_};
    return heads_;
  }

 private:
  boost::asio::awaitable<void> accept_loop() {
    namespace asio = boost::asio;
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) {
        co_return;
      }
      ++connections_;
      if (tls_) {
        asio::co_spawn(io_, serve_tls(std::move(socket)), asio::detached);
      } else {
        asio::co_spawn(io_, serve_plain(std::move(socket)), asio::detached);
      }
    }
  }

  boost::asio::awaitable<void> serve_plain(boost::asio::ip::tcp::socket socket) {
    co_await serve(socket, socket);
  }

  boost::asio::awaitable<void> serve_tls(boost::asio::ip::tcp::socket socket) {
    namespace asio = boost::asio;
    asio::ssl::stream<asio::ip::tcp::socket> stream{std::move(socket), *tls_};
    auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server,
                                                asio::as_tuple(asio::use_awaitable));
    if (!ec) {
      co_await serve(stream, stream.next_layer());
    }
  }

  template <class Stream>
  boost::asio::awaitable<void> serve(Stream& stream, boost::asio::ip::tcp::socket& socket) {
    namespace asio = boost::asio;
    std::string buffer;
    for (;;) {
      auto [ec, size] = co_await asio::async_read_until(
          stream, asio::dynamic_buffer(buffer), "\r\n\r\n", asio::as_tuple(asio::use_awaitable));
      if (ec) {
        co_return;
      }
      const std::string head = buffer.substr(0, size);
      buffer.erase(0, size);
      const auto first_space = head.find(' ');
      const std::string target =
          head.substr(first_space + 1, head.find(' ', first_space + 1) - first_space - 1);
      {
        std::lock_guard lock{mutex_};
        heads_.push_back(head);
      }
      ++requests_;
      Reply answer = handler_(target, head);
      if (answer.silent) {
        asio::steady_timer forever{io_, asio::steady_timer::time_point::max()};
        co_await forever.async_wait(asio::as_tuple(asio::use_awaitable));
        co_return;
      }
      auto [write_ec, written] = co_await asio::async_write(stream, asio::buffer(answer.raw),
                                                            asio::as_tuple(asio::use_awaitable));
      for (std::size_t i = 0; !write_ec && i < answer.drip.size(); ++i) {
        asio::steady_timer pause{io_, answer.drip_every};
        co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
        std::tie(write_ec, written) = co_await asio::async_write(
            stream, asio::buffer(answer.drip.data() + i, 1), asio::as_tuple(asio::use_awaitable));
      }
      if (write_ec || answer.close_after) {
        boost::system::error_code ignored;
        socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        socket.close(ignored);
        co_return;
      }
    }
  }

  Handler handler_;
  // Declared before the io_context: coroutine frames still holding TLS streams are
  // destroyed with the io_context.
  std::optional<boost::asio::ssl::context> tls_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::string host_;
  std::thread thread_;
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> heads_;
};

}  // namespace gio::test
