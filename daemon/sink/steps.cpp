#include "sink/steps.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <chrono>

#include "archive/checksums.hpp"
#include "async/async.hpp"
#include "async/on_pool.hpp"

namespace gio::sink::detail {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

// rclone exits 3 when a folder is not there, 4 when a file is not: for a partition not
// landed yet, an empty listing.
constexpr int kDirectoryNotFound = 3;
constexpr int kFileNotFound = 4;
// A listing holds a partition's parts (a few hundred at most); a manifest is smaller.
constexpr std::size_t kMaxListing = 64 << 20;
constexpr std::size_t kMaxObject = 16 << 20;
// Listing hashes a local or SFTP remote's files (rclone reads them): minutes for GiBs.
constexpr std::chrono::minutes kListTimeout{15};
constexpr std::chrono::minutes kReadTimeout{5};

std::string text_of(const json::string& text) {
  return {text.data(), text.size()};
}

}  // namespace

void fail(const Partition& partition, std::string_view what, const RcloneResult& result) {
  std::string message = "sink " + partition.sink + ": " + std::string{what} + " " + partition.path;
  message += ": " + (result.error.empty() ? "rclone failed" : result.error);
  if (result.exit_code > 0) {
    message += " (rclone exit status " + std::to_string(result.exit_code) + ")";
  }
  throw SinkError(classify(result), message);
}

void fail(const Partition& partition, SinkError::Kind kind, std::string_view what) {
  throw SinkError(kind,
                  "sink " + partition.sink + ": " + partition.path + ": " + std::string{what});
}

std::optional<Listing> parse_listing(std::string_view text) {
  boost::system::error_code error;
  const json::value root = json::parse(json::string_view{text.data(), text.size()}, error);
  if (error || !root.is_array()) {
    return std::nullopt;
  }
  Listing listing;
  for (const json::value& entry : root.get_array()) {
    const json::object* fields = entry.if_object();
    if (fields == nullptr) {
      return std::nullopt;
    }
    const json::value* name = fields->if_contains("Name");
    const json::value* size = fields->if_contains("Size");
    const json::value* is_dir = fields->if_contains("IsDir");
    if (name == nullptr || !name->is_string() || size == nullptr || !size->is_number()) {
      return std::nullopt;
    }
    if (is_dir != nullptr && is_dir->is_bool() && is_dir->get_bool()) {
      continue;
    }
    error.clear();
    const auto bytes = size->to_number<std::int64_t>(error);
    if (error || bytes < 0) {
      return std::nullopt;  // -1: a size the backend does not know
    }
    RemoteObject object{.name = text_of(name->get_string()),
                        .bytes = static_cast<std::uint64_t>(bytes),
                        .hashes = {}};
    if (const json::value* hashes = fields->if_contains("Hashes"); hashes && hashes->is_object()) {
      for (const auto& [kind, value] : hashes->get_object()) {
        // An empty hash: the backend has none for this object (e.g. a multipart upload).
        if (value.is_string() && !value.get_string().empty()) {
          object.hashes.emplace(std::string{kind}, text_of(value.get_string()));
        }
      }
    }
    std::string key = object.name;
    listing.emplace(std::move(key), std::move(object));
  }
  return listing;
}

asio::awaitable<Listing> list(const Partition& partition) {
  std::vector<std::string> arguments{"lsjson",
                                     "--files-only",
                                     "--no-mimetype",
                                     "--no-modtime",
                                     "--hash-type=md5",
                                     "--hash-type=sha1",
                                     remote_path(partition.path)};
  const RcloneResult result =
      co_await partition.rclone.run(std::move(arguments), kListTimeout, kMaxListing);
  if (result.exit_code == kDirectoryNotFound && !result.timed_out) {
    co_return Listing{};
  }
  if (!result.ok()) {
    fail(partition, "cannot list", result);
  }
  if (result.output_truncated) {
    fail(partition, SinkError::Kind::refused, "the listing is larger than 64 MiB");
  }
  std::optional<Listing> listing = parse_listing(result.output);
  if (!listing) {
    fail(partition, SinkError::Kind::unavailable, "rclone lsjson printed no listing");
  }
  co_return std::move(*listing);
}

asio::awaitable<std::optional<std::string>> read_object(const Partition& partition,
                                                        std::string_view name) {
  std::vector<std::string> arguments{"cat", remote_path(partition.path + "/" + std::string{name})};
  RcloneResult result =
      co_await partition.rclone.run(std::move(arguments), kReadTimeout, kMaxObject);
  if ((result.exit_code == kDirectoryNotFound || result.exit_code == kFileNotFound) &&
      !result.timed_out) {
    co_return std::nullopt;
  }
  if (!result.ok()) {
    fail(partition, "cannot read " + std::string{name} + " of", result);
  }
  co_return std::move(result.output);
}

asio::awaitable<std::string> LocalHashes::of(const Partition& partition, const std::string& name,
                                             Checksum checksum) {
  const auto key = std::make_pair(name, checksum);
  if (const auto known = known_.find(key); known != known_.end()) {
    co_return known->second;
  }
  struct Hashed {
    std::string hex, error;
  };
  const std::string algorithm{to_string(checksum)};
  auto hash = [path = dir_ / name, algorithm]() -> Hashed {
    try {
      return {archive::file_digest_hex(algorithm, path), ""};
    } catch (const std::exception& error) {
      return {"", error.what()};
    }
  };
  const Hashed hashed = co_await async::on_pool<Hashed>(pool_, std::move(hash));
  if (!hashed.error.empty()) {
    fail(partition, SinkError::Kind::setup, "the staged part " + name + ": " + hashed.error);
  }
  known_.emplace(key, hashed.hex);
  co_return hashed.hex;
}

asio::awaitable<void> LocalHashes::prefetch(const Partition& partition,
                                            std::vector<std::pair<std::string, Checksum>> wanted) {
  async::TaskGroup group{co_await asio::this_coro::executor};
  for (auto& [name, checksum] : wanted) {
    if (checksum == Checksum::none || known_.contains({name, checksum})) {
      continue;
    }
    group.spawn(
        [this, &partition, name = std::move(name), checksum = checksum]() -> asio::awaitable<void> {
          co_await of(partition, name, checksum);
        });
  }
  co_await group.wait();
}

}  // namespace gio::sink::detail
