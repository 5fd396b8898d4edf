// Forward proxies: the proxy URL, curl's NO_PROXY rules, the environment's variables and
// the CONNECT tunnel that https:// requests take through a proxy.

#include "http/proxy.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <cctype>
#include <charconv>

#include "http/detail.hpp"

namespace gio::http {

namespace {

namespace urls = boost::urls;

bool is_port(std::string_view text) {
  unsigned number = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  return error == std::errc{} && end == text.data() + text.size() && number >= 1 && number <= 65535;
}

std::string base64(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int size = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                   reinterpret_cast<const unsigned char*>(data.data()),
                                   static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(size));
  return out;
}

// One NO_PROXY entry split into its host part and its port ("" for any port).
struct Pattern {
  std::string_view host;
  std::string_view port;
};

std::optional<Pattern> split_entry(std::string_view entry) {
  if (entry.front() == '[') {  // [v6-address] or [v6-address]:port
    const auto close = entry.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    const std::string_view rest = entry.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      return std::nullopt;
    }
    return Pattern{entry.substr(1, close - 1), rest.empty() ? rest : rest.substr(1)};
  }
  const auto colon = entry.find(':');
  if (colon != std::string_view::npos && entry.find(':', colon + 1) == std::string_view::npos) {
    return Pattern{entry.substr(0, colon), entry.substr(colon + 1)};  // name:port or v4:port
  }
  return Pattern{entry, {}};  // a name, or an IPv6 address without brackets
}

// `pattern` is an address, or an address/bits network: whether `address` is in it.
bool address_matches(std::string_view pattern, const boost::asio::ip::address& address) {
  const auto slash = pattern.find('/');
  boost::system::error_code ec;
  const auto network = boost::asio::ip::make_address(std::string{pattern.substr(0, slash)}, ec);
  if (ec || network.is_v4() != address.is_v4()) {
    return false;
  }
  const auto as_bytes = [](const boost::asio::ip::address& a) {
    if (a.is_v4()) {
      const auto bytes = a.to_v4().to_bytes();
      return std::string(bytes.begin(), bytes.end());
    }
    const auto bytes = a.to_v6().to_bytes();
    return std::string(bytes.begin(), bytes.end());
  };
  const std::string want = as_bytes(network);
  const std::string have = as_bytes(address);
  unsigned bits = static_cast<unsigned>(want.size() * 8);
  if (slash != std::string_view::npos) {
    const std::string_view text = pattern.substr(slash + 1);
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), bits);
    if (error != std::errc{} || end != text.data() + text.size() || bits > want.size() * 8) {
      return false;
    }
  }
  const std::size_t whole = bits / 8;
  if (want.compare(0, whole, have, 0, whole) != 0) {
    return false;
  }
  const unsigned rest = bits % 8;
  const auto mask = static_cast<unsigned char>(0xff << (8 - rest));
  return rest == 0 ||
         ((static_cast<unsigned char>(want[whole]) ^ static_cast<unsigned char>(have[whole])) &
          mask) == 0;
}

bool name_matches(std::string_view pattern, const std::string& host) {
  while (!pattern.empty() && pattern.front() == '.') {
    pattern.remove_prefix(1);
  }
  while (!pattern.empty() && pattern.back() == '.') {
    pattern.remove_suffix(1);
  }
  if (pattern.empty()) {
    return false;
  }
  const std::string name = detail::lowercase(pattern);
  return host == name || (host.size() > name.size() && host.ends_with(name) &&
                          host[host.size() - name.size() - 1] == '.');
}

}  // namespace

std::optional<Proxy> parse_proxy(std::string_view text, std::string& why) {
  std::string url{text};
  if (url.find("://") == std::string::npos) {
    url.insert(0, "http://");  // "proxy.corp:3128", as curl takes it
  }
  auto parsed = urls::parse_uri(url);
  if (!parsed) {
    why = "not a valid URL (write http://host:port, or http://user:password@host:port)";
    return std::nullopt;
  }
  const urls::url_view& view = *parsed;
  if (view.scheme_id() != urls::scheme::http) {
    why = "only http:// proxies are supported (the scheme is " + detail::lowercase(view.scheme()) +
          ")";
    return std::nullopt;
  }
  Proxy proxy;
  proxy.host = view.host_address();
  if (proxy.host.empty()) {
    why = "the proxy URL has no host";
    return std::nullopt;
  }
  if (view.has_port() && !is_port(view.port())) {
    why = "the proxy URL has an invalid port";
    return std::nullopt;
  }
  if (!(view.encoded_path().empty() || view.encoded_path() == "/") || view.has_query() ||
      view.has_fragment()) {
    why = "a proxy URL has no path, query or fragment (write http://host:port)";
    return std::nullopt;
  }
  proxy.port = view.has_port() ? std::string{view.port()} : "1080";
  const bool v6 = view.host_type() == urls::host_type::ipv6;
  proxy.shown = "http://" + (v6 ? "[" + proxy.host + "]" : proxy.host) + ":" + proxy.port;
  if (view.has_userinfo()) {
    proxy.authorization = "Basic " + base64(view.userinfo());
  }
  return proxy;
}

