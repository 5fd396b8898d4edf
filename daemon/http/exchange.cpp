// One request and its answer on an open connection: send, read the head, read the body
// into the download's sink or into memory up to a cap.

#include <boost/asio/steady_timer.hpp>
#include <exception>
#include <memory>
#include <vector>

#include "http/detail.hpp"

namespace gio::http::detail {

namespace {

using Parser = bhttp::response_parser<bhttp::buffer_body>;

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

// Where an answer's body goes, decided from its head.
struct BodyRoute {
  BodySink* sink = nullptr;  // the download's, even when this body is not for it
  bool redirect = false;
  bool to_sink = false;  // a download's 2xx body
  std::size_t cap = 0;   // for a body kept in Hop::body
};

template <class Stream>
asio::awaitable<std::optional<HopFailure>> send_request(Stream& stream, Connection& connection,
                                                        const Request& request,
                                                        const std::string& shown,
                                                        const Settings& settings) {
  beast::tcp_stream& lowest = connection.lowest();
  lowest.expires_after(settings.timeout);
  auto [write_ec, written] = co_await bhttp::async_write(stream, request, kTuple);
  if (write_ec) {
    co_return HopFailure{
        failure(shown, "sending the request", write_ec, Failure::reset, settings.timeout), true};
  }
  co_return std::nullopt;
}

template <class Stream>
asio::awaitable<std::optional<HopFailure>> read_head(Stream& stream, Connection& connection,
                                                     Parser& parser, const std::string& shown,
                                                     const Settings& settings) {
  parser.body_limit(boost::none);  // the caps are applied by read_body, per destination
  parser.header_limit(64 << 10);
  beast::tcp_stream& lowest = connection.lowest();
  lowest.expires_after(settings.timeout);
  auto [header_ec, header_bytes] =
      co_await bhttp::async_read_header(stream, connection.buffer, parser, kTuple);
  if (header_ec) {
    const bool nothing = header_bytes == 0 && is_closed(header_ec);
    co_return HopFailure{
        failure(shown, "reading the response", header_ec, Failure::reset, settings.timeout),
        nothing};
  }
  co_return std::nullopt;
}

Hop hop_from_head(const Parser& parser) {
  Hop hop;
  const auto& head = parser.get();
  hop.status = head.result_int();
  if (const auto length = parser.content_length()) {
    hop.content_length = *length;
  }
  hop.location = std::string{head[bhttp::field::location]};
  hop.retry_after = std::string{head[bhttp::field::retry_after]};
  return hop;
}

// Hands `got` new body bytes to where the body goes. false: a body that is not the point
// of the request reached its cap, and the rest is not read.
boost::system::result<bool, HopFailure> keep_chunk(Hop& hop, const char* data, std::size_t got,
                                                   const BodyRoute& route,
                                                   const std::string& shown) {
  hop.body_bytes += got;
  if (route.to_sink) {
    try {
      route.sink->write(data, got);
    } catch (const std::exception& error) {
      return HopFailure{{Failure::io, shown + ": " + error.what()}};
    }
  } else if (hop.body.size() + got <= route.cap) {
    hop.body.append(data, got);
  } else if (route.sink == nullptr && !route.redirect) {
    return HopFailure{{Failure::too_large, shown + ": the answer is larger than " +
                                               std::to_string(route.cap) + " bytes"}};
  } else {
    hop.body.append(data, route.cap - hop.body.size());
    return false;  // the rest is of no interest; the connection is not reused
  }
  return true;
}

// What the body read that just ended with `ec` means: true to read on, false for a body
// that ended with the connection, or the failure.
boost::system::result<bool, HopFailure> after_read(const error_code& ec, Parser& parser,
                                                   const BodyWatch& watch, const Hop& hop,
                                                   const std::string& shown,
                                                   Clock::time_point deadline,
                                                   const Settings& settings) {
  if (ec == bhttp::error::need_buffer) {
    return true;
  }
  if (ec == ssl::error::stream_truncated && !parser.content_length() && !parser.chunked()) {
    // A body that ends with the connection, over TLS without close_notify: as
    // complete as the peer tells. (With a Content-Length the parser checks the count.)
    error_code eof_ec;
    parser.put_eof(eof_ec);
    if (!eof_ec) {
      return false;
    }
  }
  const auto expected = [&] {
    return hop.content_length ? " of " + std::to_string(*hop.content_length) : std::string{};
  };
  if (watch.fired()) {
    const bool capped = Clock::now() >= deadline;
    return HopFailure{
        {Failure::timeout,
         shown + ": " +
             (capped ? "not finished within the cap of " + seconds_text(settings.download_cap)
                     : "no data for " + seconds_text(settings.timeout)) +
             " after " + std::to_string(hop.body_bytes) + expected() + " bytes"}};
  }
  if (ec && is_closed(ec)) {
    return HopFailure{{Failure::reset,
                       shown + ": connection closed after " + std::to_string(hop.body_bytes) +
                           expected() + " bytes",
                       /*truncated=*/true}};
  }
  if (ec) {
    return HopFailure{failure(shown, "reading the body", ec, Failure::protocol, settings.timeout)};
  }
  return true;
}

// Reads the body after `parser`'s head: true when all of it was read, false when the
// rest was left unread past a cap.
template <class Stream>
asio::awaitable<boost::system::result<bool, HopFailure>> read_body(
    Stream& stream, Connection& connection, Parser& parser, Hop& hop, const BodyRoute& route,
    const std::string& shown, Clock::time_point deadline, const Settings& settings) {
  std::vector<char> chunk(route.sink != nullptr ? kDownloadBuffer : kApiBuffer);
  beast::tcp_stream& lowest = connection.lowest();
  lowest.expires_never();
  BodyWatch watch{lowest.get_executor(), lowest, settings.timeout, deadline};
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    watch.reading();
    auto [ec, ignored] = co_await bhttp::async_read(stream, connection.buffer, parser, kTuple);
    const std::size_t got = chunk.size() - parser.get().body().size;
    if (got > 0) {
      auto kept = keep_chunk(hop, chunk.data(), got, route, shown);
      if (!kept || !*kept) {
        co_return kept;
      }
    }
    auto more = after_read(ec, parser, watch, hop, shown, deadline, settings);
    if (!more) {
      co_return more;
    }
    if (!*more) {
      break;
    }
  }
  co_return true;
}

}  // namespace

