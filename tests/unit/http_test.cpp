#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>

#include "http/address.hpp"
#include "http/client.hpp"
#include "http/proxy.hpp"
#include "http/url.hpp"
#include "support/test_proxy.hpp"
#include "support/test_server.hpp"

namespace gio::http {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::reply;
using test::Reply;
using test::TestProxy;
using test::TestServer;

// Runs one coroutine on `io` to its end and returns its value.
template <class T>
T run(asio::io_context& io, asio::awaitable<T> work) {
  std::optional<T> out;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(work), [&](std::exception_ptr error, T value) {
    failure = error;
    if (!error) {
      out.emplace(std::move(value));
    }
  });
  io.restart();
  io.run();
  if (failure) {
    std::rethrow_exception(failure);
  }
  return std::move(*out);
}

Settings quick_settings() {
  Settings settings;
  settings.timeout = 5s;
  return settings;
}

class VectorSink : public BodySink {
 public:
  void write(const char* data, std::size_t size) override {
    data_.append(data, size);
    ++writes_;
  }
  std::string data_;
  int writes_ = 0;
};

std::string random_bytes(std::size_t size) {
  std::mt19937 generator{42};
  std::string out(size, '\0');
  for (char& c : out) {
    c = static_cast<char>(generator() & 0xff);
  }
  return out;
}

TEST(Redact, StripsQueryFragmentAndUserinfo) {
  EXPECT_EQ(redact("https://gta.growingio.com/buckets/a/b.csv.gz?sign=SECRET&expires=1"),
            "https://gta.growingio.com/buckets/a/b.csv.gz");
  EXPECT_EQ(redact("http://user:pass@host:8080/p#frag"), "http://host:8080/p");
  EXPECT_EQ(redact("https://host?token=SECRET"), "https://host/");
  EXPECT_EQ(redact("http://[::1]:9000/x?y"), "http://[::1]:9000/x");
  EXPECT_EQ(redact("not a url?secret"), "not a url");
}

