#include "api/client.hpp"

#include <spdlog/spdlog.h>

namespace gio::api {

Client::Client(http::Client& http, std::string api_base, const config::Project& project,
               RateLimiter& limiter)
    : http_(http), api_base_(std::move(api_base)), project_(project), limiter_(limiter) {
  while (!api_base_.empty() && api_base_.back() == '/') {
    api_base_.pop_back();
  }
}

boost::asio::awaitable<boost::system::result<RawExport, Error>> Client::raw_export(
    const Slot& slot, std::chrono::minutes link_expire) {
  const std::string path = "/v2/insights/" + std::string{to_string(slot.granularity())} + "/" +
                           project_.ai + "/" + slot.export_date() +
                           ".json?expire=" + std::to_string(link_expire.count());
  auto response = co_await get(path);
  if (!response) {
    co_return response.error();
  }
  auto answer = parse_raw_export(response->body);
  if (!answer) {
    co_return Error{.transient = true,
                    .status = response->status,
                    .message = "project " + project_.name + ": raw export of " + slot.name() +
                               ": " + answer.error()};
  }
  co_return std::move(*answer);
}

boost::asio::awaitable<boost::system::result<http::Response, Error>> Client::get(std::string path) {
  co_await limiter_.acquire();
  const std::string url = api_base_ + path;
  spdlog::debug("api call project={} url={}", project_.name, http::redact(url));
  std::vector<http::Header> headers{
      {.name = "Authorization", .value = project_.auth.token.reveal()},
      {.name = "Accept", .value = "application/json"},
  };
  auto response = co_await http_.get(url, std::move(headers));
  if (!response) {
    co_return Error{.transient = true,
                    .message = "project " + project_.name + ": " + http::redact(url) + ": " +
                               response.error().message};
  }
  const unsigned status = response->status;
  if (status >= 200 && status < 300) {
    co_return std::move(*response);
  }

  Error error{.transient = status == 429 || status >= 500,
              .status = status,
              .message = "project " + project_.name + ": " + http::redact(url) + " answered HTTP " +
                         std::to_string(status),
              .retry_after = response->retry_after};
  if (status == 401 || status == 403) {
    error.message += " (the API refused the project's token)";
  }
  if ((status == 429 || status == 503) && response->retry_after) {
    // The vendor asks every caller of this project to hold off, not just this one.
    limiter_.pause_for(*response->retry_after);
  }
  co_return error;
}

}  // namespace gio::api
