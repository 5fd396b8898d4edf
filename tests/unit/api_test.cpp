#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include "api/auth.hpp"
#include "api/chart.hpp"
#include "api/client.hpp"
#include "api/rate_limiter.hpp"
#include "api/raw_export.hpp"
#include "support/test_server.hpp"

namespace gio::api {
namespace {

// The vendor's documented example answer (seed 002).
constexpr std::string_view kSeedAnswer = R"({
    "status": "FINISHED",
    "downloadLinks": {
        "evar": [], "vstr": [], "pvar": [], "action_tag": [], "custom_event": [],
        "page": [], "ads_track_activation": [], "visit": [], "ads_track_click": [], "action": []
    },
    "exportType": "hour", "exportDate": "2018070100", "exportVersion": "v2",
    "requestTime": "2018-07-18 02:37", "errorMsg": ""
})";

TEST(RawExport, ParsesTheSeedExample) {
  const auto answer = parse_raw_export(kSeedAnswer);
  ASSERT_TRUE(answer) << answer.error();
  EXPECT_EQ(answer->status, ExportStatus::finished);
  EXPECT_EQ(answer->links.size(), 10u);
  for (const auto& [type, urls] : answer->links) {
    EXPECT_TRUE(urls.empty()) << type;
  }
  EXPECT_TRUE(answer->links.contains("ads_track_activation"));
}

TEST(RawExport, KeepsLinksAndUnknownTypes) {
  const auto answer = parse_raw_export(R"({"status":"FINISHED","downloadLinks":{
      "visit":["https://gta.example/a.csv.gz?sign=x","https://gta.example/b.csv.gz?sign=y"],
      "brand_new_type":["https://gta.example/c.csv.gz"]}})");
  ASSERT_TRUE(answer) << answer.error();
  ASSERT_EQ(answer->links.at("visit").size(), 2u);
  EXPECT_EQ(answer->links.at("visit")[1], "https://gta.example/b.csv.gz?sign=y");
  EXPECT_EQ(answer->links.at("brand_new_type").size(), 1u);
}

TEST(RawExport, StatusesOtherThanFinishedCarryNoLinks) {
  const auto running = parse_raw_export(R"({"status":"RUNNING","downloadLinks":{}})");
  ASSERT_TRUE(running);
  EXPECT_EQ(running->status, ExportStatus::running);
  const auto missing = parse_raw_export(R"({"status":"NOT_EXISTS"})");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, ExportStatus::not_exists);
  const auto error = parse_raw_export(R"({"status":"ERROR","errorMsg":"导出失败"})");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->status, ExportStatus::error);
  EXPECT_EQ(error->error_message, "导出失败");
  EXPECT_TRUE(error->links.empty());
}

TEST(RawExport, RejectsMalformedAnswers) {
  for (const char* body :
       {"", "not json", "[]", R"({"downloadLinks":{}})", R"({"status":7})", R"({"status":"DONE"})",
        R"({"status":"FINISHED"})", R"({"status":"FINISHED","downloadLinks":[]})",
        R"({"status":"FINISHED","downloadLinks":{"visit":"x"}})",
        R"({"status":"FINISHED","downloadLinks":{"visit":[1]}})"}) {
    const auto answer = parse_raw_export(body);
    EXPECT_FALSE(answer) << body;
    if (!answer) {
      EXPECT_FALSE(answer.error().empty());
    }
  }
}

TEST(RawExport, ErrorsNeverQuoteLinks) {
  const auto answer = parse_raw_export(
      R"({"status":"FINISHED","downloadLinks":{"visit":["https://x/a?sign=SECRET", 5]}})");
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().find("SECRET"), std::string::npos);
}

TEST(RawExportType, ListsTheOneTypeAskedFor) {
  const auto answer = parse_raw_export_type(R"({"status":"FINISHED","dataType":"custom_event",
      "downloadLinks":["https://gta.example/a.csv.gz?sign=x","https://gta.example/b.csv.gz"],
      "exportType":"hour","exportDate":"2018070100","exportVersion":"v2","errorMsg":""})",
                                            "custom_event");
  ASSERT_TRUE(answer) << answer.error();
  EXPECT_EQ(answer->status, ExportStatus::finished);
  ASSERT_EQ(answer->links.size(), 1u);
  ASSERT_EQ(answer->links.at("custom_event").size(), 2u);
  EXPECT_EQ(answer->links.at("custom_event")[0], "https://gta.example/a.csv.gz?sign=x");
}

TEST(RawExportType, AnEmptyArrayIsATypeWithoutFiles) {
  const auto answer = parse_raw_export_type(R"({"status":"FINISHED","downloadLinks":[]})", "visit");
  ASSERT_TRUE(answer) << answer.error();
  ASSERT_TRUE(answer->links.contains("visit"));
  EXPECT_TRUE(answer->links.at("visit").empty());
}

TEST(RawExportType, StatusesOtherThanFinishedCarryNoLinks) {
  const auto running = parse_raw_export_type(
      R"({"status":"RUNNING","dataType":"visit","downloadLinks":[]})", "visit");
  ASSERT_TRUE(running);
  EXPECT_EQ(running->status, ExportStatus::running);
  EXPECT_TRUE(running->links.empty());
  const auto error = parse_raw_export_type(R"({"status":"ERROR","errorMsg":"导出失败"})", "page");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->status, ExportStatus::error);
  EXPECT_EQ(error->error_message, "导出失败");
}

TEST(RawExportType, RejectsMalformedAnswersAndAnotherType) {
  for (const char* body :
       {"", "[]", R"({"status":"FINISHED"})", R"({"status":"FINISHED","downloadLinks":{}})",
        R"({"status":"FINISHED","downloadLinks":{"visit":[]}})",
        R"({"status":"FINISHED","downloadLinks":[7]})",
        R"({"status":"FINISHED","dataType":"page","downloadLinks":[]})",
        R"({"status":"RUNNING","dataType":7})",
        R"({"status":"FINISHED","downloadLinks":["https://x/a?sign=SECRET", null]})"}) {
    const auto answer = parse_raw_export_type(body, "visit");
    EXPECT_FALSE(answer) << body;
    if (!answer) {
      EXPECT_FALSE(answer.error().empty());
      EXPECT_EQ(answer.error().find("SECRET"), std::string::npos);
    }
  }
}

TEST(RateLimiter, SpacesTurnsByTheRate) {
  boost::asio::io_context io;
  RateLimiter limiter{io.get_executor(), 20.0};  // one turn per 50 ms
  std::vector<std::chrono::steady_clock::time_point> turns;
  auto done = boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        for (int i = 0; i < 5; ++i) {
          co_await limiter.acquire();
          turns.push_back(std::chrono::steady_clock::now());
        }
      },
      boost::asio::use_future);
  io.run();
  done.get();
  ASSERT_EQ(turns.size(), 5u);
  // Lower bounds only: the limiter must never let calls through faster than the rate.
  for (std::size_t i = 1; i < turns.size(); ++i) {
    EXPECT_GE(turns[i] - turns[0],
              std::chrono::milliseconds{50} * i - std::chrono::milliseconds{1});
  }
}