TEST(RetryAfter, ParsesSecondsAndAllThreeDateForms) {
  // 2026-11-23 12:00:00 UTC
  const auto now = std::chrono::sys_days{std::chrono::year{2026} / 11 / 23} + 12h;
  EXPECT_EQ(parse_retry_after("120", now), 120s);
  EXPECT_EQ(parse_retry_after(" 0 ", now), 0s);
  EXPECT_EQ(parse_retry_after("Mon, 23 Nov 2026 12:02:30 GMT", now), 150s);
  EXPECT_EQ(parse_retry_after("Monday, 23-Nov-26 12:01:00 GMT", now), 60s);
  EXPECT_EQ(parse_retry_after("Mon Nov 23 13:00:00 2026", now), 3600s);
  EXPECT_EQ(parse_retry_after("Mon, 23 Nov 2026 11:00:00 GMT", now), 0s);  // in the past
  EXPECT_EQ(parse_retry_after("soon", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("-5", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("Mon, 31 Feb 2026 11:00:00 GMT", now), std::nullopt);
}

TEST(Client, GetReturnsStatusBodyAndLength) {
  TestServer server{[](const std::string& target, const std::string&) {
    return target == "/hello?x=1" ? reply(200, "hello world") : reply(404, "");
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  auto response = run(io, client.get(server.url("/hello?x=1"), {{"Authorization", "tok"}}));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 200u);
  EXPECT_EQ(response->body, "hello world");
  EXPECT_EQ(response->content_length, 11u);
  EXPECT_EQ(response->body_bytes, 11u);
  ASSERT_EQ(server.heads().size(), 1u);
  EXPECT_NE(server.heads()[0].find("Authorization: tok\r\n"), std::string::npos);
  EXPECT_NE(server.heads()[0].find("User-Agent: gio-exporter\r\n"), std::string::npos);
}

TEST(Client, GetKeepsTheConnectionAliveForTheNextCall) {
  TestServer server{[](const std::string&, const std::string&) { return reply(200, "{}"); }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  for (int i = 0; i < 3; ++i) {
    auto response = run(io, client.get(server.url("/api"), {}));
    ASSERT_TRUE(response) << response.error().message;
  }
  EXPECT_EQ(server.requests(), 3);
  EXPECT_EQ(server.connections(), 1);
}

TEST(Client, GetRetriesOnceWhenTheServerClosedAnIdleConnection) {
  // The server closes every connection after answering, without saying so in a
  // Connection header: the client's kept-alive connection is dead on reuse.
  TestServer server{[](const std::string&, const std::string&) {
    Reply answer = reply(200, "fresh");
    answer.close_after = true;
    return answer;
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  ASSERT_TRUE(run(io, client.get(server.url("/a"), {})));
  auto second = run(io, client.get(server.url("/b"), {}));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->body, "fresh");
  EXPECT_EQ(server.connections(), 2);
}

TEST(Client, FollowsRelativeRedirects) {
  TestServer server{[](const std::string& target, const std::string&) {
    if (target == "/dir/start") {
      return reply(302, "", {"Location: next?step=2"});
    }
    if (target == "/dir/next?step=2") {
      return reply(301, "", {"Location: /end"});
    }
    if (target == "/end") {
      return reply(200, "arrived");
    }
    return reply(404, "");
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  auto response = run(io, client.get(server.url("/dir/start"), {}));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 200u);
  EXPECT_EQ(response->body, "arrived");
  EXPECT_EQ(response->final_url, server.url("/end"));
}

TEST(Client, FollowsAbsoluteRedirectToAnotherHostWithoutCredentials) {
  TestServer storage{[](const std::string& target, const std::string&) {
    return target == "/file.csv.gz?sign=abc" ? reply(200, "data") : reply(404, "");
  }};
  const std::string location = storage.url("/file.csv.gz?sign=abc");
  TestServer api{[&](const std::string&, const std::string&) {
    return reply(307, "moved", {"Location: " + location});
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  VectorSink sink;
  auto response = run(io, client.download(api.url("/link"), {{"Authorization", "tok"}}, sink));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 200u);
  EXPECT_EQ(sink.data_, "data");  // the redirect's own body never reaches the sink
  ASSERT_EQ(api.heads().size(), 1u);
  EXPECT_NE(api.heads()[0].find("Authorization: tok"), std::string::npos);
  ASSERT_EQ(storage.heads().size(), 1u);
  EXPECT_EQ(storage.heads()[0].find("Authorization"), std::string::npos);
}

// Object stores look the key up byte for byte (and sign it so): a Location's encoded
// bytes must reach the server as they are, "..%2F" and "%2E%2E" included, and only
// literal dot segments of a relative Location are resolved.
TEST(Client, RedirectsKeepThePercentEncodingOfTheLocation) {
  const std::map<std::string, std::string> hops{
      {"/b/start", "/b/k/a..%2Fb.gz?sign=x%2Fy"},
      {"/b/k/a..%2Fb.gz?sign=x%2Fy", "../k2/./%2E%2E/..%2F%E4%B8%AD%3F.gz?s=1"},
      {"/b/k2/%2E%2E/..%2F%E4%B8%AD%3F.gz?s=1", "%2e%2E%2Fz/../last?q=%20"},
  };
  TestServer server{[&](const std::string& target, const std::string&) {
    if (const auto found = hops.find(target); found != hops.end()) {
      return reply(302, "", {"Location: " + found->second});
    }
    return target == "/b/k2/%2E%2E/last?q=%20" ? reply(200, "exact") : reply(404, target);
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  VectorSink sink;
  auto response = run(io, client.download(server.url("/b/start"), {}, sink));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 200u) << sink.data_;
  EXPECT_EQ(sink.data_, "exact");
  EXPECT_EQ(response->final_url, server.url("/b/k2/%2E%2E/last?q=%20"));
  EXPECT_EQ(server.requests(), 4);
}

TEST(Client, TheFirstRequestSendsTheLinksPathBytesAsGiven) {
  const std::string path = "/o/a..%2Fb/%2e%2E/./%E4%B8%AD%3f?x=%20&y=%2F";
  TestServer server{[&](const std::string& target, const std::string&) {
    return target == path ? reply(200, "exact") : reply(404, target);
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  auto response = run(io, client.get(server.url(path), {}));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->body, "exact");
}

// RFC 3986 section 5.4, with the fragments dropped (they are never sent).
TEST(ResolveReference, TheRfcExamples) {
  const std::string base = "http://a/b/c/d;p?q";
  const std::vector<std::pair<std::string, std::string>> examples{
      // 5.4.1 Normal Examples
      {"g:h", "g:h"},
      {"g", "http://a/b/c/g"},
      {"./g", "http://a/b/c/g"},
      {"g/", "http://a/b/c/g/"},
      {"/g", "http://a/g"},
      {"//g", "http://g"},
      {"?y", "http://a/b/c/d;p?y"},
      {"g?y", "http://a/b/c/g?y"},
      {"#s", "http://a/b/c/d;p?q"},
      {"g#s", "http://a/b/c/g"},
      {"g?y#s", "http://a/b/c/g?y"},
      {";x", "http://a/b/c/;x"},
      {"g;x", "http://a/b/c/g;x"},
      {"g;x?y#s", "http://a/b/c/g;x?y"},
      {"", "http://a/b/c/d;p?q"},
      {".", "http://a/b/c/"},
      {"./", "http://a/b/c/"},
      {"..", "http://a/b/"},
      {"../", "http://a/b/"},
      {"../g", "http://a/b/g"},
      {"../..", "http://a/"},
      {"../../", "http://a/"},
      {"../../g", "http://a/g"},
      // 5.4.2 Abnormal Examples
      {"../../../g", "http://a/g"},
      {"../../../../g", "http://a/g"},
      {"/./g", "http://a/g"},
      {"/../g", "http://a/g"},
      {"g.", "http://a/b/c/g."},
      {".g", "http://a/b/c/.g"},
      {"g..", "http://a/b/c/g.."},
      {"..g", "http://a/b/c/..g"},
      {"./../g", "http://a/b/g"},
      {"./g/.", "http://a/b/c/g/"},
      {"g/./h", "http://a/b/c/g/h"},
      {"g/../h", "http://a/b/c/h"},
      {"g;x=1/./y", "http://a/b/c/g;x=1/y"},
      {"g;x=1/../y", "http://a/b/c/y"},
      {"g?y/./x", "http://a/b/c/g?y/./x"},
      {"g?y/../x", "http://a/b/c/g?y/../x"},
      {"g#s/./x", "http://a/b/c/g"},
      {"g#s/../x", "http://a/b/c/g"},
      {"http:g", "http:g"},  // strict parsers
  };
  for (const auto& [reference, want] : examples) {
    EXPECT_EQ(resolve_reference(base, reference), want) << reference;
  }
}

TEST(ResolveReference, PercentEncodedBytesStayAsTheyAre) {
  const std::string base = "https://s.example/bucket/2026/x.gz?sign=A";
  const std::vector<std::pair<std::string, std::string>> examples{
      {"..%2Fy.gz?sign=B", "https://s.example/bucket/2026/..%2Fy.gz?sign=B"},
      {"/k/a..%2F..%2Fb?x=%2F%3F", "https://s.example/k/a..%2F..%2Fb?x=%2F%3F"},
      {"%2E%2E/z", "https://s.example/bucket/2026/%2E%2E/z"},
      {"%2e%2E", "https://s.example/bucket/2026/%2e%2E"},
      {"./%2E/z", "https://s.example/bucket/2026/%2E/z"},
      {"a%3Fb?c", "https://s.example/bucket/2026/a%3Fb?c"},
      {"%E4%B8%AD/../%E6%96%87%3F.gz", "https://s.example/bucket/2026/%E6%96%87%3F.gz"},
      {"../%2F/./c", "https://s.example/bucket/%2F/c"},
      {"http://other/%2E%2E/..%2F/../k", "http://other/%2E%2E/k"},
      {"?sign=%2F%2B", "https://s.example/bucket/2026/x.gz?sign=%2F%2B"},
  };
  for (const auto& [reference, want] : examples) {
    EXPECT_EQ(resolve_reference(base, reference), want) << reference;
  }
  EXPECT_EQ(resolve_reference(base, "http://bad host/"), std::nullopt);
  EXPECT_EQ(resolve_reference("not a base", "g"), std::nullopt);
}

TEST(ResolveReference, RemoveDotSegmentsTakesOnlyLiteralDots) {
  EXPECT_EQ(remove_dot_segments("/a/b/c/./../../g"), "/a/g");  // RFC 3986 5.2.4
  EXPECT_EQ(remove_dot_segments("mid/content=5/../6"), "mid/6");
  EXPECT_EQ(remove_dot_segments("/a/%2E%2E/b"), "/a/%2E%2E/b");
  EXPECT_EQ(remove_dot_segments("/a/..%2F/b"), "/a/..%2F/b");
  EXPECT_EQ(remove_dot_segments("/a/%2e/b"), "/a/%2e/b");
  EXPECT_EQ(remove_dot_segments("/a/b/.."), "/a/");
  EXPECT_EQ(remove_dot_segments("/.."), "/");
  EXPECT_EQ(remove_dot_segments(""), "");
}

TEST(AddressClass, EveryInternalRangeAndItsIpv6Spellings) {
  using enum AddressClass;
  const std::vector<std::pair<std::string, AddressClass>> table{
      {"8.8.8.8", global},
      {"1.1.1.1", global},
      {"192.0.2.2", global},  // documentation, but routed nowhere special
      {"172.15.255.255", global},
      {"172.32.0.0", global},
      {"100.63.255.255", global},
      {"100.128.0.0", global},
      {"169.253.255.255", global},
      {"223.255.255.255", global},
      {"127.0.0.1", loopback},
      {"127.255.255.254", loopback},
      {"10.0.0.0", private_use},
      {"10.255.255.1", private_use},
      {"172.16.0.1", private_use},
      {"172.31.255.255", private_use},
      {"192.168.1.1", private_use},
      {"100.64.0.1", shared},
      {"100.127.255.255", shared},
      {"169.254.169.254", link_local},
      {"169.254.0.1", link_local},
      {"0.0.0.0", unspecified},
      {"0.1.2.3", unspecified},
      {"224.0.0.1", multicast},
      {"239.255.255.250", multicast},
      {"240.0.0.1", reserved},
      {"255.255.255.255", reserved},
      // IPv6
      {"2001:4860:4860::8888", global},
      {"2606:4700::1111", global},
      {"::1", loopback},
      {"::", unspecified},
      {"fc00::1", private_use},
      {"fd12:3456:789a::1", private_use},
      {"fec0::1", private_use},
      {"fe80::1", link_local},
      {"febf:ffff::1", link_local},
      {"ff02::1", multicast},
      // IPv4 addresses spelt as IPv6: the class of the IPv4 address they reach.
      {"::ffff:127.0.0.1", loopback},
      {"::ffff:7f00:1", loopback},
      {"::ffff:169.254.169.254", link_local},
      {"::ffff:a9fe:a9fe", link_local},
      {"::ffff:10.1.2.3", private_use},
      {"::ffff:192.168.0.1", private_use},
      {"::ffff:100.64.0.1", shared},
      {"::ffff:0.0.0.0", unspecified},
      {"::ffff:224.0.0.1", multicast},
      {"::ffff:255.255.255.255", reserved},
      {"::ffff:8.8.8.8", global},
      {"::127.0.0.1", loopback},  // IPv4-compatible
      {"::10.0.0.1", private_use},
      {"64:ff9b::169.254.169.254", link_local},  // NAT64
      {"64:ff9b::8.8.8.8", global},
      {"64:ff9b:1::a00:1", private_use},
      {"2002:7f00:1::1", loopback},  // 6to4 of 127.0.0.1
      {"2002:a9fe:a9fe::1", link_local},
      {"2002:808:808::1", global},
  };
  for (const auto& [text, want] : table) {
    EXPECT_EQ(classify_address(asio::ip::make_address(text)), want) << text;
  }
  EXPECT_EQ(describe(AddressClass::link_local), "a link-local address");
}

Settings guarded(std::string api_base, bool allow_private = false) {
  Settings settings = quick_settings();
  settings.links = {
      .enforce = true, .allow_private = allow_private, .api_base = std::move(api_base)};
  return settings;
}

// The API base is public: a link to this machine's loopback is refused before any
// connection, by address or by a name that resolves to it, and the message says why
// without the link's query.
TEST(AddressPolicy, LoopbackIsRefusedWhenTheApiBaseIsPublic) {
  TestServer server{[](const std::string&, const std::string&) { return reply(200, "internal"); }};
  asio::io_context io;
  Client client{io.get_executor(), guarded("https://203.0.113.9")};
  VectorSink sink;
  auto by_address = run(io, client.download(server.url("/metrics?sign=SECRET"), {}, sink));
  ASSERT_FALSE(by_address);
  EXPECT_EQ(by_address.error().kind, Failure::refused) << by_address.error().message;
  EXPECT_EQ(by_address.error().message,
            "GET " + server.url("/metrics") +
                ": 127.0.0.1 is a loopback address; download links may lead only to public "
                "addresses and to the API base's kind of address (http.allow_private_links: true "
                "allows every address)");
  // A name, and the decimal and hex spellings the resolver also takes for 127.0.0.1.
  for (const std::string name : {"localhost", "2130706433", "0x7f.0.0.1"}) {
    const std::string url = "http://" + name + ":" + std::to_string(server.port()) + "/x?sign=S";
    auto by_name = run(io, client.get(url, {}));
    ASSERT_FALSE(by_name) << name;
    EXPECT_EQ(by_name.error().kind, Failure::refused) << by_name.error().message;
    EXPECT_NE(by_name.error().message.find(name + " resolves to "), std::string::npos)
        << by_name.error().message;
    EXPECT_NE(by_name.error().message.find("a loopback address"), std::string::npos);
    EXPECT_EQ(by_name.error().message.find("sign="), std::string::npos);
  }
  EXPECT_EQ(server.connections(), 0);
  EXPECT_TRUE(sink.data_.empty());
}

TEST(AddressPolicy, AllowPrivateLinksAllowsEveryAddress) {
  TestServer server{[](const std::string&, const std::string&) { return reply(200, "ok"); }};
  asio::io_context io;
  Client client{io.get_executor(), guarded("https://203.0.113.9", /*allow_private=*/true)};
  auto response = run(io, client.get(server.url("/"), {}));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->body, "ok");
}

// The API base on loopback (tests, the demo) allows loopback links, by address or by a
// name (resolved when first needed), but no other internal kind.
TEST(AddressPolicy, TheApiBasesKindOfAddressIsAllowed) {
  TestServer server{[](const std::string&, const std::string&) { return reply(200, "ok"); }};
  for (const std::string& base : {server.url(""), std::string{"http://localhost:1"}}) {
    asio::io_context io;
    Client client{io.get_executor(), guarded(base)};
    auto response = run(io, client.get(server.url("/"), {}));
    ASSERT_TRUE(response) << base << ": " << response.error().message;
    auto metadata = run(io, client.get("http://169.254.169.254/latest/meta-data/", {}));
    ASSERT_FALSE(metadata) << base;
    EXPECT_EQ(metadata.error().kind, Failure::refused) << metadata.error().message;
    EXPECT_NE(metadata.error().message.find("169.254.169.254 is a link-local address"),
              std::string::npos)
        << metadata.error().message;
  }
}

// Every redirect hop is checked, whatever spelling its address takes.
TEST(AddressPolicy, ARedirectToAnInternalAddressIsRefused) {
  const std::vector<std::pair<std::string, std::string>> hops{
      {"http://169.254.169.254/latest/meta-data/iam?sign=SECRET", "a link-local address"},
      {"http://[::ffff:a9fe:a9fe]/x?sign=SECRET", "a link-local address"},
      {"http://10.255.255.1:9/x?sign=SECRET", "a private address"},
      {"http://[fd00::1]/x", "a private address"},
      {"http://[fe80::1]/x", "a link-local address"},
      {"http://100.64.0.1/x", "a shared (carrier-grade NAT) address"},
      {"http://0.0.0.0:9/x", "an unspecified address"},
      {"http://224.0.0.1/x", "a multicast address"},
      {"http://255.255.255.255/x", "a reserved or broadcast address"},
  };
  for (const auto& [location, why] : hops) {
    TestServer server{[&](const std::string&, const std::string&) {
      return reply(302, "", {"Location: " + location});
    }};
    asio::io_context io;
    Client client{io.get_executor(), guarded(server.url(""))};
    VectorSink sink;
    auto response = run(io, client.download(server.url("/link?sign=SECRET"), {}, sink));
    ASSERT_FALSE(response) << location;
    EXPECT_EQ(response.error().kind, Failure::refused) << response.error().message;
    EXPECT_NE(response.error().message.find(why), std::string::npos) << response.error().message;
    EXPECT_EQ(response.error().message.find("SECRET"), std::string::npos);
    EXPECT_EQ(server.requests(), 1);
  }
}

// Through a proxy the target is resolved by the proxy: an address literal is checked as it
// is, a name by what it resolves to here; a name unknown here goes to the proxy.
TEST(AddressPolicy, ThroughAProxyLiteralsAndLocallyResolvedNamesAreChecked) {
  TestProxy proxy{[](const std::string&) -> std::optional<Reply> { return reply(200, "via"); }};
  asio::io_context io;
  Settings settings = guarded("https://203.0.113.9");
  settings.proxy.http = proxy.url();
  Client client{io.get_executor(), settings};
  for (const char* url :
       {"http://10.1.2.3/x", "http://[::ffff:127.0.0.1]:8080/x", "http://localhost:9/x"}) {
    auto response = run(io, client.get(url, {}));
    ASSERT_FALSE(response) << url;
    EXPECT_EQ(response.error().kind, Failure::refused) << response.error().message;
  }
  EXPECT_TRUE(proxy.heads().empty());
  auto unknown_here = run(io, client.get("http://gta.invalid/part-0.gz", {}));
  ASSERT_TRUE(unknown_here) << unknown_here.error().message;
  EXPECT_EQ(unknown_here->body, "via");
}

TEST(Client, RefusesARedirectLoopAfterMaxRedirects) {
  TestServer server{[](const std::string&, const std::string&) {
    return reply(302, "", {"Location: /loop?sign=SECRET"});
  }};
  asio::io_context io;
  Settings settings = quick_settings();
  settings.max_redirects = 3;
  Client client{io.get_executor(), settings};
  auto response = run(io, client.get(server.url("/loop?sign=SECRET"), {}));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, Failure::redirect);
  EXPECT_EQ(server.requests(), 4);  // the first request and three redirects
  EXPECT_EQ(response.error().message.find("SECRET"), std::string::npos);
}

TEST(Client, RefusesRedirectsToOtherSchemes) {
  TestServer server{[](const std::string&, const std::string&) {
    return reply(302, "", {"Location: ftp://example.com/file"});
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  auto response = run(io, client.get(server.url("/"), {}));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, Failure::redirect);
}

TEST(Client, ReturnsA404WithItsBody) {
  TestServer server{[](const std::string&, const std::string&) {
    return reply(404, "{\"error\":\"no such export\"}");
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  auto response = run(io, client.get(server.url("/missing"), {}));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 404u);
  EXPECT_EQ(response->body, "{\"error\":\"no such export\"}");
  EXPECT_FALSE(response->retry_after);
}

TEST(Client, ParsesRetryAfterOfA429) {
  TestServer server{[](const std::string&, const std::string&) {
    return reply(429, "slow down", {"Retry-After: 7"});
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  auto response = run(io, client.get(server.url("/"), {}));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 429u);
  EXPECT_EQ(response->retry_after, 7s);
}

TEST(Client, TimesOutOnASilentServer) {
  TestServer server{[](const std::string&, const std::string&) { return Reply{.silent = true}; }};
  asio::io_context io;
  Settings settings;
  settings.timeout = 1s;
  Client client{io.get_executor(), settings};
  const auto started = std::chrono::steady_clock::now();
  auto response = run(io, client.get(server.url("/"), {}));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, Failure::timeout) << response.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
}

TEST(Client, DownloadIdleTimeoutWhenTheBodyStalls) {
  TestServer server{[](const std::string&, const std::string&) {
    // Headers and part of the body, then nothing: the connection stays open.
    return Reply{.raw = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"};
  }};
  asio::io_context io;
  Settings settings;
  settings.timeout = 1s;
  Client client{io.get_executor(), settings};
  VectorSink sink;
  auto response = run(io, client.download(server.url("/"), {}, sink));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, Failure::timeout) << response.error().message;
  EXPECT_NE(response.error().message.find("after 10 of 100 bytes"), std::string::npos)
      << response.error().message;
}

TEST(Client, ABodyCutShortIsAnError) {
  TestServer server{[](const std::string&, const std::string&) {
    return Reply{.raw = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + std::string(500, 'x'),
                 .close_after = true};
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  auto got = run(io, client.get(server.url("/"), {}));
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, Failure::reset);
  EXPECT_TRUE(got.error().truncated);
  EXPECT_NE(got.error().message.find("connection closed after 500 of 1000 bytes"),
            std::string::npos)
      << got.error().message;

  VectorSink sink;
  auto downloaded = run(io, client.download(server.url("/"), {}, sink));
  ASSERT_FALSE(downloaded);
  EXPECT_TRUE(downloaded.error().truncated);
  EXPECT_EQ(sink.data_.size(), 500u);
}

TEST(Client, ABodyEndedByTheConnectionIsComplete) {
  TestServer server{[](const std::string&, const std::string&) {
    return Reply{.raw = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
                 .close_after = true};
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  auto response = run(io, client.get(server.url("/"), {}));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->body, "until the end");
  EXPECT_FALSE(response->content_length);
}

TEST(Client, ChunkedBodiesAreDecoded) {
  TestServer server{[](const std::string&, const std::string&) {
    return Reply{.raw =
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"};
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  auto response = run(io, client.get(server.url("/"), {}));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->body, "hello world");
}

TEST(Client, GetRefusesABodyOverMaxBody) {
  TestServer server{
      [](const std::string&, const std::string&) { return reply(200, std::string(1000, 'a')); }};
  asio::io_context io;
  Settings settings = quick_settings();
  settings.max_body = 100;
  Client client{io.get_executor(), settings};
  auto response = run(io, client.get(server.url("/"), {}));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, Failure::too_large);
}

TEST(Client, DownloadStreamsALargeBodyToTheSink) {
  const std::string body = random_bytes(5 << 20);
  TestServer server{[&](const std::string&, const std::string&) { return reply(200, body); }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  VectorSink sink;
  auto response = run(io, client.download(server.url("/big.gz"), {}, sink));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 200u);
  EXPECT_EQ(response->content_length, body.size());
  EXPECT_EQ(response->body_bytes, body.size());
  EXPECT_TRUE(response->body.empty());
  EXPECT_TRUE(sink.data_ == body);
  EXPECT_GT(sink.writes_, 1);
}

TEST(Client, DownloadKeepsAnErrorBodyOutOfTheSink) {
  TestServer server{[](const std::string&, const std::string&) {
    return reply(403, "<Error>Request has expired</Error>");
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  VectorSink sink;
  auto response = run(io, client.download(server.url("/x?sign=1"), {}, sink));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 403u);
  EXPECT_EQ(response->body, "<Error>Request has expired</Error>");
  EXPECT_TRUE(sink.data_.empty());
}

TEST(Client, ASinkThatThrowsFailsTheDownloadWithIo) {
  TestServer server{[](const std::string&, const std::string&) { return reply(200, "data"); }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  struct FullDisk : BodySink {
    void write(const char*, std::size_t) override {
      throw std::runtime_error("No space left on device");
    }
  } sink;
  auto response = run(io, client.download(server.url("/"), {}, sink));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, Failure::io);
  EXPECT_NE(response.error().message.find("No space left on device"), std::string::npos);
}

TEST(Client, ConnectionRefusedIsAConnectFailure) {
  unsigned short port = 0;
  {
    asio::io_context scratch;
    asio::ip::tcp::acceptor acceptor{scratch, {asio::ip::make_address("127.0.0.1"), 0}};
    port = acceptor.local_endpoint().port();
  }
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  auto response =
      run(io, client.get("http://127.0.0.1:" + std::to_string(port) + "/?token=SECRET", {}));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, Failure::connect);
  EXPECT_EQ(response.error().message.find("SECRET"), std::string::npos);
}

TEST(Client, UnsupportedUrlsAreRefused) {
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  auto ftp = run(io, client.get("ftp://example.com/file", {}));
  ASSERT_FALSE(ftp);
  EXPECT_EQ(ftp.error().kind, Failure::protocol);
  auto garbage = run(io, client.get("no url at all", {}));
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().kind, Failure::protocol);
}

TEST(Client, WorksWithAnIpv6LiteralHost) {
  std::unique_ptr<TestServer> server;
  try {
    server = std::make_unique<TestServer>(
        [](const std::string&, const std::string& head) {
          const bool host_ok = head.find("Host: [::1]:") != std::string::npos;
          return reply(host_ok ? 200 : 400, "v6");
        },
        "", "", "::1");
  } catch (const std::exception& error) {
    GTEST_SKIP() << "no IPv6 loopback here: " << error.what();
  }
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  auto response = run(io, client.get(server->url("/six"), {}));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->status, 200u);
  EXPECT_EQ(response->body, "v6");
}

TEST(HostilePeer, RedirectsToFileAndDataUrlsAreRefused) {
  TestServer server{[](const std::string& target, const std::string&) {
    return reply(
        302, "",
        {target == "/file" ? "Location: file:///etc/passwd" : "Location: data:text/plain,hello"});
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  for (const std::string path : {"/file", "/data"}) {
    VectorSink sink;
    auto response = run(io, client.download(server.url(path), {}, sink));
    ASSERT_FALSE(response) << path;
    EXPECT_EQ(response.error().kind, Failure::redirect) << response.error().message;
    EXPECT_TRUE(sink.data_.empty());
  }
}

TEST(HostilePeer, AHeaderFloodIsCutByTheHeaderLimit) {
  std::string flood = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 20000; ++i) {
    flood += "X-Flood-" + std::to_string(i) + ": x\r\n";
  }
  flood += "Content-Length: 2\r\n\r\nok";
  TestServer server{[&](const std::string&, const std::string&) { return Reply{.raw = flood}; }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  auto response = run(io, client.get(server.url("/"), {}));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, Failure::too_large) << response.error().message;
}

TEST(HostilePeer, AHeaderThatNeverEndsIsCutByTheHeaderLimit) {
  // 4 MiB of one header line, never terminated: cut long before the server is done.
  const std::string endless = "HTTP/1.1 200 OK\r\nX-Endless: " + std::string(4 << 20, 'a');
  TestServer server{[&](const std::string&, const std::string&) { return Reply{.raw = endless}; }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  VectorSink sink;
  auto response = run(io, client.download(server.url("/"), {}, sink));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, Failure::too_large) << response.error().message;
}

TEST(HostilePeer, HeadersTrickledSlowerThanTheTimeoutAreCut) {
  // Each byte comes well within the timeout, but the head as a whole never ends.
  TestServer server{[](const std::string&, const std::string&) {
    return Reply{
        .raw = "HTTP/1.1 200 OK\r\nX-Slow: ", .drip = std::string(100, 'a'), .drip_every = 200ms};
  }};
  asio::io_context io;
  Settings settings;
  settings.timeout = 1s;
  Client client{io.get_executor(), settings};
  const auto started = std::chrono::steady_clock::now();
  auto response = run(io, client.get(server.url("/"), {}));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, Failure::timeout) << response.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);  // not the 20 s of the drip
}

TEST(HostilePeer, ABodyDrippedByteByByteIsCutByTheTimeout) {
  // One byte every 400 ms with a 1 s timeout: the peer is never idle for a whole timeout,
  // yet no read ever fills its buffer or ends the body within it.
  TestServer server{[](const std::string&, const std::string&) {
    return Reply{.raw = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
                 .drip = std::string(100, 'd'),
                 .drip_every = 400ms};
  }};
  asio::io_context io;
  Settings settings;
  settings.timeout = 1s;
  Client client{io.get_executor(), settings};
  for (const bool download : {false, true}) {
    const auto started = std::chrono::steady_clock::now();
    VectorSink sink;
    Result<Response> response{Error{Failure::io, {}}};
    if (download) {
      response = run(io, client.download(server.url("/drip"), {}, sink));
    } else {
      response = run(io, client.get(server.url("/drip"), {}));
    }
    ASSERT_FALSE(response) << "download " << download;
    EXPECT_EQ(response.error().kind, Failure::timeout) << response.error().message;
    EXPECT_NE(response.error().message.find("no data for 1 s"), std::string::npos)
        << response.error().message;
    EXPECT_LT(std::chrono::steady_clock::now() - started, 20s);  // not the 40 s of the drip
  }
}

TEST(HostilePeer, ADownloadStillRunningAtItsCapIsCut) {
  // A byte every 100 ms keeps each read within the 30 s timeout for the whole 20 s of
  // the body; the download's 1 s cap is what ends it.
  TestServer server{[](const std::string&, const std::string&) {
    return Reply{.raw = "HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n",
                 .drip = std::string(200, 'd'),
                 .drip_every = 100ms};
  }};
  asio::io_context io;
  Settings settings;
  settings.timeout = 30s;
  settings.download_cap = 1s;
  Client client{io.get_executor(), settings};
  const auto started = std::chrono::steady_clock::now();
  VectorSink sink;
  auto response = run(io, client.download(server.url("/slow"), {}, sink));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, Failure::timeout) << response.error().message;
  EXPECT_NE(response.error().message.find("not finished within the cap of 1 s"), std::string::npos)
      << response.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 15s);  // not the 20 s of the drip
}

TEST(HostilePeer, AnApiAnswerAnnouncingMoreThan64MiBIsRefusedUnread) {
  // The head promises 64 MiB + 1 and then nothing comes: refused at once, not timed out.
  TestServer server{[](const std::string&, const std::string&) {
    return Reply{.raw = "HTTP/1.1 200 OK\r\nContent-Length: 67108865\r\n\r\n{"};
  }};
  asio::io_context io;
  Settings settings;  // the default cap
  ASSERT_EQ(settings.max_body, std::size_t{64} << 20);
  settings.timeout = 30s;
  Client client{io.get_executor(), settings};
  const auto started = std::chrono::steady_clock::now();
  auto response = run(io, client.get(server.url("/v3/x?token=SECRET"), {}));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, Failure::too_large) << response.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 20s);
  EXPECT_EQ(response.error().message.find("SECRET"), std::string::npos);
}

TEST(HostilePeer, AChunkedApiAnswerOver64MiBIsRefused) {
  // No length to judge by: the answer is cut when it passes the cap.
  const std::size_t size = (std::size_t{64} << 20) + 4096;
  std::ostringstream head;
  head << "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" << std::hex << size << "\r\n";
  const std::string raw = head.str() + std::string(size, 'j') + "\r\n0\r\n\r\n";
  TestServer server{[&](const std::string&, const std::string&) { return Reply{.raw = raw}; }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  auto response = run(io, client.get(server.url("/"), {}));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, Failure::too_large) << response.error().message;
}

TEST(HostilePeer, ADownloadLongerThanItsContentLengthFails) {
  TestServer server{[](const std::string&, const std::string&) {
    return Reply{.raw = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789 and more"};
  }};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  VectorSink sink;
  auto response = run(io, client.download(server.url("/part.gz?sign=SECRET"), {}, sink));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().kind, Failure::protocol) << response.error().message;
  EXPECT_NE(response.error().message.find("more than the 10 bytes it announced"), std::string::npos)
      << response.error().message;
  EXPECT_EQ(response.error().message.find("SECRET"), std::string::npos);

  // An API answer with bytes after its end is taken, but its connection is not reused:
  // the extra bytes must not be read as the next answer.
  auto first = run(io, client.get(server.url("/a"), {}));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->body, "0123456789");
  auto second = run(io, client.get(server.url("/b"), {}));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->body, "0123456789");
  EXPECT_EQ(server.connections(), 3);
}

TEST(HostilePeer, AChunkedDownloadWithoutItsLastChunkFails) {
  TestServer server{[](const std::string& target, const std::string&) {
    const std::string raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    if (target == "/closed") {
      return Reply{.raw = raw, .close_after = true};
    }
    return Reply{.raw = raw};  // the connection stays open, and silent
  }};
  asio::io_context io;
  Settings settings;
  settings.timeout = 1s;
  Client client{io.get_executor(), settings};
  VectorSink closed_sink;
  auto closed = run(io, client.download(server.url("/closed"), {}, closed_sink));
  ASSERT_FALSE(closed);
  EXPECT_EQ(closed.error().kind, Failure::reset) << closed.error().message;
  EXPECT_TRUE(closed.error().truncated);

  VectorSink open_sink;
  auto open = run(io, client.download(server.url("/open"), {}, open_sink));
  ASSERT_FALSE(open);
  EXPECT_EQ(open.error().kind, Failure::timeout) << open.error().message;
}

TEST(Client, ABadCaFileIsRefusedAtConstruction) {
  asio::io_context io;
  Settings settings;
  settings.ca_file = "/nonexistent/ca.pem";
  EXPECT_THROW(Client(io.get_executor(), settings), std::runtime_error);
}

// A CA and server certificates made with the openssl command for this test run: "good"
// names localhost and 127.0.0.1, "other" names only other.example, "expired" is good's
// twin that ended yesterday; "self" is self-signed (no CA) for localhost and 127.0.0.1.
class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                     ("gio-http-tls-" + std::to_string(::getpid())));
    std::filesystem::create_directories(*dir_);
    const std::string d = dir_->string();
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::ofstream{*dir_ / "good.ext"} << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    std::ofstream{*dir_ / "other.ext"} << "subjectAltName=DNS:other.example\n";
    std::ofstream{*dir_ / "expired.ext"} << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    const std::string script =
        "cd " + d + " && openssl req -x509" + key +
        " -keyout ca.key -out ca.pem -days 2 -subj /CN=gio-test-ca 2>/dev/null"
        " && for name in good other expired; do"
        " days=2; [ $name = expired ] && days=-1;"
        " openssl req" +
        key +
        " -keyout $name.key -out $name.csr -subj /CN=$name 2>/dev/null"
        " && openssl x509 -req -in $name.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -days $days -extfile $name.ext -out $name.pem 2>/dev/null || exit 1; done"
        " && openssl req -x509" +
        key +
        " -keyout self.key -out self.pem -days 2 -subj /CN=self"
        " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null";
    ASSERT_EQ(std::system(script.c_str()), 0) << "openssl failed";
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::string file(const std::string& name) { return (*dir_ / name).string(); }

  static Reply hello(const std::string&, const std::string&) { return reply(200, "secure"); }

  static std::filesystem::path* dir_;
};
std::filesystem::path* Tls::dir_ = nullptr;

TEST_F(Tls, VerifiesAgainstTheConfiguredCa) {
  TestServer server{hello, file("good.pem"), file("good.key")};
  asio::io_context io;
  Settings settings = quick_settings();
  settings.ca_file = file("ca.pem");
  Client client{io.get_executor(), settings};
  auto response = run(io, client.get(server.url("/"), {}));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->body, "secure");

  // By name too (SNI and DNS name check), however localhost resolves.
  auto by_name =
      run(io, client.get("https://localhost:" + std::to_string(server.port()) + "/", {}));
  ASSERT_TRUE(by_name) << by_name.error().message;
}

