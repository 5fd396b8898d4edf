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
#include <map>

#include "api/auth.hpp"
#include "api/client.hpp"
#include "api/rate_limiter.hpp"
#include "api/raw_export.hpp"

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
