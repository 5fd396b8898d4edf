#pragma once

// Which network addresses a download link may lead to. The vendor's answers name the
// hosts to fetch from, so a link (or a redirect) to 127.0.0.1, to a cloud metadata
// service at 169.254.169.254 or to a private network would make the daemon fetch what
// only it can reach, and archive it.

#include <boost/asio/ip/address.hpp>
#include <string>
#include <string_view>

namespace gio::http {

enum class AddressClass {
  global,       // none of the below: reachable from the internet
  loopback,     // 127.0.0.0/8, ::1
  private_use,  // 10/8, 172.16/12, 192.168/16 (RFC 1918), fc00::/7 (ULA), fec0::/10
  shared,       // 100.64.0.0/10: carrier-grade NAT
  link_local,   // 169.254/16 (cloud metadata services), fe80::/10
  unspecified,  // 0.0.0.0/8 and :: (a connection to 0.0.0.0 reaches the local host)
  multicast,    // 224/4, ff00::/8
  reserved,     // 240/4 and the broadcast address 255.255.255.255
};

// The class of `address`. An IPv6 address that carries an IPv4 one (IPv4-mapped
// ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) has the
// class of the IPv4 address it reaches.
AddressClass classify_address(const boost::asio::ip::address& address);

// "a loopback address" and the like, for messages.
std::string_view describe(AddressClass kind);

// Which addresses the client may connect to (Settings::links).
struct LinkPolicy {
  // Check the addresses of every connection, after resolving and on every redirect. Off
  // by default (the `fetch` command takes the URLs an operator typed); the daemon sets it.
  bool enforce = false;
  // http.allow_private_links: every address is allowed.
  bool allow_private = false;
  // The API base URL. The classes of its addresses are allowed too: an API on loopback
  // (tests, the demo) or on a private network serves its files from there as well.
  std::string api_base;
};

}  // namespace gio::http