// A refused handshake is a tls failure whose message names the host and the reason,
// and never the link's query string.
void expect_refused(const Result<Response>& response, const std::string& host,
                    const std::string& reason) {
  ASSERT_FALSE(response);
  const std::string& message = response.error().message;
  EXPECT_EQ(response.error().kind, Failure::tls) << message;
  EXPECT_NE(message.find("TLS handshake with " + host), std::string::npos) << message;
  EXPECT_NE(message.find(reason), std::string::npos) << message;
  EXPECT_EQ(message.find("SECRET"), std::string::npos) << message;
}

TEST_F(Tls, AnUnknownCaIsATlsFailure) {
  TestServer server{hello, file("good.pem"), file("good.key")};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  expect_refused(run(io, client.get(server.url("/?sign=SECRET"), {})), "127.0.0.1",
                 "unable to get local issuer certificate");
}

TEST_F(Tls, ASelfSignedCertificateWithoutCaFileIsRefused) {
  TestServer server{hello, file("self.pem"), file("self.key")};
  asio::io_context io;
  Client client{io.get_executor(), quick_settings()};
  expect_refused(run(io, client.get(server.url("/?sign=SECRET"), {})), "127.0.0.1",
                 "self-signed certificate");
  VectorSink sink;
  expect_refused(run(io, client.download(server.url("/part.gz?sign=SECRET"), {}, sink)),
                 "127.0.0.1", "self-signed certificate");
  EXPECT_TRUE(sink.data_.empty());

  // Naming that certificate as the CA file is how an operator trusts it on purpose.
  Settings trusting = quick_settings();
  trusting.ca_file = file("self.pem");
  Client trusted{io.get_executor(), trusting};
  auto response = run(io, trusted.get(server.url("/"), {}));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->body, "secure");
}

