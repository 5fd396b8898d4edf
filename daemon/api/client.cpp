#include "api/client.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "ops/exporter_metrics.hpp"

namespace gio::api {

namespace asio = boost::asio;

namespace {

// The endpoint a path below api_base calls, for the request counter: a fixed word,
// never an id or a date (one series per endpoint, not per slot).
std::string_view endpoint_of(std::string_view path) {
  path = path.substr(0, path.find('?'));
  if (path.starts_with("/v2/insights/")) {
    // /v2/insights/{hour|day}/{ai}/{date}.json, or with /{type} after the granularity.
    const auto segments = std::count(path.begin(), path.end(), '/');
    return segments == 6 ? "raw_export_type" : "raw_export";
  }
  constexpr std::string_view kChartPrefix = "/v3/exporter/projects/";
  if (path.starts_with(kChartPrefix)) {
    // /v3/exporter/projects/{uid}/{resource}/...
    std::string_view rest = path.substr(kChartPrefix.size());
    rest = rest.substr(rest.find('/') + 1);
    const std::string_view resource = rest.substr(0, rest.find('/'));
    for (const std::string_view known :
         {"charts", "funnels", "retentions", "frequencies", "segmentations", "tags"}) {
      if (resource == known) {
        return known;
      }
    }
  }
  return "other";
}

}  // namespace

// One code request, shared by every call that needs a new code meanwhile.
struct Client::Renewal {
  explicit Renewal(asio::any_io_executor executor)
      : finished(std::move(executor), asio::steady_timer::time_point::max()) {}
  asio::steady_timer finished;  // never expires: cancelled when the request is over
  bool over = false;
  std::optional<Error> error;  // why no code was obtained
};

Client::Client(http::Client& http, std::string api_base, const config::Project& project,
               RateLimiter& limiter, const Clock& clock, CodeCache* codes, ops::Registry* metrics)
    : http_(http),
      api_base_(std::move(api_base)),
      project_(project),
      limiter_(limiter),
      clock_(clock),
      codes_(codes),
      metrics_(metrics) {
  while (!api_base_.empty() && api_base_.back() == '/') {
    api_base_.pop_back();
  }
}

Client::~Client() = default;

void Client::count_request(std::string_view endpoint, std::string code) {
  if (metrics_ != nullptr) {
    metrics_->add(ops::kApiRequests, {{"project", project_.name},
                                      {"endpoint", std::string{endpoint}},
                                      {"code", std::move(code)}});
  }
}

asio::awaitable<boost::system::result<RawExport, Error>> Client::raw_export(
    const Slot& slot, std::chrono::minutes link_expire, std::optional<Turn> turn) {
  const std::string path = "/v2/insights/" + std::string{to_string(slot.granularity())} + "/" +
                           project_.ai + "/" + slot.export_date() +
                           ".json?expire=" + std::to_string(link_expire.count());
  // Named, not a temporary in the co_await: Turn holds a std::function, and GCC 12
  // mishandles non-trivial temporaries across a suspension.
  const Turn chosen =
      turn.value_or(Turn{.priority = Priority::first_ask, .slot_start = slot.start()});
  auto response = co_await get(path, chosen);
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

asio::awaitable<boost::system::result<RawExport, Error>> Client::raw_export_type(
    const Slot& slot, std::string data_type, std::chrono::minutes link_expire,
    std::optional<Turn> turn) {
  const std::string path = "/v2/insights/" + std::string{to_string(slot.granularity())} + "/" +
                           data_type + "/" + project_.ai + "/" + slot.export_date() +
                           ".json?expire=" + std::to_string(link_expire.count());
  // Named, not a temporary in the co_await: Turn holds a std::function, and GCC 12
  // mishandles non-trivial temporaries across a suspension.
  const Turn chosen =
      turn.value_or(Turn{.priority = Priority::first_ask, .slot_start = slot.start()});
  auto response = co_await get(path, chosen);
  if (!response) {
    co_return response.error();
  }
  auto answer = parse_raw_export_type(response->body, data_type);
  if (!answer) {
    co_return Error{.transient = true,
                    .status = response->status,
                    .message = "project " + project_.name + ": raw export of " + data_type +
                               " for " + slot.name() + ": " + answer.error()};
  }
  co_return std::move(*answer);
}

asio::awaitable<boost::system::result<ChartAnswer, Error>> Client::chart(
    const ChartRequest& request, const Slot& slot, Turn turn) {
  auto response = co_await get(chart_path(project_.project_uid, request, slot), turn);
  if (!response) {
    Error error = std::move(response.error());
    error.message = "chart " + request.chart_id + ": " + error.message;
    co_return error;
  }
  auto answer = parse_chart_answer(response->body);
  if (!answer) {
    // A garbled or refused answer: asked again later, until give_up_after.
    co_return Error{.transient = true,
                    .status = response->status,
                    .message = "project " + project_.name + ": " +
                               std::string{config::to_string(request.resource)} + " " +
                               request.chart_id + " of " + slot.name() + ": " + answer.error()};
  }
  co_return std::move(*answer);
}

asio::awaitable<boost::system::result<UserListAnswer, Error>> Client::user_list(
    const UserListRequest& request, const Slot& slot, std::chrono::minutes expire, Turn turn) {
  auto response = co_await get(user_list_path(project_.project_uid, request, expire), turn);
  const std::string named =
      std::string{config::to_string(request.resource)} + " " + request.list_id;
  if (!response) {
    Error error = std::move(response.error());
    error.message = named + ": " + error.message;
    co_return error;
  }
  auto answer = parse_user_list(response->body);
  if (!answer) {
    // A garbled answer: asked again later, until give_up_after.
    co_return Error{.transient = true,
                    .status = response->status,
                    .message = "project " + project_.name + ": " + named + " of " + slot.name() +
                               ": " + answer.error()};
  }
  co_return std::move(*answer);
}

asio::awaitable<boost::system::result<http::Response, Error>> Client::get(std::string path,
                                                                          Turn turn) {
  const std::string url = api_base_ + path;
  const bool signed_auth = !project_.auth.uses_token();
  std::optional<std::string> refused_code;
  for (int attempt = 1;; ++attempt) {
    std::vector<http::Header> headers{{.name = "Accept", .value = "application/json"}};
    std::string sent_code;
    if (signed_auth) {
      auto code = co_await signed_code(refused_code ? &*refused_code : nullptr);
      if (!code) {
        co_return code.error();
      }
      sent_code = std::move(*code);
      headers.push_back({.name = "X-Client-Id", .value = project_.auth.client_id});
      headers.push_back({.name = "Authorization", .value = "Token " + sent_code});
    } else {
      headers.push_back({.name = "Authorization", .value = project_.auth.token.reveal()});
    }

    co_await limiter_.acquire(turn);
    if (turn.hold && turn.hold()) {
      co_return Error{.transient = true,
                      .message = "project " + project_.name + ": the call was held",
                      .held = true};
    }
    spdlog::debug("api call project={} url={}", project_.name, http::redact(url));
    auto response = co_await http_.get(url, std::move(headers));
    count_request(endpoint_of(path), response ? std::to_string(response->status) : "error");
    if (!response) {
      co_return Error{.transient = true,
                      .message = "project " + project_.name + ": " + http::redact(url) + ": " +
                                 response.error().message};
    }
    const unsigned status = response->status;
    if (status >= 200 && status < 300) {
      co_return std::move(*response);
    }
    if ((status == 401 || status == 403) && signed_auth && attempt == 1) {
      // The code was invalidated (a newer one was issued elsewhere, or it expired early):
      // one new code, one more try.
      spdlog::info("project={}: {} answered HTTP {}: the signed code was refused", project_.name,
                   http::redact(url), status);
      refused_code = std::move(sent_code);
      continue;
    }

    Error error{.transient = status == 429 || status >= 500,
                .status = status,
                .message = "project " + project_.name + ": " + http::redact(url) +
                           " answered HTTP " + std::to_string(status),
                .retry_after = response->retry_after};
    if (status == 401 || status == 403) {
      error.message += signed_auth ? " (the API refused the project's signed code, also a new one)"
                                   : " (the API refused the project's token)";
    }
    if ((status == 429 || status == 503) && response->retry_after) {
      // The vendor asks every caller of this project to hold off, not just this one.
      limiter_.pause_for(*response->retry_after);
    }
    co_return error;
  }
}

asio::awaitable<boost::system::result<std::string, Error>> Client::signed_code(
    const std::string* rejected) {
  if (refused_) {
    co_return *refused_;
  }
  if (!cache_loaded_) {
    cache_loaded_ = true;
    if (codes_ != nullptr) {
      code_ = codes_->load(project_.name);
    }
  }
  const bool usable = code_ && !needs_renewal(*code_, project_.auth.client_id, clock_.now()) &&
                      (rejected == nullptr || code_->code != *rejected);
  if (usable) {
    co_return code_->code;
  }

  if (renewing_) {
    // Another call is asking already; a second ask would invalidate its code.
    const std::shared_ptr<Renewal> renewal = renewing_;
    if (!renewal->over) {
      co_await renewal->finished.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (renewal->error) {
      co_return *renewal->error;
    }
    if (!code_) {  // the ask ended in an exception, already reported by its caller
      co_return Error{.message = "project " + project_.name + ": signed-code auth failed"};
    }
    co_return code_->code;
  }

  const auto renewal = std::make_shared<Renewal>(co_await asio::this_coro::executor);
  renewing_ = renewal;
  // Waiters are woken however this ends, an exception included.
  struct Finish {
    Client& client;
    Renewal& renewal;
    ~Finish() {
      client.renewing_.reset();
      renewal.over = true;
      renewal.finished.cancel();
    }
  } finish{*this, *renewal};

  auto obtained = co_await request_code();
  if (!obtained) {
    renewal->error = obtained.error();
    if (!obtained.error().transient) {
      refused_ = obtained.error();
    }
    co_return obtained.error();
  }
  code_ = std::move(*obtained);
  if (codes_ != nullptr) {
    try {
      codes_->save(project_.name, *code_);
    } catch (const std::exception& error) {
      // The code works all the same; only the next start will have to ask again.
      spdlog::warn("project={}: the new signed code could not be stored: {}", project_.name,
                   error.what());
    }
  }
  co_return code_->code;
}

asio::awaitable<boost::system::result<CachedCode, Error>> Client::request_code() {
  // Every call of the project waits for this code, so it goes before all of them.
  const Turn first_of_all{.priority = Priority::fresh_links, .slot_start = Instant::min()};
  co_await limiter_.acquire(first_of_all);
  const Instant now = clock_.now();
  const std::string url = api_base_ + std::string{kTokenPath};
  TokenRequest request = make_token_request(project_, to_unix(now) * 1000);
  spdlog::info("project={}: asking {} for a new signed code", project_.name, http::redact(url));
  // If http_ repeats the POST after a stale kept-alive connection, the vendor may issue
  // two codes; the one answered is the later, valid one, so that is harmless.
  auto response = co_await http_.post(url, std::move(request.headers), std::move(request.body));
  count_request("auth_token", response ? std::to_string(response->status) : "error");
  const std::string prefix = "project " + project_.name + ": signed-code auth: ";
  const std::string refusal = prefix + "the token endpoint refused the signed request";
  const std::string check = "; check the project's auth.client_id and private key";
  if (!response) {
    co_return Error{.transient = true, .message = prefix + response.error().message};
  }
  const unsigned status = response->status;
  if (status < 200 || status >= 300) {
    const bool transient = status == 429 || status >= 500;
    if ((status == 429 || status == 503) && response->retry_after) {
      limiter_.pause_for(*response->retry_after);
    }
    co_return Error{
        .transient = transient,
        .status = status,
        .message = transient
                       ? prefix + http::redact(url) + " answered HTTP " + std::to_string(status)
                       : refusal + " (HTTP " + std::to_string(status) + ")" + check,
        .retry_after = response->retry_after};
  }
  auto code = parse_token_answer(response->body);
  if (!code) {
    const TokenAnswerProblem& problem = code.error();
    co_return Error{.transient = !problem.refused,
                    .status = status,
                    .message = problem.refused ? refusal + " (" + problem.message + ")" + check
                                               : prefix + problem.message};
  }
  spdlog::info("project={}: obtained a new signed code", project_.name);
  if (metrics_ != nullptr) {
    metrics_->add(ops::kAuthRefreshes, {{"project", project_.name}});
  }
  co_return CachedCode{
      .code = std::move(*code), .client_id = project_.auth.client_id, .obtained_at = now};
}

}  // namespace gio::api