bool no_proxy_matches(std::string_view list, std::string_view host, std::string_view port) {
  std::string name = detail::lowercase(host);
  while (!name.empty() && name.back() == '.') {
    name.pop_back();
  }
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(name, ec);
  const bool is_address = !ec;
  std::size_t start = 0;
  while (start < list.size()) {
    const auto end = std::min(list.find_first_of(", \t", start), list.size());
    const std::string_view entry = list.substr(start, end - start);
    start = end + 1;
    if (entry.empty()) {
      continue;
    }
    if (entry == "*") {
      return true;
    }
    const auto pattern = split_entry(entry);
    if (!pattern || (!pattern->port.empty() && pattern->port != port)) {
      continue;
    }
    // An address is not a name: 127.0.0.1 is no "subdomain" of 0.0.1.
    if (is_address ? address_matches(pattern->host, address) : name_matches(pattern->host, name)) {
      return true;
    }
  }
  return false;
}

ProxySettings proxy_from_environment(const std::function<const char*(const char*)>& lookup) {
  // Lowercase first, as curl and wget; an empty value is as good as unset.
  const auto read = [&](const char* lower, const char* upper, std::string* source) {
    for (const char* name : {lower, upper}) {
      const char* value = lookup(name);
      if (value != nullptr && *value != '\0') {
        if (source != nullptr) {
          *source = name;
        }
        return std::string{value};
      }
    }
    return std::string{};
  };
  ProxySettings settings;
  settings.http = read("http_proxy", "HTTP_PROXY", &settings.http_source);
  settings.https = read("https_proxy", "HTTPS_PROXY", &settings.https_source);
  settings.no_proxy = read("no_proxy", "NO_PROXY", nullptr);
  return settings;
}

std::string describe_proxies(const ProxySettings& settings) {
  std::string out;
  const auto add = [&out](std::string_view kind, const std::string& url,
                          const std::string& source) {
    if (url.empty()) {
      return;
    }
    std::string why;
    const auto proxy = parse_proxy(url, why);
    out += (out.empty() ? "" : ", ") + std::string{kind} + " URLs through " +
           (proxy ? proxy->shown : std::string{"an invalid proxy"}) + " (" + source + ")";
  };
  add("https://", settings.https, settings.https_source);
  add("http://", settings.http, settings.http_source);
  if (!out.empty() && !settings.no_proxy.empty()) {
    out += "; directly to no_proxy=" + settings.no_proxy;
  }
  return out;
}

namespace detail {

std::string proxy_refusal(const Proxy& proxy, std::string_view what, unsigned status,
                          std::string_view reason) {
  // The reason phrase comes from the network: only printable ASCII, and not much of it.
  std::string phrase;
  for (const char c : reason.substr(0, 80)) {
    phrase += (c >= ' ' && c <= '~') ? c : '?';
  }
  std::string out = "the proxy " + proxy.shown + " refused " + std::string{what} + ": " +
                    std::to_string(status) + (phrase.empty() ? "" : " " + phrase);
  // 407 is the standard answer; some proxies (tinyproxy, for wrong credentials) say 401.
  if (status == 407 || status == 401) {
    out += proxy.authorization.empty()
               ? " (it asks for credentials: write the proxy as http://user:password@host:port)"
               : " (it did not accept the proxy's user and password)";
  } else if (status == 403) {
    out += " (its rules do not allow this host or port)";
  }
  return out;
}

asio::awaitable<std::optional<Error>> open_tunnel(beast::tcp_stream& stream,
                                                  beast::flat_buffer& buffer, const Target& target,
                                                  const Proxy& proxy, const std::string& shown,
                                                  const Settings& settings) {
  const bool v6 = target.host.find(':') != std::string::npos;
  const std::string authority = (v6 ? "[" + target.host + "]" : target.host) + ":" + target.port;
  bhttp::request<bhttp::empty_body> request{bhttp::verb::connect, authority, 11};
  request.set(bhttp::field::host, authority);
  request.set(bhttp::field::user_agent, settings.user_agent);
  if (!proxy.authorization.empty()) {
    request.set(bhttp::field::proxy_authorization, proxy.authorization);
  }
  const std::string step = "CONNECT " + authority + " through the proxy " + proxy.shown;
  stream.expires_after(settings.timeout);
  auto [write_ec, written] = co_await bhttp::async_write(stream, request, kTuple);
  if (write_ec) {
    co_return failure(shown, step, write_ec, Failure::connect, settings.timeout);
  }
  bhttp::response_parser<bhttp::empty_body> parser;
  parser.skip(true);  // an answer to CONNECT has no body: the tunnel (or nothing) follows
  parser.header_limit(16 << 10);
  stream.expires_after(settings.timeout);
  auto [read_ec, read] = co_await bhttp::async_read(stream, buffer, parser, kTuple);
  if (read_ec) {
    co_return failure(shown, step, read_ec, Failure::connect, settings.timeout);
  }
  const auto& answer = parser.get();
  if (answer.result_int() / 100 != 2) {
    co_return Error{Failure::connect, shown + ": " +
                                          proxy_refusal(proxy, "CONNECT to " + authority,
                                                        answer.result_int(), answer.reason())};
  }
  if (buffer.size() != 0) {
    // The origin speaks only after our ClientHello: these bytes are not the tunnel's.
    co_return Error{Failure::protocol, shown + ": the proxy " + proxy.shown +
                                           " sent data after its answer to CONNECT"};
  }
  co_return std::nullopt;
}

}  // namespace detail

}  // namespace gio::http