TEST_F(Tls, AWrongHostNameIsATlsFailure) {
  TestServer server{hello, file("other.pem"), file("other.key")};
  asio::io_context io;
  Settings settings = quick_settings();
  settings.ca_file = file("ca.pem");
  Client client{io.get_executor(), settings};
  expect_refused(run(io, client.get(server.url("/?sign=SECRET"), {})), "127.0.0.1",
                 "IP address mismatch");
  expect_refused(
      run(io,
          client.get("https://localhost:" + std::to_string(server.port()) + "/?sign=SECRET", {})),
      "localhost", "hostname mismatch");
}

TEST_F(Tls, AnExpiredCertificateIsATlsFailure) {
  TestServer server{hello, file("expired.pem"), file("expired.key")};
  asio::io_context io;
  Settings settings = quick_settings();
  settings.ca_file = file("ca.pem");
  Client client{io.get_executor(), settings};
  expect_refused(run(io, client.get(server.url("/?sign=SECRET"), {})), "127.0.0.1",
                 "certificate has expired");
}

TEST_F(Tls, AServerOfferingOnlyTls11IsRefused) {
  const auto old_versions_only = [](asio::ssl::context& context) {
    // Security level 0: OpenSSL 3 would otherwise refuse TLS 1.0/1.1 on the server too.
    SSL_CTX_set_security_level(context.native_handle(), 0);
    SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_VERSION);
    SSL_CTX_set_max_proto_version(context.native_handle(), TLS1_1_VERSION);
  };
  TestServer server{hello, file("good.pem"), file("good.key"), "127.0.0.1", old_versions_only};

  // The server does speak TLS 1.1: a client that allows it completes the handshake.
  {
    asio::io_context io;
    asio::ssl::context lax{asio::ssl::context::tls_client};
    SSL_CTX_set_security_level(lax.native_handle(), 0);
    SSL_CTX_set_min_proto_version(lax.native_handle(), TLS1_VERSION);
    lax.set_verify_mode(asio::ssl::verify_none);
    asio::ssl::stream<asio::ip::tcp::socket> stream{io, lax};
    stream.next_layer().connect({asio::ip::make_address("127.0.0.1"), server.port()});
    boost::system::error_code ec;
    stream.handshake(asio::ssl::stream_base::client, ec);
    ASSERT_FALSE(ec) << "the TLS 1.1 test server is broken: " << ec.message();
    EXPECT_EQ(std::string{SSL_get_version(stream.native_handle())}, "TLSv1.1");
  }

  asio::io_context io;
  Settings settings = quick_settings();
  settings.ca_file = file("ca.pem");
  Client client{io.get_executor(), settings};
  expect_refused(run(io, client.get(server.url("/?sign=SECRET"), {})), "127.0.0.1",
                 "no TLS 1.2 or newer");
}

