// Reading a sink back: verify --sink (Sink::check), the remote manifest, and
// check-config's probe.

#include <set>

#include "sink/sink.hpp"
#include "sink/steps.hpp"

namespace gio::sink {
namespace {

namespace asio = boost::asio;
using detail::Listing;

constexpr std::chrono::minutes kProbeTimeout{2};

// The parts against the manifest: existence and size, and the checksum the remote's own
// manifest recorded where the listing has it.
void check_parts(const archive::Manifest& manifest, const archive::Manifest* remote,
                 const Listing& listing, std::vector<Mismatch>& found) {
  std::map<std::string, std::string> recorded;  // name -> remote hash
  if (remote != nullptr) {
    for (const archive::ManifestFile& file : remote->files) {
      recorded.emplace(file.name, file.remote_hash);
    }
  }
  const std::string checksum = remote == nullptr ? "" : remote->remote_checksum;
  for (const archive::ManifestFile& file : manifest.files) {
    const auto object = listing.find(file.name);
    if (object == listing.end()) {
      found.push_back({file.name, "missing"});
      continue;
    }
    if (object->second.bytes != file.bytes) {
      found.push_back({file.name, "size " + std::to_string(object->second.bytes) +
                                      " != " + std::to_string(file.bytes)});
      continue;
    }
    const auto hash = object->second.hashes.find(checksum);
    const auto expected = recorded.find(file.name);
    if (hash != object->second.hashes.end() && expected != recorded.end() &&
        !expected->second.empty() && hash->second != expected->second) {
      found.push_back({file.name, checksum + " differs"});
    }
  }
}

// The remote manifest against the local one: the same parts (names, sizes, sha256).
bool same_parts(const archive::Manifest& a, const archive::Manifest& b) {
  if (a.job != b.job || a.data_type != b.data_type || a.slot != b.slot ||
      a.files.size() != b.files.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.files.size(); ++i) {
    if (a.files[i].name != b.files[i].name || a.files[i].bytes != b.files[i].bytes ||
        a.files[i].sha256 != b.files[i].sha256) {
      return false;
    }
  }
  return true;
}

}  // namespace

asio::awaitable<std::vector<Mismatch>> Sink::check(archive::Manifest manifest, Slot slot) {
  const detail::Rclone rclone{settings_, rclone_};
  const detail::Partition partition{rclone, settings_.name,
                                    partition_path(manifest.job, manifest.data_type, slot)};
  const std::string manifest_name{archive::kManifestName};
  const std::string success_name{archive::kSuccessName};
  const Listing listing = co_await detail::list(partition);

  std::vector<Mismatch> found;
  std::optional<archive::Manifest> remote;
  if (!listing.contains(manifest_name)) {
    found.push_back({manifest_name, "missing"});
  } else {
    const std::optional<std::string> text = co_await detail::read_object(partition, manifest_name);
    remote = text ? archive::parse_manifest(*text) : std::nullopt;
    if (!remote) {
      found.push_back({manifest_name, "malformed"});
    } else if (!same_parts(*remote, manifest)) {
      found.push_back({manifest_name, "differs from the local manifest"});
    }
  }
  check_parts(manifest, remote ? &*remote : nullptr, listing, found);
  std::set<std::string> listed{manifest_name, success_name};
  for (const archive::ManifestFile& file : manifest.files) {
    listed.insert(file.name);
  }
  for (const auto& [name, object] : listing) {
    if (!listed.contains(name)) {
      found.push_back({name, "not in the manifest"});
    }
  }
  if (!listing.contains(success_name)) {
    found.push_back({success_name, "no _SUCCESS"});
  }
  co_return found;
}

asio::awaitable<std::optional<archive::Manifest>> Sink::remote_manifest(std::string job,
                                                                        std::string data_type,
                                                                        Slot slot) {
  const detail::Rclone rclone{settings_, rclone_};
  const detail::Partition partition{rclone, settings_.name, partition_path(job, data_type, slot)};
  const std::optional<std::string> text =
      co_await detail::read_object(partition, archive::kManifestName);
  co_return text ? archive::parse_manifest(*text) : std::nullopt;
}

asio::awaitable<void> Sink::probe() {
  const detail::Rclone rclone{settings_, rclone_};
  // The top folders only (the jobs'): a bucket's whole listing could be huge.
  std::vector<std::string> arguments{"lsf", "--dirs-only", "--max-depth=1",
                                     detail::remote_path("")};
  const detail::RcloneResult result = co_await rclone.run(std::move(arguments), kProbeTimeout);
  // 3: the remote path does not exist yet; the remote answered, and the first upload
  // creates it.
  if (!result.ok() && !(result.exit_code == 3 && !result.timed_out)) {
    const std::string what = result.error.empty() ? "rclone failed" : result.error;
    throw SinkError(detail::classify(result),
                    "sink " + settings_.name + ": cannot list the remote: " + what);
  }
}

}  // namespace gio::sink