template <class Stream>
asio::awaitable<HopResult> exchange(Stream& stream, Connection& connection, const Request& request,
                                    const std::string& shown, BodySink* sink,
                                    Clock::time_point deadline, const Settings& settings) {
  std::optional<HopFailure> failed =
      co_await send_request(stream, connection, request, shown, settings);
  if (failed) {
    co_return std::move(*failed);
  }
  Parser parser;
  failed = co_await read_head(stream, connection, parser, shown, settings);
  if (failed) {
    co_return std::move(*failed);
  }

  Hop hop = hop_from_head(parser);
  const bool redirect = is_redirect(hop.status) && !hop.location.empty();
  const BodyRoute route{sink, redirect, sink != nullptr && !redirect && hop.status / 100 == 2,
                        (sink != nullptr || redirect) ? kSideBodyCap : settings.max_body};
  if (sink == nullptr && !redirect && hop.content_length && *hop.content_length > route.cap) {
    // Refused before reading: a hostile or broken server must not make us take it all in.
    co_return HopFailure{{Failure::too_large,
                          shown + ": the answer announces " + std::to_string(*hop.content_length) +
                              " bytes, more than the cap of " + std::to_string(route.cap)}};
  }

  if (route.to_sink) {
    try {
      sink->begin(hop.content_length);
    } catch (const std::exception& error) {
      co_return HopFailure{{Failure::io, shown + ": " + error.what()}};
    }
  }

  auto complete =
      co_await read_body(stream, connection, parser, hop, route, shown, deadline, settings);
  if (!complete) {
    co_return std::move(complete.error());
  }
  // Bytes after the end of the message are not the start of another answer (nothing
  // else was asked on this connection): the peer sent more than it announced.
  const bool overlong = *complete && connection.buffer.size() > 0;
  if (overlong && route.to_sink) {
    co_return HopFailure{{Failure::protocol,
                          shown + ": the server sent more than the " +
                              std::to_string(hop.body_bytes) + " bytes it announced",
                          /*truncated=*/false, /*overlong=*/true}};
  }
  hop.keep_alive = *complete && !overlong && parser.keep_alive();
  co_return hop;
}

template asio::awaitable<HopResult> exchange(beast::tcp_stream&, Connection&, const Request&,
                                             const std::string&, BodySink*, Clock::time_point,
                                             const Settings&);
template asio::awaitable<HopResult> exchange(beast::ssl_stream<beast::tcp_stream>&, Connection&,
                                             const Request&, const std::string&, BodySink*,
                                             Clock::time_point, const Settings&);

}  // namespace gio::http::detail