TEST_F(Tls, APeerClosingWithoutCloseNotifyAfterTheBodyIsFine) {
  const std::string body = random_bytes(3 << 20);
  TestServer server{[&](const std::string& target, const std::string&) {
                      if (target == "/eof") {  // no length: the body ends with the connection
                        return Reply{
                            .raw = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end",
                            .close_after = true};
                      }
                      if (target == "/short") {
                        return Reply{.raw = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345",
                                     .close_after = true};
                      }
                      Reply answer = reply(200, body);
                      answer.close_after = true;
                      return answer;
                    },
                    file("good.pem"), file("good.key")};
  asio::io_context io;
  Settings settings = quick_settings();
  settings.ca_file = file("ca.pem");
  Client client{io.get_executor(), settings};

  VectorSink sink;
  auto sized = run(io, client.download(server.url("/sized"), {}, sink));
  ASSERT_TRUE(sized) << sized.error().message;
  EXPECT_TRUE(sink.data_ == body);

  auto until_eof = run(io, client.get(server.url("/eof"), {}));
  ASSERT_TRUE(until_eof) << until_eof.error().message;
  EXPECT_EQ(until_eof->body, "to the end");

  auto cut = run(io, client.get(server.url("/short"), {}));
  ASSERT_FALSE(cut);
  EXPECT_TRUE(cut.error().truncated) << cut.error().message;
}

