#pragma once

// Blocking work (reading and hashing files) run on a thread pool, awaited from the loop.

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <utility>

namespace gio::async {

// `function()` run on `pool`, its result handed back to the awaiting coroutine. Posted
// jobs, not a co_spawn'd capturing lambda (GCC 12 destroys such a temporary twice in a
// co_await expression). An exception of `function` must be caught inside it: Result
// carries failures (e.g. a std::variant or an optional error text).
template <class Result, class Function>
boost::asio::awaitable<Result> on_pool(boost::asio::thread_pool& pool, Function function) {
  namespace asio = boost::asio;
  auto initiate = [&pool, &function](auto handler) {
    // Keeps the loop running while the pool works: nothing else may be pending there.
    auto loop = asio::make_work_guard(asio::get_associated_executor(handler));
    asio::post(pool, [handler = std::move(handler), function = std::move(function),
                      loop = std::move(loop)]() mutable {
      Result result = function();
      const auto executor = loop.get_executor();
      asio::post(executor,
                 [handler = std::move(handler), result = std::move(result),
                  loop = std::move(loop)]() mutable { std::move(handler)(std::move(result)); });
    });
  };
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>, void(Result)>(
      initiate, asio::use_awaitable);
}

}  // namespace gio::async