TEST(RateLimiter, PauseHoldsBackTheNextTurn) {
  boost::asio::io_context io;
  RateLimiter limiter{io.get_executor(), 100.0};
  const auto start = std::chrono::steady_clock::now();
  limiter.pause_for(std::chrono::milliseconds{120});
  std::chrono::steady_clock::time_point turn;
  auto done = boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        co_await limiter.acquire();
        turn = std::chrono::steady_clock::now();
      },
      boost::asio::use_future);
  io.run();
  done.get();
  EXPECT_GE(turn - start, std::chrono::milliseconds{119});
}

}  // namespace
}  // namespace gio::api

// --- signed-code auth ----------------------------------------------------------

namespace gio::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;

std::string to_hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    out.push_back(kHex[static_cast<unsigned char>(c) >> 4]);
    out.push_back(kHex[static_cast<unsigned char>(c) & 0x0F]);
  }
  return out;
}

// HMAC-SHA256 computed by Python's hmac module, independently of OpenSSL's use here.
// Inputs go as hex so that no shell quoting is involved. nullopt without python3.
std::optional<std::string> python_hmac(std::string_view key, std::string_view message) {
  const std::string command =
      "python3 -c 'import hmac,hashlib,sys; print(hmac.new(bytes.fromhex(sys.argv[1]), "
      "bytes.fromhex(sys.argv[2]), hashlib.sha256).hexdigest())' " +
      to_hex(key) + " " + to_hex(message) + " 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    return std::nullopt;
  }
  char buffer[128] = {};
  const bool read = std::fgets(buffer, sizeof buffer, pipe) != nullptr;
  if (::pclose(pipe) != 0 || !read) {
    return std::nullopt;
  }
  std::string out{buffer};
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) {
    out.pop_back();
  }
  return out;
}

config::Project signed_project(std::string private_key = "test-private-key") {
  config::Project project;
  project.name = "shop";
  project.ai = "2a1b4018cd954ec2bcc69da5138bdb96";
  project.project_uid = "nxog09md";
  project.auth.client_id = "test-client-id";
  project.auth.private_key = config::Secret{std::move(private_key)};
  return project;
}

TEST(SignedCode, SignatureMatchesAValueComputedWithPythonsHmac) {
  // Computed once with: hmac.new(b"test-private-key", b"POST\n/auth/token\n"
  //   b"project=nxog09md&ai=2a1b4018cd954ec2bcc69da5138bdb96&tm=1764038400000",
  //   hashlib.sha256).hexdigest()
  EXPECT_EQ(token_signature("test-private-key", "nxog09md", "2a1b4018cd954ec2bcc69da5138bdb96",
                            1764038400000),
            "df757707dfc262910907ecc579956b5924f42b33b7ce8109cb5c0d5521532d70");
}

TEST(SignedCode, SignatureMatchesPythonsHmacLive) {
  // Keys longer than a SHA-256 block are hashed first; odd bytes must pass untouched.
  const std::vector<std::pair<std::string, std::int64_t>> cases = {
      {"k", 0},
      {"-----BEGIN KEY-----\nMIIB\t\"x\"'y'\n-----END KEY-----", 1764038400123},
      {std::string(100, 'z') + "\xe5\xaf\x86\xe9\x92\xa5", 999},
  };
  for (const auto& [key, tm] : cases) {
    const std::string message = "POST\n/auth/token\nproject=uid&ai=abc123&tm=" + std::to_string(tm);
    const auto expected = python_hmac(key, message);
    if (!expected) {
      GTEST_SKIP() << "python3 is not available";
    }
    EXPECT_EQ(token_signature(key, "uid", "abc123", tm), *expected) << key;
  }
}

TEST(SignedCode, TokenRequestCarriesClientIdAndFormBody) {
  const config::Project project = signed_project();
  const TokenRequest request = make_token_request(project, 1764038400000);
  EXPECT_EQ(request.body,
            "project=nxog09md&ai=2a1b4018cd954ec2bcc69da5138bdb96&tm=1764038400000&auth="
            "df757707dfc262910907ecc579956b5924f42b33b7ce8109cb5c0d5521532d70");
  std::map<std::string, std::string> headers;
  for (const http::Header& header : request.headers) {
    headers[header.name] = header.value;
  }
  EXPECT_EQ(headers.at("X-Client-Id"), "test-client-id");
  EXPECT_EQ(headers.at("Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_FALSE(headers.contains("Authorization"));
  EXPECT_EQ(request.body.find("test-private-key"), std::string::npos);
}

TEST(SignedCode, ParsesTokenAnswers) {
  const auto good = parse_token_answer(R"({"status":"success","code":"abc123"})");
  ASSERT_TRUE(good);
  EXPECT_EQ(*good, "abc123");

  const auto refused = parse_token_answer(R"({"status":"failed","code":"SECRET"})");
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().refused);
  EXPECT_EQ(refused.error().message.find("SECRET"), std::string::npos);

  for (const char* body :
       {"", "<html>", "[]", R"({"code":"x"})", R"({"status":"success"})",
        R"({"status":"success","code":""})", R"({"status":"success","code":5})"}) {
    const auto answer = parse_token_answer(body);
    ASSERT_FALSE(answer) << body;
    EXPECT_FALSE(answer.error().refused) << body;
  }
}

TEST(SignedCode, CachedCodeRoundTripsAndRejectsGarbage) {
  const CachedCode code{.code = "c0de", .client_id = "pub", .obtained_at = from_unix(1764038400)};
  const auto back = cached_code_from_text(to_text(code));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->code, "c0de");
  EXPECT_EQ(back->client_id, "pub");
  EXPECT_EQ(back->obtained_at, code.obtained_at);
  for (const char* text : {"", "c0de", "{}", R"({"code":"","client_id":"p","obtained_at":1})",
                           R"({"code":"c","client_id":"p","obtained_at":"1"})"}) {
    EXPECT_FALSE(cached_code_from_text(text)) << text;
  }
}