// --- Proxies ---

TEST(Proxy, ParsesProxyUrls) {
  std::string why;
  const auto plain = parse_proxy("http://proxy.corp:3128", why);
  ASSERT_TRUE(plain) << why;
  EXPECT_EQ(plain->host, "proxy.corp");
  EXPECT_EQ(plain->port, "3128");
  EXPECT_EQ(plain->authorization, "");
  EXPECT_EQ(plain->shown, "http://proxy.corp:3128");

  // Credentials, percent-decoded, become Basic credentials and leave the shown form.
  const auto with_user = parse_proxy("http://al%40ice:p%3Ass@proxy.corp:3128/", why);
  ASSERT_TRUE(with_user) << why;
  EXPECT_EQ(with_user->authorization, "Basic YWxAaWNlOnA6c3M=");  // al@ice:p:ss
  EXPECT_EQ(with_user->shown, "http://proxy.corp:3128");

  // As curl: no scheme means http://, no port means 1080.
  const auto bare = parse_proxy("proxy.corp", why);
  ASSERT_TRUE(bare) << why;
  EXPECT_EQ(bare->shown, "http://proxy.corp:1080");
  const auto upper = parse_proxy("HTTP://10.0.0.1:8080", why);
  ASSERT_TRUE(upper) << why;
  EXPECT_EQ(upper->shown, "http://10.0.0.1:8080");
  const auto six = parse_proxy("http://[::1]:8080", why);
  ASSERT_TRUE(six) << why;
  EXPECT_EQ(six->host, "::1");
  EXPECT_EQ(six->shown, "http://[::1]:8080");

  for (const char* bad :
       {"https://u:SECRET@proxy.corp:443", "socks5://u:SECRET@proxy.corp:1080",
        "http://u:SECRET@proxy.corp:99999", "http://u:SECRET@proxy.corp:3128/path",
        "http://u:SECRET@proxy.corp:3128/?q", "http://u:SECRET@:3128", "http://",
        "http://u:SECRET@"}) {
    why.clear();
    EXPECT_FALSE(parse_proxy(bad, why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
    EXPECT_EQ(why.find("SECRET"), std::string::npos) << why;
  }
}

TEST(Proxy, NoProxyMatchesNamesAndTheirSubdomains) {
  EXPECT_TRUE(no_proxy_matches("*", "anything.example", "443"));
  EXPECT_TRUE(no_proxy_matches("localhost, *", "anything.example", "443"));
  EXPECT_FALSE(no_proxy_matches("", "localhost", "80"));
  EXPECT_TRUE(no_proxy_matches("corp.example", "corp.example", "443"));
  EXPECT_TRUE(no_proxy_matches("corp.example", "api.corp.example", "443"));
  EXPECT_TRUE(no_proxy_matches(".corp.example", "corp.example", "443"));
  EXPECT_TRUE(no_proxy_matches(".corp.example", "a.b.corp.example", "443"));
  EXPECT_FALSE(no_proxy_matches("corp.example", "notcorp.example", "443"));
  EXPECT_FALSE(no_proxy_matches("corp.example", "corp.example.net", "443"));
  EXPECT_FALSE(no_proxy_matches("api.corp.example", "corp.example", "443"));
  EXPECT_TRUE(no_proxy_matches("CORP.Example", "api.corp.EXAMPLE.", "443"));
  // Only a lone "*" is a wildcard, as in curl.
  EXPECT_FALSE(no_proxy_matches("*.corp.example", "api.corp.example", "443"));
  // Commas or spaces; empty and malformed entries are skipped.
  EXPECT_TRUE(no_proxy_matches(" localhost , ,gta.growingio.com", "gta.growingio.com", "443"));
  EXPECT_TRUE(no_proxy_matches("localhost gta.growingio.com", "gta.growingio.com", "443"));
  EXPECT_TRUE(no_proxy_matches("[::1, localhost", "localhost", "80"));
  EXPECT_FALSE(no_proxy_matches("localhost", "127.0.0.1", "80"));  // a name is not an address
}

TEST(Proxy, NoProxyMatchesAddressesNetworksAndPorts) {
  EXPECT_TRUE(no_proxy_matches("127.0.0.1", "127.0.0.1", "80"));
  EXPECT_FALSE(no_proxy_matches("127.0.0.1", "127.0.0.2", "80"));
  EXPECT_FALSE(no_proxy_matches("0.0.1", "127.0.0.1", "80"));  // no suffixes for addresses
  EXPECT_TRUE(no_proxy_matches("10.0.0.0/8", "10.20.30.40", "80"));
  EXPECT_FALSE(no_proxy_matches("10.0.0.0/8", "11.0.0.1", "80"));
  EXPECT_TRUE(no_proxy_matches("192.168.1.0/25", "192.168.1.127", "80"));
  EXPECT_FALSE(no_proxy_matches("192.168.1.0/25", "192.168.1.128", "80"));
  EXPECT_FALSE(no_proxy_matches("192.168.1.0/33", "192.168.1.1", "80"));
  EXPECT_TRUE(no_proxy_matches("::1", "::1", "80"));
  EXPECT_TRUE(no_proxy_matches("[::1]", "::1", "80"));
  EXPECT_TRUE(no_proxy_matches("fd00::/8", "fd12:3456::1", "80"));
  EXPECT_FALSE(no_proxy_matches("fd00::/8", "fe80::1", "80"));
  EXPECT_FALSE(no_proxy_matches("127.0.0.1", "::1", "80"));
  // An entry with a port matches that port only.
  EXPECT_TRUE(no_proxy_matches("corp.example:8443", "api.corp.example", "8443"));
  EXPECT_FALSE(no_proxy_matches("corp.example:8443", "api.corp.example", "443"));
  EXPECT_TRUE(no_proxy_matches("127.0.0.1:9000", "127.0.0.1", "9000"));
  EXPECT_FALSE(no_proxy_matches("127.0.0.1:9000", "127.0.0.1", "9001"));
  EXPECT_TRUE(no_proxy_matches("[::1]:9000", "::1", "9000"));
  EXPECT_FALSE(no_proxy_matches("[::1]:9000", "::1", "9001"));
}

TEST(Proxy, TheEnvironmentIsReadLowercaseFirst) {
  std::map<std::string, std::string> env{{"HTTPS_PROXY", "http://upper:1"},
                                         {"https_proxy", "http://lower:2"},
                                         {"HTTP_PROXY", "http://upper-http:3"},
                                         {"no_proxy", ""},
                                         {"NO_PROXY", "corp.example"}};
  const auto lookup = [&env](const char* name) -> const char* {
    const auto found = env.find(name);
    return found == env.end() ? nullptr : found->second.c_str();
  };
  const ProxySettings settings = proxy_from_environment(lookup);
  EXPECT_EQ(settings.https, "http://lower:2");
  EXPECT_EQ(settings.https_source, "https_proxy");
  EXPECT_EQ(settings.http, "http://upper-http:3");
  EXPECT_EQ(settings.http_source, "HTTP_PROXY");
  EXPECT_EQ(settings.no_proxy, "corp.example");  // the empty lowercase one counts as unset

  env.clear();
  const ProxySettings none = proxy_from_environment(lookup);
  EXPECT_EQ(none.http, "");
  EXPECT_EQ(none.https, "");
  EXPECT_EQ(describe_proxies(none), "");
}

TEST(Proxy, TheDescriptionNamesNoCredentials) {
  ProxySettings settings;
  settings.https = "http://alice:SECRET@proxy.corp:3128";
  settings.https_source = "http.proxy";
  settings.http = settings.https;
  settings.http_source = "http.proxy";
  settings.no_proxy = "localhost,.corp";
  EXPECT_EQ(describe_proxies(settings),
            "https:// URLs through http://proxy.corp:3128 (http.proxy), http:// URLs through "
            "http://proxy.corp:3128 (http.proxy); directly to no_proxy=localhost,.corp");
}

TEST(Proxy, AnUnusableProxyIsRefusedAtConstructionWithoutItsPassword) {
  asio::io_context io;
  Settings settings = quick_settings();
  settings.proxy.https = "socks5://alice:SECRET@proxy.corp:1080";
  try {
    Client client{io.get_executor(), settings};
    FAIL() << "a socks5 proxy was accepted";
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("https_proxy"), std::string::npos) << message;
    EXPECT_NE(message.find("only http:// proxies"), std::string::npos) << message;
    EXPECT_EQ(message.find("SECRET"), std::string::npos) << message;
  }
}

TEST(Client, PlainHttpGoesToTheProxyInAbsoluteForm) {
  TestProxy proxy{[](const std::string& head) -> std::optional<Reply> {
    return reply(200, head.starts_with("GET http://") ? "via proxy" : "not absolute");
  }};
  asio::io_context io;
  Settings settings = quick_settings();
  settings.proxy.http = proxy.url("alice:s3cret");
  Client client{io.get_executor(), settings};
  // A name nothing resolves: only the proxy can have answered.
  auto response = run(io, client.get("http://api.invalid:8080/v2/x?sign=SECRET", {}));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->body, "via proxy");
  VectorSink sink;
  auto download = run(io, client.download("http://gta.invalid/part-0.gz?sign=SECRET", {}, sink));
  ASSERT_TRUE(download) << download.error().message;
  EXPECT_EQ(sink.data_, "via proxy");

  const auto heads = proxy.heads();
  ASSERT_EQ(heads.size(), 2u);
  EXPECT_TRUE(heads[0].starts_with("GET http://api.invalid:8080/v2/x?sign=SECRET HTTP/1.1\r\n"))
      << heads[0];
  EXPECT_NE(heads[0].find("Host: api.invalid:8080\r\n"), std::string::npos) << heads[0];
  EXPECT_NE(heads[0].find("Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n"), std::string::npos)
      << heads[0];  // alice:s3cret
  EXPECT_TRUE(heads[1].starts_with("GET http://gta.invalid/part-0.gz?sign=SECRET HTTP/1.1\r\n"))
      << heads[1];
}

