#pragma once

// The steps landing and checking share (sink.cpp, check.cpp): listing a remote
// partition, reading one of its objects, hashing staged files off the loop, and the
// SinkError a failed command becomes.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sink/rclone.hpp"
#include "sink/sink.hpp"

namespace gio::sink::detail {

using Listing = std::map<std::string, RemoteObject>;  // by name

// One partition of one sink, as the steps see it.
struct Partition {
  const Rclone& rclone;
  const std::string& sink;  // the sink's name, for messages
  std::string path;         // relative to the remote: <job>/<type>/dt=.../hour=..
};

// "sink lake: <what> shop/visit/dt=2026-11-22/hour=03: <rclone's last error line>".
[[noreturn]] void fail(const Partition& partition, std::string_view what,
                       const RcloneResult& result);
[[noreturn]] void fail(const Partition& partition, SinkError::Kind kind, std::string_view what);

// rclone lsjson's JSON as objects by name; nullopt when it is not such a listing.
std::optional<Listing> parse_listing(std::string_view json);

// The partition's objects (files only, not below it) with the backend's MD5 and SHA-1
// where it has them; empty when the folder does not exist.
boost::asio::awaitable<Listing> list(const Partition& partition);

// The bytes of the partition's object `name`; nullopt when there is no such object.
boost::asio::awaitable<std::optional<std::string>> read_object(const Partition& partition,
                                                               std::string_view name);

// Local MD5 or SHA-1 of staged files, computed on the hash pool once per file and kind.
class LocalHashes {
 public:
  LocalHashes(boost::asio::thread_pool& pool, std::filesystem::path dir)
      : pool_(pool), dir_(std::move(dir)) {}
  // Throws SinkError (setup) naming the file when it cannot be read.
  boost::asio::awaitable<std::string> of(const Partition& partition, const std::string& name,
                                         Checksum checksum);
  // Hashes every (name, checksum) not known yet at once, one pool job each: the pool's
  // threads share the work instead of one part after another. Throws as of() does,
  // after every job has ended.
  boost::asio::awaitable<void> prefetch(const Partition& partition,
                                        std::vector<std::pair<std::string, Checksum>> wanted);

 private:
  boost::asio::thread_pool& pool_;
  std::filesystem::path dir_;
  std::map<std::pair<std::string, Checksum>, std::string> known_;
};

}  // namespace gio::sink::detail