TEST(SignedCode, RenewsBeforeThirtyDaysAndForAnotherClientId) {
  const Instant at = from_unix(1764038400);
  const CachedCode code{.code = "c", .client_id = "pub", .obtained_at = at};
  EXPECT_FALSE(needs_renewal(code, "pub", at));
  EXPECT_FALSE(needs_renewal(code, "pub", at + std::chrono::days{27}));
  EXPECT_TRUE(needs_renewal(code, "pub", at + kCodeLifetime - kCodeRenewBefore));
  EXPECT_TRUE(needs_renewal(code, "pub", at + std::chrono::days{31}));
  EXPECT_TRUE(needs_renewal(code, "other", at));
  EXPECT_TRUE(needs_renewal(code, "pub", at - std::chrono::hours{1}));
}

// A loopback HTTP server standing in for the vendor: /auth/token issues code c1, c2, ...
// (each invalidating the previous one) when the signature is right; any other path
// answers 200 only to "Token <current code>" with the right X-Client-Id.
class VendorStub {
 public:
  explicit VendorStub(asio::io_context& io)
      : acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}) {
    asio::co_spawn(io, accept(), asio::detached);
  }
  std::string base() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }

  std::string private_key = "test-private-key";
  std::string current_code;  // "" = none valid
  int token_calls = 0;
  int api_calls = 0;

 private:
  asio::awaitable<void> accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) {
        co_return;
      }
      asio::co_spawn(acceptor_.get_executor(), serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(asio::ip::tcp::socket socket) {
    beast::flat_buffer buffer;
    for (;;) {
      bhttp::request<bhttp::string_body> request;
      auto [ec, n] =
          co_await bhttp::async_read(socket, buffer, request, asio::as_tuple(asio::use_awaitable));
      if (ec) {
        co_return;
      }
      bhttp::response<bhttp::string_body> response{bhttp::status::ok, 11};
      response.set(bhttp::field::content_type, "application/json");
      if (request.target() == "/auth/token") {
        ++token_calls;
        const std::string body = request.body();
        const auto tm_at = body.find("&tm=");
        const auto sig_at = body.find("&auth=");
        const std::string tm = body.substr(tm_at + 4, sig_at - tm_at - 4);
        const std::string want = token_signature(
            private_key, "nxog09md", "2a1b4018cd954ec2bcc69da5138bdb96", std::stoll(tm));
        if (request.method() == bhttp::verb::post && request["X-Client-Id"] == "test-client-id" &&
            body.substr(sig_at + 6) == want) {
          current_code = "c" + std::to_string(token_calls);
          response.body() = R"({"status":"success","code":")" + current_code + "\"}";
        } else {
          response.result(bhttp::status::unauthorized);
          response.body() = R"({"status":"failed"})";
        }
      } else {
        ++api_calls;
        const bool ok = !current_code.empty() && request["X-Client-Id"] == "test-client-id" &&
                        request[bhttp::field::authorization] == "Token " + current_code;
        response.result(ok ? bhttp::status::ok : bhttp::status::unauthorized);
        response.body() = ok ? R"({"ok":true})" : R"({"error":"unauthorized"})";
      }
      response.prepare_payload();
      auto [write_ec, written] =
          co_await bhttp::async_write(socket, response, asio::as_tuple(asio::use_awaitable));
      if (write_ec) {
        co_return;
      }
    }
  }

  asio::ip::tcp::acceptor acceptor_;
};

class MemoryCodes final : public CodeCache {
 public:
  std::optional<CachedCode> load(std::string_view project) override {
    ++loads;
    const auto found = codes.find(std::string{project});
    return found == codes.end() ? std::nullopt : std::optional{found->second};
  }
  void save(std::string_view project, const CachedCode& code) override {
    codes[std::string{project}] = code;
  }
  std::map<std::string, CachedCode> codes;
  int loads = 0;
};

struct FixedClock final : Clock {
  Instant now() const override { return at; }
  Instant at = from_unix(1764038400);
};

// Runs `calls` concurrent Client::get calls; returns how many succeeded and the errors.
struct Outcome {
  int ok = 0;
  std::vector<Error> errors;
};
Outcome run_calls(asio::io_context& io, Client& client, int calls) {
  Outcome outcome;
  int left = calls;
  for (int i = 0; i < calls; ++i) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          auto answer = co_await client.get("/v2/insights/hour/x/2026112203.json");
          if (answer) {
            ++outcome.ok;
          } else {
            outcome.errors.push_back(answer.error());
          }
          if (--left == 0) {
            io.stop();  // the stub's kept-alive connections would otherwise wait forever
          }
        },
        asio::detached);
  }
  io.run();
  return outcome;
}

class SignedCodeClient : public ::testing::Test {
 protected:
  asio::io_context io;
  VendorStub stub{io};
  http::Client http{io.get_executor(), http_settings()};
  static http::Settings http_settings() {
    http::Settings settings;
    settings.timeout = std::chrono::seconds{5};
    return settings;
  }
  RateLimiter limiter{io.get_executor(), 1000.0};
  FixedClock clock;
  MemoryCodes codes;
  config::Project project = signed_project();
};

TEST_F(SignedCodeClient, AsksOnceWithoutACachedCodeAndStoresIt) {
  Client client{http, stub.base(), project, limiter, clock, &codes};
  const Outcome outcome = run_calls(io, client, 5);
  EXPECT_EQ(outcome.ok, 5);
  EXPECT_EQ(stub.token_calls, 1);
  ASSERT_TRUE(codes.codes.contains("shop"));
  EXPECT_EQ(codes.codes.at("shop").code, "c1");
  EXPECT_EQ(codes.codes.at("shop").obtained_at, clock.at);
}

TEST_F(SignedCodeClient, ReusesAValidCachedCode) {
  stub.current_code = "kept";
  codes.codes["shop"] = {.code = "kept",
                         .client_id = "test-client-id",
                         .obtained_at = clock.at - std::chrono::days{10}};
  Client client{http, stub.base(), project, limiter, clock, &codes};
  EXPECT_EQ(run_calls(io, client, 3).ok, 3);
  EXPECT_EQ(stub.token_calls, 0);
  EXPECT_EQ(codes.loads, 1);
}