TEST(Client, NoProxyHostsAreReachedDirectly) {
  TestServer origin{[](const std::string&, const std::string&) { return reply(200, "direct"); }};
  unsigned short dead = 0;  // a proxy port where nothing listens
  {
    asio::io_context scratch;
    asio::ip::tcp::acceptor acceptor{scratch, {asio::ip::make_address("127.0.0.1"), 0}};
    dead = acceptor.local_endpoint().port();
  }
  asio::io_context io;
  Settings settings = quick_settings();
  settings.proxy.http = "http://alice:s3cret@127.0.0.1:" + std::to_string(dead);
  settings.proxy.no_proxy = "example.com, 127.0.0.1:" + std::to_string(origin.port());
  {
    Client client{io.get_executor(), settings};
    auto response = run(io, client.get(origin.url("/?sign=SECRET"), {}));
    ASSERT_TRUE(response) << response.error().message;
    EXPECT_EQ(response->body, "direct");
  }
  // Without the exemption the request goes to the proxy, which is down: the error names
  // the proxy (without its credentials) and the URL (without its query).
  settings.proxy.no_proxy = "example.com";
  Client client{io.get_executor(), settings};
  auto response = run(io, client.get(origin.url("/data?sign=SECRET"), {}));
  ASSERT_FALSE(response);
  const std::string& message = response.error().message;
  EXPECT_EQ(response.error().kind, Failure::connect) << message;
  EXPECT_NE(message.find("GET " + origin.url("/data") +
                         ": connecting to the proxy http://127.0.0.1:" + std::to_string(dead)),
            std::string::npos)
      << message;
  EXPECT_EQ(message.find("s3cret"), std::string::npos) << message;
  EXPECT_EQ(message.find("alice"), std::string::npos) << message;
  EXPECT_EQ(message.find("SECRET"), std::string::npos) << message;
  EXPECT_EQ(origin.requests(), 1);
}

