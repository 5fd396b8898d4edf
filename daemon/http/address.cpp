// Address classes, and the guard that applies a LinkPolicy to the addresses of each
// connection.

#include "http/address.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>

#include "http/detail.hpp"

namespace gio::http {

namespace {

using Bytes4 = std::array<unsigned char, 4>;

bool in(std::uint32_t value, std::uint32_t network, int bits) {
  const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
  return (value & mask) == network;
}

AddressClass classify_v4(const Bytes4& bytes) {
  const std::uint32_t v = (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
                          (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
  if (in(v, 0x00000000, 8)) {
    return AddressClass::unspecified;
  }
  if (in(v, 0x7f000000, 8)) {
    return AddressClass::loopback;
  }
  if (in(v, 0x0a000000, 8) || in(v, 0xac100000, 12) || in(v, 0xc0a80000, 16)) {
    return AddressClass::private_use;
  }
  if (in(v, 0x64400000, 10)) {
    return AddressClass::shared;
  }
  if (in(v, 0xa9fe0000, 16)) {
    return AddressClass::link_local;
  }
  if (in(v, 0xe0000000, 4)) {
    return AddressClass::multicast;
  }
  if (in(v, 0xf0000000, 4)) {  // 255.255.255.255 included
    return AddressClass::reserved;
  }
  return AddressClass::global;
}

AddressClass classify_v6(const boost::asio::ip::address_v6::bytes_type& b) {
  const auto zeros = [&b](std::size_t from, std::size_t to) {
    return std::all_of(b.begin() + static_cast<std::ptrdiff_t>(from),
                       b.begin() + static_cast<std::ptrdiff_t>(to),
                       [](unsigned char c) { return c == 0; });
  };
  const auto v4_at = [&b](std::size_t at) {
    return Bytes4{b[at], b[at + 1], b[at + 2], b[at + 3]};
  };
  if (zeros(0, 15)) {
    return b[15] == 0   ? AddressClass::unspecified
           : b[15] == 1 ? AddressClass::loopback
                        : classify_v4(v4_at(12));
  }
  if (zeros(0, 10) && b[10] == 0xff && b[11] == 0xff) {  // ::ffff:a.b.c.d
    return classify_v4(v4_at(12));
  }
  if (zeros(0, 12)) {  // ::a.b.c.d, the deprecated IPv4-compatible form
    return classify_v4(v4_at(12));
  }
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) {
    if (zeros(4, 12)) {  // 64:ff9b::/96, NAT64
      return classify_v4(v4_at(12));
    }
    if (b[4] == 0x00 && b[5] == 0x01) {  // 64:ff9b:1::/48, NAT64 for local networks
      return AddressClass::private_use;
    }
  }
  if (b[0] == 0x20 && b[1] == 0x02) {  // 2002::/16, 6to4 with the IPv4 address after it
    return classify_v4(v4_at(2));
  }
  if ((b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)) {  // fc00::/7, fec0::/10
    return AddressClass::private_use;
  }
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) {  // fe80::/10
    return AddressClass::link_local;
  }
  if (b[0] == 0xff) {
    return AddressClass::multicast;
  }
  return AddressClass::global;
}

unsigned bit(AddressClass kind) {
  return 1u << static_cast<unsigned>(kind);
}

}  // namespace

AddressClass classify_address(const boost::asio::ip::address& address) {
  if (address.is_v4()) {
    return classify_v4(address.to_v4().to_bytes());
  }
  return classify_v6(address.to_v6().to_bytes());
}

std::string_view describe(AddressClass kind) {
  switch (kind) {
    case AddressClass::global:
      return "a public address";
    case AddressClass::loopback:
      return "a loopback address";
    case AddressClass::private_use:
      return "a private address";
    case AddressClass::shared:
      return "a shared (carrier-grade NAT) address";
    case AddressClass::link_local:
      return "a link-local address";
    case AddressClass::unspecified:
      return "an unspecified address";
    case AddressClass::multicast:
      return "a multicast address";
    case AddressClass::reserved:
      return "a reserved or broadcast address";
  }
  return "an unknown kind of address";
}

namespace detail {

AddressGuard::AddressGuard(LinkPolicy policy) : policy_(std::move(policy)) {
  allowed_ = bit(AddressClass::global);
  if (!policy_.enforce || policy_.api_base.empty()) {
    return;
  }
  std::string why;
  if (const auto base = parse_target(policy_.api_base, why)) {
    base_host_ = lowercase(base->host);
    base_port_ = base->port;
  }
}

bool AddressGuard::active() const {
  return policy_.enforce && !policy_.allow_private;
}

bool AddressGuard::is_base(const std::string& host) const {
  return !base_host_.empty() && lowercase(host) == base_host_;
}

void AddressGuard::learn_base(const std::vector<asio::ip::address>& addresses) {
  base_known_ = true;
  allowed_ = bit(AddressClass::global);
  for (const auto& address : addresses) {
    allowed_ |= bit(classify_address(address));
  }
}

std::optional<std::string> AddressGuard::refusal(const std::string& host,
                                                 const asio::ip::address& address) const {
  const AddressClass kind = classify_address(address);
  if (!active() || (allowed_ & bit(kind)) != 0) {
    return std::nullopt;
  }
  boost::system::error_code literal;
  boost::asio::ip::make_address(host, literal);
  std::string out = !literal ? host + " is " : host + " resolves to " + address.to_string() + ", ";
  out += describe(kind);
  out +=
      "; download links may lead only to public addresses and to the API base's kind of "
      "address (http.allow_private_links: true allows every address)";
  return out;
}

}  // namespace detail

}  // namespace gio::http