TEST_F(SignedCodeClient, ConcurrentRefusalsShareOneNewCode) {
  // The cached code was invalidated on the vendor's side: every call is refused once.
  stub.current_code = "";
  codes.codes["shop"] = {.code = "stale", .client_id = "test-client-id", .obtained_at = clock.at};
  Client client{http, stub.base(), project, limiter, clock, &codes};
  const Outcome outcome = run_calls(io, client, 8);
  EXPECT_EQ(outcome.ok, 8);
  EXPECT_EQ(stub.token_calls, 1);
  EXPECT_EQ(codes.codes.at("shop").code, "c1");
}

TEST_F(SignedCodeClient, RenewsACodeNearTheEndOfItsLife) {
  stub.current_code = "old";
  codes.codes["shop"] = {.code = "old",
                         .client_id = "test-client-id",
                         .obtained_at = clock.at - std::chrono::days{29}};
  Client client{http, stub.base(), project, limiter, clock, &codes};
  EXPECT_EQ(run_calls(io, client, 2).ok, 2);
  EXPECT_EQ(stub.token_calls, 1);
  EXPECT_EQ(codes.codes.at("shop").code, "c1");
}

TEST_F(SignedCodeClient, AWrongKeyIsAPermanentErrorNamingTheProjectAndNoSecret) {
  project = signed_project("wrong-key");
  Client client{http, stub.base(), project, limiter, clock, &codes};
  const Outcome outcome = run_calls(io, client, 4);
  EXPECT_EQ(outcome.ok, 0);
  ASSERT_EQ(outcome.errors.size(), 4u);
  for (const Error& error : outcome.errors) {
    EXPECT_FALSE(error.transient);
    EXPECT_NE(error.message.find("project shop"), std::string::npos) << error.message;
    EXPECT_NE(error.message.find("refused"), std::string::npos) << error.message;
    EXPECT_EQ(error.message.find("wrong-key"), std::string::npos) << error.message;
  }
  // Concurrent calls shared the one refused ask; later calls do not ask again.
  EXPECT_EQ(stub.token_calls, 1);
  EXPECT_EQ(stub.api_calls, 0);
  EXPECT_TRUE(codes.codes.empty());
}

}  // namespace
}  // namespace gio::api

// --- rate limiter: priorities, spacing, pauses ------------------------------------

namespace gio::api {
namespace {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

Instant hour(int h) {
  return Instant{std::chrono::hours{h}};
}

boost::asio::awaitable<void> take_turn(RateLimiter& limiter, Turn turn, std::string label,
                                       std::vector<std::string>& order) {
  co_await limiter.acquire(turn);
  order.push_back(std::move(label));
}

boost::asio::awaitable<void> note_turn(RateLimiter& limiter, Turn turn,
                                       std::vector<Steady::time_point>& turns) {
  co_await limiter.acquire(turn);
  turns.push_back(Steady::now());
}

boost::asio::awaitable<void> take_turn_at(RateLimiter& limiter, Steady::time_point& at) {
  co_await limiter.acquire();
  at = Steady::now();
}

// A caller answered 429 with Retry-After.
boost::asio::awaitable<void> take_turn_and_pause(RateLimiter& limiter, Steady::time_point& at) {
  co_await limiter.acquire();
  at = Steady::now();
  limiter.pause_for(milliseconds{200});
}

TEST(RateLimiterPriority, QueuedCallersAreServedByPriorityThenSlotAgeThenArrival) {
  boost::asio::io_context io;
  RateLimiter limiter{io.get_executor(), 100.0};
  // Paused, so every caller below is queued before the first turn is handed out.
  limiter.pause_for(milliseconds{30});
  std::vector<std::string> order;
  const std::vector<std::pair<std::string, Turn>> callers{
      {"poll-h3", {.priority = Priority::poll, .slot_start = hour(3)}},
      {"first-h2", {.priority = Priority::first_ask, .slot_start = hour(2)}},
      {"near-h5", {.priority = Priority::near_loss, .slot_start = hour(5)}},
      {"poll-h0", {.priority = Priority::poll, .slot_start = hour(0)}},
      {"links-h9", {.priority = Priority::fresh_links, .slot_start = hour(9)}},
      {"first-h1", {.priority = Priority::first_ask, .slot_start = hour(1)}},
      {"near-h4", {.priority = Priority::near_loss, .slot_start = hour(4)}},
      {"first-h1-later", {.priority = Priority::first_ask, .slot_start = hour(1)}},
  };
  for (const auto& [label, turn] : callers) {
    boost::asio::co_spawn(io, take_turn(limiter, turn, label, order), boost::asio::detached);
  }
  io.run();
  EXPECT_EQ(order, (std::vector<std::string>{"links-h9", "near-h4", "near-h5", "first-h1",
                                             "first-h1-later", "first-h2", "poll-h0", "poll-h3"}));
}

TEST(RateLimiterPriority, TheNotExistsBacklogQueuesAfterEveryPoll) {
  boost::asio::io_context io;
  RateLimiter limiter{io.get_executor(), 100.0};
  limiter.pause_for(milliseconds{30});
  std::vector<std::string> order;
  const std::vector<std::pair<std::string, Turn>> callers{
      {"backlog-h0", {.priority = Priority::backlog, .slot_start = hour(0)}},
      {"poll-h7", {.priority = Priority::poll, .slot_start = hour(7)}},
      {"first-h8", {.priority = Priority::first_ask, .slot_start = hour(8)}},
  };
  for (const auto& [label, turn] : callers) {
    boost::asio::co_spawn(io, take_turn(limiter, turn, label, order), boost::asio::detached);
  }
  io.run();
  EXPECT_EQ(order, (std::vector<std::string>{"first-h8", "poll-h7", "backlog-h0"}));
}

TEST(RateLimiterPriority, ConcurrentCallersAreSpacedByTheRate) {
  boost::asio::io_context io;
  RateLimiter limiter{io.get_executor(), 20.0};
  std::vector<Steady::time_point> turns;
  for (int i = 0; i < 6; ++i) {
    boost::asio::co_spawn(io,
                          note_turn(limiter,
                                    {.priority = i % 2 == 0 ? Priority::poll : Priority::first_ask,
                                     .slot_start = hour(i)},
                                    turns),
                          boost::asio::detached);
  }
  io.run();
  ASSERT_EQ(turns.size(), 6u);
  for (std::size_t i = 1; i < turns.size(); ++i) {
    EXPECT_GE(turns[i] - turns[i - 1], milliseconds{50});
  }
  // Never more than 20 turns in any second means at least 50 ms between two turns.
  EXPECT_GE(limiter.interval(), milliseconds{50});
}

TEST(RateLimiterPriority, IntervalNeverAllowsMoreThanTheRateInOneSecond) {
  boost::asio::io_context io;
  EXPECT_GE(RateLimiter(io.get_executor(), 2.0).interval(), milliseconds{500});
  // 2.5 per second still means at most 2 calls in any one second.
  EXPECT_GE(RateLimiter(io.get_executor(), 2.5).interval(), milliseconds{500});
  EXPECT_GE(RateLimiter(io.get_executor(), 0.5).interval(), milliseconds{2000});
  // The margin for network jitter stays small: the rate is still put to use.
  EXPECT_LE(RateLimiter(io.get_executor(), 2.0).interval(), milliseconds{600});
}

TEST(RateLimiterPriority, PauseHoldsBackCallersAlreadyWaiting) {
  boost::asio::io_context io;
  RateLimiter limiter{io.get_executor(), 20.0};
  Steady::time_point paused_at{};
  Steady::time_point second{};
  // The first caller gets its turn at once and is answered 429 Retry-After; the second
  // is already queued for its turn by then and must wait out the pause too.
  boost::asio::co_spawn(io, take_turn_and_pause(limiter, paused_at), boost::asio::detached);
  boost::asio::co_spawn(io, take_turn_at(limiter, second), boost::asio::detached);
  io.run();
  ASSERT_NE(paused_at, Steady::time_point{});
  EXPECT_GE(second - paused_at, milliseconds{200});
}

TEST(RateLimiterPriority, ACallerThatGoesAwayLeavesTheQueue) {
  std::vector<std::string> order;
  {
    boost::asio::io_context io;
    RateLimiter limiter{io.get_executor(), 100.0};
    limiter.pause_for(std::chrono::hours{1});
    boost::asio::co_spawn(io, take_turn(limiter, {}, "never", order), boost::asio::detached);
    io.poll();
    // io (declared first) is destroyed last, with the queued caller's frame: that must
    // not touch the limiter, gone by then.
  }
  EXPECT_TRUE(order.empty());
}

}  // namespace
}  // namespace gio::api