TEST(Client, AProxyRefusingConnectIsAClearError) {
  for (const unsigned status : {407u, 401u, 403u, 502u}) {
    TestProxy proxy{[status](const std::string&) -> std::optional<Reply> {
      return reply(status, "refused", {"Proxy-Authenticate: Basic realm=\"corp\""});
    }};
    asio::io_context io;
    Settings settings = quick_settings();
    settings.proxy.https = proxy.url("alice:s3cret");
    settings.proxy.https_source = "http.proxy";
    Client client{io.get_executor(), settings};
    VectorSink sink;
    auto response = run(io, client.download("https://gta.invalid/part-0.gz?sign=SECRET", {}, sink));
    ASSERT_FALSE(response) << status;
    const std::string& message = response.error().message;
    EXPECT_EQ(response.error().kind, Failure::connect) << message;
    EXPECT_NE(
        message.find("GET https://gta.invalid/part-0.gz: the proxy " + proxy.url() +
                     " refused CONNECT to gta.invalid:443: " + std::to_string(status) + " Test"),
        std::string::npos)
        << message;
    if (status == 407 || status == 401) {
      EXPECT_NE(message.find("did not accept the proxy's user and password"), std::string::npos)
          << message;
    }
    EXPECT_EQ(message.find("s3cret"), std::string::npos) << message;
    EXPECT_EQ(message.find("alice"), std::string::npos) << message;
    EXPECT_EQ(message.find("SECRET"), std::string::npos) << message;
    EXPECT_TRUE(sink.data_.empty());
    ASSERT_EQ(proxy.heads().size(), 1u);
    EXPECT_TRUE(proxy.heads()[0].starts_with("CONNECT gta.invalid:443 HTTP/1.1\r\n"))
        << proxy.heads()[0];
  }
}

TEST(Client, AProxyAskingForCredentialsOnPlainHttpIsAClearError) {
  TestProxy proxy{[](const std::string&) -> std::optional<Reply> {
    return reply(407, "who are you", {"Proxy-Authenticate: Basic realm=\"corp\""});
  }};
  asio::io_context io;
  Settings settings = quick_settings();
  settings.proxy.http = proxy.url();
  Client client{io.get_executor(), settings};
  auto response = run(io, client.get("http://api.invalid/v2/x?sign=SECRET", {}));
  ASSERT_FALSE(response);
  const std::string& message = response.error().message;
  EXPECT_EQ(response.error().kind, Failure::connect) << message;
  EXPECT_NE(message.find("GET http://api.invalid/v2/x: the proxy " + proxy.url() + " refused"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("it asks for credentials"), std::string::npos) << message;
}

// The origin's certificate names localhost and 127.0.0.1; the SNI it saw is kept.
struct SniSeen {
  std::mutex mutex;
  std::string name;
};

TestServer::TlsTuning remember_sni(SniSeen& seen) {
  return [&seen](asio::ssl::context& context) {
    SSL_CTX_set_tlsext_servername_arg(context.native_handle(), &seen);
    SSL_CTX_set_tlsext_servername_callback(
        context.native_handle(), +[](SSL* ssl, int*, void* arg) {
          auto* out = static_cast<SniSeen*>(arg);
          const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
          std::lock_guard lock{out->mutex};
          out->name = name != nullptr ? name : "";
          return SSL_TLSEXT_ERR_OK;
        });
  };
}

TEST_F(Tls, HttpsGoesThroughAConnectTunnelWithTheOriginsCertificate) {
  SniSeen seen;
  TestServer origin{hello, file("good.pem"), file("good.key"), "127.0.0.1", remember_sni(seen)};
  TestProxy proxy{[](const std::string&) -> std::optional<Reply> { return std::nullopt; }};
  asio::io_context io;
  Settings settings = quick_settings();
  settings.ca_file = file("ca.pem");
  settings.proxy.https = proxy.url("alice:s3cret");
  Client client{io.get_executor(), settings};
  const std::string url = "https://localhost:" + std::to_string(origin.port());
  auto response = run(io, client.get(url + "/v2/x?sign=SECRET", {}));
  ASSERT_TRUE(response) << response.error().message;
  EXPECT_EQ(response->body, "secure");
  {
    std::lock_guard lock{seen.mutex};
    EXPECT_EQ(seen.name, "localhost");  // SNI for the origin, through the tunnel
  }
  VectorSink sink;
  auto download = run(io, client.download(url + "/part-0.gz?sign=SECRET", {}, sink));
  ASSERT_TRUE(download) << download.error().message;
  EXPECT_EQ(sink.data_, "secure");

  EXPECT_EQ(proxy.tunnels(), 2);  // the kept-alive API connection, then the download's own
  const auto heads = proxy.heads();
  ASSERT_EQ(heads.size(), 2u);
  const std::string authority = "localhost:" + std::to_string(origin.port());
  EXPECT_TRUE(heads[0].starts_with("CONNECT " + authority + " HTTP/1.1\r\n")) << heads[0];
  EXPECT_NE(heads[0].find("Host: " + authority + "\r\n"), std::string::npos) << heads[0];
  EXPECT_NE(heads[0].find("Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n"), std::string::npos)
      << heads[0];
  // The query (a link's signature) travels only inside the tunnel.
  EXPECT_EQ(heads[0].find("SECRET"), std::string::npos) << heads[0];
  // The origin saw origin-form requests, without the proxy's credentials.
  for (const std::string& head : origin.heads()) {
    EXPECT_TRUE(head.starts_with("GET /")) << head;
    EXPECT_EQ(head.find("Proxy-Authorization"), std::string::npos) << head;
  }
}

TEST_F(Tls, TheCertificateIsCheckedAgainstTheOriginNotTheProxy) {
  // The origin listens on 127.0.0.2 with a certificate for 127.0.0.1 and localhost: good
  // for the proxy's address, wrong for the origin's. A check against the proxy would pass.
  std::unique_ptr<TestServer> origin;
  try {
    origin = std::make_unique<TestServer>(hello, file("good.pem"), file("good.key"), "127.0.0.2");
  } catch (const std::exception& error) {
    GTEST_SKIP() << "cannot listen on 127.0.0.2: " << error.what();
  }
  TestProxy proxy{[](const std::string&) -> std::optional<Reply> { return std::nullopt; }};
  asio::io_context io;
  Settings settings = quick_settings();
  settings.ca_file = file("ca.pem");
  settings.proxy.https = proxy.url();
  Client client{io.get_executor(), settings};
  expect_refused(run(io, client.get(origin->url("/?sign=SECRET"), {})), "127.0.0.2",
                 "IP address mismatch");
  EXPECT_EQ(proxy.tunnels(), 1);

  // And a name the certificate lacks, behind the same proxy.
  TestServer other{hello, file("other.pem"), file("other.key")};
  expect_refused(
      run(io,
          client.get("https://localhost:" + std::to_string(other.port()) + "/?sign=SECRET", {})),
      "localhost", "hostname mismatch");
  EXPECT_EQ(proxy.tunnels(), 2);
}

}  // namespace
}  // namespace gio::http