// --- charts and user lists: requests and answers --------------------------------

namespace gio::api {
namespace {

using namespace std::chrono_literals;

Slot chart_slot(std::string_view name, Granularity granularity) {
  return Slot::parse(name, granularity).value();
}

std::string csv_of(std::string_view body) {
  const auto answer = parse_chart_answer(body);
  EXPECT_TRUE(answer) << answer.error();
  EXPECT_EQ(answer->status, ChartStatus::done);
  EXPECT_EQ(answer->body, body);
  return answer ? answer->csv : std::string{};
}

TEST(ChartAnswer, DoingIsNotFinished) {
  const auto answer = parse_chart_answer(R"({"id":"随机ID","status":"doing"})");
  ASSERT_TRUE(answer) << answer.error();
  EXPECT_EQ(answer->status, ChartStatus::doing);
  EXPECT_TRUE(answer->body.empty());
  EXPECT_EQ(answer->rows, 0u);
  EXPECT_TRUE(answer->csv.empty());
}

TEST(ChartAnswer, MalformedAnswersAreErrors) {
  EXPECT_FALSE(parse_chart_answer("not json"));
  EXPECT_FALSE(parse_chart_answer("[1,2]"));
  EXPECT_FALSE(parse_chart_answer(R"({"id":"x"})"));
  EXPECT_FALSE(parse_chart_answer(R"({"id":"x","meta":[],"data":{}})"));
  EXPECT_FALSE(parse_chart_answer(R"({"id":"x","meta":{},"data":[]})"));
  EXPECT_FALSE(parse_chart_answer(R"({"id":"x","meta":[{"dimension":true}],"data":[]})"));
  EXPECT_FALSE(parse_chart_answer(R"({"id":"x","meta":[{"name":"a"}],"data":[1]})"));
  const auto failed = parse_chart_answer(R"({"id":"x","status":"failed","errorMsg":"超时"})");
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().find("failed"), std::string::npos) << failed.error();
  EXPECT_NE(failed.error().find("超时"), std::string::npos) << failed.error();
}

// The line chart of seed 000: [segment, timestamp, metric1, metric2].
TEST(ChartCsv, LineChart) {
  const std::string csv = csv_of(R"({
    "id": "YoX28w7R", "name": "日活趋势", "startTime": 1462118400000, "endTime": 1462204799999,
    "interval": 86400000,
    "meta": [{"name": "目标用户", "dimension": true}, {"name": "时间", "dimension": true},
             {"name": "访问用户量", "metric": true}, {"name": "人均时长", "metric": true}],
    "data": [["全部用户", 1462118400000, 27557, 12.50], ["全部用户", 1462204800000, 25409, 0.1]]
  })");
  EXPECT_EQ(csv,
            "目标用户,时间,访问用户量,人均时长\r\n"
            "全部用户,1462118400000,27557,12.50\r\n"
            "全部用户,1462204800000,25409,0.1\r\n");
}

TEST(ChartCsv, BarChart) {
  EXPECT_EQ(
      csv_of(R"({"meta": [{"name":"目标用户","dimension":true},{"name":"城市","dimension":true},
                               {"name":"Metric 1","metric":true}],
                      "data": [["全部用户","北京",3],["全部用户","上海",-1.5e3]]})"),
      "目标用户,城市,Metric 1\r\n全部用户,北京,3\r\n全部用户,上海,-1.5e3\r\n");
}

TEST(ChartCsv, TableWithNullsAndQuoting) {
  EXPECT_EQ(
      csv_of(R"({"meta": [{"name":"目标用户","dimension":true},{"name":"城市, 省","dimension":true},
                         {"name":"浏览器","dimension":true},{"name":"说 \"次数\"","metric":true},
                         {"name":"Metric 2","metric":true}],
                "data": [["新用户","广州, 广东","Chrome",10,null],
                         ["老用户","line\nbreak","CR\rhere",true,18446744073709551615]]})"),
      "目标用户,\"城市, 省\",浏览器,\"说 \"\"次数\"\"\",Metric 2\r\n"
      "新用户,\"广州, 广东\",Chrome,10,\r\n"
      "老用户,\"line\nbreak\",\"CR\rhere\",true,18446744073709551615\r\n");
}

TEST(ChartCsv, BigNumberKeepsItsRowsAndCountsThem) {
  const auto answer = parse_chart_answer(R"({
    "id": "bn", "name": "大数字", "startTime": 1, "endTime": 2, "interval": 86400000,
    "aggregator": {"values": [27557, 25409]},
    "meta": [{"name":"目标用户","dimension":true},{"name":"时间","dimension":true},
             {"name":"Metric 1","metric":true}],
    "data": [["全部用户", 1462118400000, 27557]]})");
  ASSERT_TRUE(answer) << answer.error();
  EXPECT_EQ(answer->rows, 1u);
  EXPECT_EQ(answer->csv, "目标用户,时间,Metric 1\r\n全部用户,1462118400000,27557\r\n");
}

TEST(ChartCsv, ARepeatedKeyNeverShiftsNumbersIntoTheWrongCell) {
  // Boost.JSON keeps the first place of "x" with its last value (5): pairing digits by
  // position would have written 5 into the data cell (found by fuzzing). The cell keeps
  // its value, in Boost.JSON's form.
  EXPECT_EQ(csv_of(R"({"x":"s","meta":[{"name":"a"}],"data":[[1.50]],"x":5})"), "a\r\n1.5E0\r\n");
  EXPECT_EQ(csv_of(R"({"meta":[{"name":"a"}],"data":[[1.50]]})"), "a\r\n1.50\r\n");
}

TEST(ChartCsv, EmptyDataIsAHeaderOnly) {
  EXPECT_EQ(csv_of(R"({"meta":[{"name":"a"},{"name":"b"}],"data":[]})"), "a,b\r\n");
}

TEST(ChartCsv, Fields) {
  EXPECT_EQ(csv_field("plain 中文"), "plain 中文");
  EXPECT_EQ(csv_field(""), "");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("a\r\nb"), "\"a\r\nb\"");
}

TEST(ChartRequest, HourSlotCoversItsBeijingHour) {
  // 2026-11-22T03 Beijing = 2026-11-21T19:00:00Z = 1795287600 s.
  const TimeRange range = time_range(chart_slot("2026-11-22T03", Granularity::hour));
  EXPECT_EQ(range.start_ms, 1795287600000);
  EXPECT_EQ(range.end_ms, 1795287600000 + 3600000 - 1);
}

TEST(ChartRequest, DaySlotCoversItsBeijingDay) {
  // 2026-11-22 Beijing starts 2026-11-21T16:00:00Z.
  const TimeRange range = time_range(chart_slot("2026-11-22", Granularity::day));
  EXPECT_EQ(range.start_ms, 1795276800000);
  EXPECT_EQ(range.end_ms, 1795276800000 + 86400000 - 1);
}

TEST(ChartRequest, PathAndQueryPerResource) {
  ChartRequest request{.chart_id = "YoX28w7R", .interval = std::chrono::hours{1}};
  const Slot day = chart_slot("2026-11-22", Granularity::day);
  EXPECT_EQ(chart_path("nxog09md", request, day),
            "/v3/exporter/projects/nxog09md/charts/YoX28w7R?interval=3600000"
            "&startTime=1795276800000&endTime=1795363199999");

  request = {.resource = config::ChartResource::funnels,
             .chart_id = "f1",
             .interval = std::chrono::days{30},
             .conversion_window = std::chrono::days{7}};
  EXPECT_EQ(chart_path("nxog09md", request, day),
            "/v3/exporter/projects/nxog09md/funnels/f1?interval=2592000000"
            "&startTime=1795276800000&endTime=1795363199999&conversionWindow=7");

  // Each optional parameter goes only with its own resource.
  request.resource = config::ChartResource::retentions;
  request.chart_id = "r1";
  request.interval = std::chrono::days{7};
  request.range = "30";
  EXPECT_EQ(chart_path("nxog09md", request, day),
            "/v3/exporter/projects/nxog09md/retentions/r1?interval=604800000"
            "&startTime=1795276800000&endTime=1795363199999&range=30");

  request.resource = config::ChartResource::frequencies;
  request.chart_id = "q";
  EXPECT_EQ(chart_path("p", request, day).substr(0, 38), "/v3/exporter/projects/p/frequencies/q?");
  EXPECT_EQ(chart_path("p", request, day).find("range"), std::string::npos);
}

TEST(UserList, PathHasExpireAndEncodedParameters) {
  EXPECT_EQ(user_list_path("nxog09md", {.list_id = "seg1"}, 60min),
            "/v3/exporter/projects/nxog09md/segmentations/seg1/users?expire=60");
  EXPECT_EQ(
      user_list_path(
          "p",
          {.resource = config::ChartResource::tags, .list_id = "t_2", .parameters = "城 a=1&b~"},
          5min),
      "/v3/exporter/projects/p/tags/t_2/users?expire=5"
      "&parameters=%E5%9F%8E%20a%3D1%26b~");
}

TEST(WireStatus, SpelledAsTheApiSpellsThem) {
  EXPECT_EQ(to_string(ChartStatus::doing), "doing");
  EXPECT_EQ(to_string(ChartStatus::done), "done");
  EXPECT_EQ(to_string(UserListStatus::doing), "doing");
  EXPECT_EQ(to_string(UserListStatus::done), "done");
  EXPECT_EQ(to_string(UserListStatus::failed), "failed");
  EXPECT_EQ(to_string(ExportStatus::finished), "FINISHED");
  EXPECT_EQ(to_string(ExportStatus::running), "RUNNING");
  EXPECT_EQ(to_string(ExportStatus::not_exists), "NOT_EXISTS");
  EXPECT_EQ(to_string(ExportStatus::error), "ERROR");
}

TEST(UserList, Statuses) {
  const auto doing = parse_user_list(R"({"status":"doing","downloadLinks":[],"errorMsg":""})");
  ASSERT_TRUE(doing) << doing.error();
  EXPECT_EQ(doing->status, UserListStatus::doing);

  const auto failed = parse_user_list(R"({"status":"failed","errorMsg":"导出失败"})");
  ASSERT_TRUE(failed) << failed.error();
  EXPECT_EQ(failed->status, UserListStatus::failed);
  EXPECT_EQ(failed->error_message, "导出失败");

  const auto done = parse_user_list(
      R"({"status":"done","downloadLinks":["https://s/a.csv?sign=1","https://s/b.csv"],"errorMsg":""})");
  ASSERT_TRUE(done) << done.error();
  EXPECT_EQ(done->status, UserListStatus::done);
  EXPECT_EQ(done->links, (std::vector<std::string>{"https://s/a.csv?sign=1", "https://s/b.csv"}));

  const auto empty = parse_user_list(R"({"status":"done","downloadLinks":[]})");
  ASSERT_TRUE(empty) << empty.error();
  EXPECT_TRUE(empty->links.empty());
}

TEST(UserList, MalformedAnswersAreErrorsWithoutLinks) {
  EXPECT_FALSE(parse_user_list("not json"));
  EXPECT_FALSE(parse_user_list("[]"));
  EXPECT_FALSE(parse_user_list(R"({"downloadLinks":[]})"));
  EXPECT_FALSE(parse_user_list(R"({"status":"FINISHED","downloadLinks":[]})"));
  EXPECT_FALSE(parse_user_list(R"({"status":"done"})"));
  EXPECT_FALSE(parse_user_list(R"({"status":"done","downloadLinks":{"a":[]}})"));
  const auto bad =
      parse_user_list(R"({"status":"done","downloadLinks":["https://s/x?sign=SECRET",3]})");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().find("SECRET"), std::string::npos) << bad.error();
}

TEST(UserList, ConfigResourceParametersAndVerifyDefault) {
  const std::string head =
      "projects:\n  - {name: shop, ai: 2a1b4018cd954ec2bcc69da5138bdb96, project_uid: nxog09md, "
      "auth: {token_env: GIO_TEST_TOKEN}}\n"
      "jobs:\n";
  ::setenv("GIO_TEST_TOKEN", "t", 1);
  auto loaded = config::parse_config(
      head +
          "  - {name: s, project: shop, kind: chart, resource: segmentations, charts: [seg1], "
          "parameters: 'a=1'}\n"
          "  - {name: t, project: shop, kind: chart, resource: tags, charts: [tagA], "
          "verify: gzip}\n",
      "/tmp/c.yaml");
  ASSERT_TRUE(loaded.config) << (loaded.problems.empty() ? "" : loaded.problems[0].to_string());
  EXPECT_EQ(std::get<config::UserListJob>(loaded.config->jobs[0].settings).resource,
            config::ChartResource::segmentations);
  EXPECT_EQ(std::get<config::UserListJob>(loaded.config->jobs[0].settings).parameters, "a=1");
  EXPECT_EQ(loaded.config->jobs[0].verify, archive::VerifyMode::size);
  EXPECT_EQ(std::get<config::UserListJob>(loaded.config->jobs[1].settings).resource,
            config::ChartResource::tags);
  EXPECT_EQ(loaded.config->jobs[1].verify, archive::VerifyMode::gzip);

  const auto wrong = config::parse_config(
      head +
          "  - {name: c, project: shop, kind: chart, charts: [c1], parameters: x}\n"
          "  - {name: s, project: shop, kind: chart, resource: tags, charts: [t], interval: 1h}\n",
      "/tmp/c.yaml");
  EXPECT_FALSE(wrong.config);
  EXPECT_EQ(wrong.problems.size(), 2u);
}

}  // namespace
}  // namespace gio::api

// --- Client::chart and Client::user_list against a scripted server ----------------

namespace gio::api {
namespace {

using test::reply;
using test::TestServer;

struct StillClock final : Clock {
  Instant now() const override { return from_unix(1764038400); }
};

// Asks one chart or user list of the 2026-11-22 day slot from `server`, as project
// "shop" (token auth), and returns the typed answer.
class TypedCalls : public ::testing::Test {
 protected:
  TypedCalls() {
    project_.name = "shop";
    project_.ai = "2a1b4018cd954ec2bcc69da5138bdb96";
    project_.project_uid = "nxog09md";
    project_.auth.token = config::Secret{"test-token"};
  }

  template <class T>
  T run(boost::asio::io_context& io, boost::asio::awaitable<T> call) {
    std::optional<T> out;
    boost::asio::co_spawn(io, std::move(call), [&](std::exception_ptr error, T result) {
      if (error) {
        std::rethrow_exception(error);
      }
      out.emplace(std::move(result));
    });
    io.run();
    return std::move(*out);
  }

  boost::system::result<ChartAnswer, Error> chart(const TestServer& server) {
    boost::asio::io_context io;
    http::Client http{io.get_executor(), settings()};
    RateLimiter limiter{io.get_executor(), 1000.0};
    Client client{http, server.url(""), project_, limiter, clock_, nullptr};
    return run(io, client.chart({.chart_id = "YoX28w7R"}, slot_, {}));
  }

  boost::system::result<UserListAnswer, Error> user_list(const TestServer& server) {
    boost::asio::io_context io;
    http::Client http{io.get_executor(), settings()};
    RateLimiter limiter{io.get_executor(), 1000.0};
    Client client{http, server.url(""), project_, limiter, clock_, nullptr};
    return run(io, client.user_list({.resource = config::ChartResource::tags, .list_id = "t1"},
                                    slot_, std::chrono::minutes{60}, {}));
  }

  static http::Settings settings() {
    http::Settings out;
    out.timeout = std::chrono::seconds{5};
    return out;
  }

  config::Project project_;
  StillClock clock_;
  Slot slot_ = Slot::parse("2026-11-22", Granularity::day).value();
};

TestServer::Handler answering(unsigned status, std::string body, std::string* target = nullptr) {
  return [status, body = std::move(body), target](const std::string& asked, const std::string&) {
    if (target != nullptr) {
      *target = asked;
    }
    return reply(status, body);
  };
}

TEST_F(TypedCalls, ACallHeldWhenItsTurnComesSendsNothing) {
  int asked = 0;
  TestServer server{[&asked](const std::string&, const std::string&) {
    ++asked;
    return reply(200, R"({"id":"x","status":"doing"})");
  }};
  boost::asio::io_context io;
  http::Client http{io.get_executor(), settings()};
  RateLimiter limiter{io.get_executor(), 1000.0};
  Client client{http, server.url(""), project_, limiter, clock_, nullptr};
  const Turn held{.hold = [] { return true; }};
  const auto answer = run(io, client.chart({.chart_id = "YoX28w7R"}, slot_, held));
  ASSERT_FALSE(answer);
  EXPECT_TRUE(answer.error().held);
  EXPECT_TRUE(answer.error().transient);
  EXPECT_EQ(asked, 0);
}

TEST_F(TypedCalls, ChartDoingAndDone) {
  std::string target;
  TestServer doing{answering(200, R"({"id":"随机ID","status":"doing"})", &target)};
  const auto waiting = chart(doing);
  ASSERT_TRUE(waiting) << waiting.error().message;
  EXPECT_EQ(waiting->status, ChartStatus::doing);
  EXPECT_EQ(target,
            "/v3/exporter/projects/nxog09md/charts/YoX28w7R?interval=86400000"
            "&startTime=1795276800000&endTime=1795363199999");

  const std::string document = R"({"meta":[{"name":"a"}],"data":[[1.50],[2]]})";
  TestServer done{answering(200, document)};
  const auto finished = chart(done);
  ASSERT_TRUE(finished) << finished.error().message;
  EXPECT_EQ(finished->status, ChartStatus::done);
  EXPECT_EQ(finished->body, document);
  EXPECT_EQ(finished->rows, 2u);
  EXPECT_EQ(finished->csv, "a\r\n1.50\r\n2\r\n");
}

TEST_F(TypedCalls, ARefusedOrGarbledChartIsATransientErrorNamingTheSlot) {
  TestServer failed{answering(200, R"({"id":"x","status":"failed","errorMsg":"超时"})")};
  const auto refused = chart(failed);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().transient);
  EXPECT_FALSE(refused.error().retry_after);
  EXPECT_EQ(refused.error().message,
            "project shop: charts YoX28w7R of 2026-11-22: the export answered status "
            "\"failed\": 超时");

  TestServer garbled{answering(200, "{\"meta\":")};
  const auto broken = chart(garbled);
  ASSERT_FALSE(broken);
  EXPECT_TRUE(broken.error().transient);
  EXPECT_TRUE(broken.error().message.starts_with(
      "project shop: charts YoX28w7R of 2026-11-22: answer is not JSON"))
      << broken.error().message;
}

TEST_F(TypedCalls, AnHttpErrorOfAChartNamesTheChart) {
  TestServer missing{answering(404, "")};
  const auto refused = chart(missing);
  ASSERT_FALSE(refused);
  EXPECT_FALSE(refused.error().transient);
  EXPECT_EQ(refused.error().status, 404u);
  EXPECT_TRUE(refused.error().message.starts_with("chart YoX28w7R: project shop: "))
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("answered HTTP 404"), std::string::npos);

  TestServer busy{answering(503, "")};
  const auto later = chart(busy);
  ASSERT_FALSE(later);
  EXPECT_TRUE(later.error().transient);
  EXPECT_TRUE(later.error().message.starts_with("chart YoX28w7R: project shop: "));
}

TEST_F(TypedCalls, UserListDoingDoneAndFailed) {
  std::string target;
  TestServer doing{answering(200, R"({"status":"doing","downloadLinks":[]})", &target)};
  const auto waiting = user_list(doing);
  ASSERT_TRUE(waiting) << waiting.error().message;
  EXPECT_EQ(waiting->status, UserListStatus::doing);
  EXPECT_EQ(target, "/v3/exporter/projects/nxog09md/tags/t1/users?expire=60");

  TestServer done{
      answering(200, R"({"status":"done","downloadLinks":["https://s/a.csv?sign=1"]})")};
  const auto ready = user_list(done);
  ASSERT_TRUE(ready) << ready.error().message;
  EXPECT_EQ(ready->status, UserListStatus::done);
  EXPECT_EQ(ready->links, std::vector<std::string>{"https://s/a.csv?sign=1"});

  // The vendor's own failure is an answer, not an error: the caller decides.
  TestServer failed{answering(200, R"({"status":"failed","errorMsg":"导出失败"})")};
  const auto refused = user_list(failed);
  ASSERT_TRUE(refused) << refused.error().message;
  EXPECT_EQ(refused->status, UserListStatus::failed);
  EXPECT_EQ(refused->error_message, "导出失败");
}

TEST_F(TypedCalls, AGarbledUserListIsATransientErrorNamingTheSlotAndNoLink) {
  TestServer garbled{
      answering(200, R"({"status":"done","downloadLinks":["https://s/x?sign=SECRET",3]})")};
  const auto broken = user_list(garbled);
  ASSERT_FALSE(broken);
  EXPECT_TRUE(broken.error().transient);
  EXPECT_EQ(broken.error().message,
            "project shop: tags t1 of 2026-11-22: a \"downloadLinks\" entry is not a non-empty "
            "string");
}

TEST_F(TypedCalls, AnHttpErrorOfAUserListNamesTheList) {
  TestServer forbidden{answering(403, "")};
  const auto refused = user_list(forbidden);
  ASSERT_FALSE(refused);
  EXPECT_FALSE(refused.error().transient);
  EXPECT_TRUE(refused.error().message.starts_with("tags t1: project shop: "))
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("refused the project's token"), std::string::npos);
  EXPECT_EQ(refused.error().message.find("test-token"), std::string::npos);

  TestServer limited{answering(429, "")};
  const auto later = user_list(limited);
  ASSERT_FALSE(later);
  EXPECT_TRUE(later.error().transient);
  EXPECT_TRUE(later.error().message.starts_with("tags t1: project shop: "));
}

// A 429's Retry-After holds back the project's next call, whoever makes it: the second
// ask (another slot) must not reach the server before the second asked for has passed.
// The limiter allows 1000 calls/s, so only the pause can space the two requests.
TEST_F(TypedCalls, ARetryAfterOfA429HoldsBackTheProjectsNextCall) {
  std::mutex mutex;
  std::vector<std::chrono::steady_clock::time_point> arrivals;
  TestServer server{[&](const std::string&, const std::string&) {
    std::lock_guard lock{mutex};
    arrivals.push_back(std::chrono::steady_clock::now());
    return arrivals.size() == 1 ? reply(429, "{}", {"Retry-After: 1"})
                                : reply(200, std::string{kSeedAnswer});
  }};
  boost::asio::io_context io;
  http::Client http{io.get_executor(), settings()};
  RateLimiter limiter{io.get_executor(), 1000.0};
  Client client{http, server.url(""), project_, limiter, clock_, nullptr};
  const Slot first = Slot::parse("2026-11-22T03", Granularity::hour).value();
  const Slot second = Slot::parse("2026-11-22T04", Granularity::hour).value();

  const auto limited = run(io, client.raw_export(first, std::chrono::minutes{60}));
  ASSERT_FALSE(limited);
  EXPECT_TRUE(limited.error().transient);
  EXPECT_EQ(limited.error().retry_after, std::chrono::seconds{1});
  io.restart();
  const auto answered = run(io, client.raw_export(second, std::chrono::minutes{60}));
  ASSERT_TRUE(answered) << answered.error().message;

  std::lock_guard lock{mutex};
  ASSERT_EQ(arrivals.size(), 2u);
  // A lower bound only (the pause may be longer on a busy machine, never shorter).
  EXPECT_GE(arrivals[1] - arrivals[0], std::chrono::milliseconds{900});
}

}  // namespace
}  // namespace gio::api
