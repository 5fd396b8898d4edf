#include "sink/sink.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>

#include "archive/checksums.hpp"
#include "sink/steps.hpp"

namespace gio::sink {
namespace {

namespace asio = boost::asio;
using detail::Listing;
using detail::LocalHashes;
using detail::Partition;

constexpr std::chrono::minutes kStepTimeout{5};
// A copy gets kStepTimeout plus a second per MiB (1 MiB/s: a slow link still finishes,
// a hung rclone does not hold the slot for ever).
constexpr std::uint64_t kSlowestBytesPerSecond = 1 << 20;
constexpr int kTransfers = 4;
// A pre-upload's copies at once: 2 per process, and kUploadsPerSink processes, so that
// the remote takes no more of the machine than the landing's own copy would.
constexpr int kPreuploadTransfers = 2;

// A private temporary folder for what rclone reads besides the parts (the list of files
// to copy, the remote manifest, the empty _SUCCESS): the archive is not touched.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "gio-sink-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw SinkError(SinkError::Kind::setup,
                      std::string{"cannot create a temporary folder: "} + std::strerror(errno));
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes `content` to a new file `name` here; returns its path.
  std::filesystem::path write(const std::string& name, std::string_view content) const {
    const std::filesystem::path file = path_ / name;
    std::ofstream out{file, std::ios::binary | std::ios::trunc};
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    if (!out) {
      throw SinkError(SinkError::Kind::setup, "cannot write the temporary file " + file.string());
    }
    return file;
  }

 private:
  std::filesystem::path path_;
};

// The one checksum a partition is verified with: MD5 when every part has one, else
// SHA-1 when every part has that, else none (a part still gets whichever it has).
Checksum partition_checksum(const archive::Manifest& manifest, const Listing& listing) {
  for (const Checksum candidate : {Checksum::md5, Checksum::sha1}) {
    const bool all = !manifest.files.empty() &&
                     std::ranges::all_of(manifest.files, [&](const archive::ManifestFile& file) {
                       const auto found = listing.find(file.name);
                       return found != listing.end() &&
                              found->second.hashes.contains(std::string{to_string(candidate)});
                     });
    if (all) {
      return candidate;
    }
  }
  return Checksum::none;
}

// The local hashes comparing `manifest`'s parts with `listing` needs: each part listed
// with its size, by the checksum its remote object has.
std::vector<std::pair<std::string, Checksum>> hashes_to_compare(const archive::Manifest& manifest,
                                                                const Listing& listing) {
  std::vector<std::pair<std::string, Checksum>> wanted;
  for (const archive::ManifestFile& file : manifest.files) {
    const auto found = listing.find(file.name);
    if (found != listing.end() && found->second.bytes == file.bytes) {
      wanted.emplace_back(file.name, checksum_of(found->second));
    }
  }
  return wanted;
}

// True when the remote object `name` of `listing` is the same as the local part: same
// size, and the same checksum where the remote has one.
asio::awaitable<bool> same(const Partition& partition, LocalHashes& local, const Listing& listing,
                           const archive::ManifestFile& file) {
  const auto found = listing.find(file.name);
  if (found == listing.end() || found->second.bytes != file.bytes) {
    co_return false;
  }
  const Checksum checksum = checksum_of(found->second);
  if (checksum == Checksum::none) {
    co_return true;
  }
  const std::string hex = co_await local.of(partition, file.name, checksum);
  co_return hex == found->second.hashes.at(std::string{to_string(checksum)});
}

// Step 4: every part of `manifest` in `listing`, verified. The remote manifest: the local
// one plus the checksum checked and each part's remote hash. Throws SinkError mismatch.
asio::awaitable<archive::Manifest> verified(const Partition& partition, LocalHashes& local,
                                            archive::Manifest manifest, const Listing& listing) {
  const Checksum checksum = partition_checksum(manifest, listing);
  std::vector<std::pair<std::string, Checksum>> wanted = hashes_to_compare(manifest, listing);
  co_await local.prefetch(partition, std::move(wanted));
  for (archive::ManifestFile& file : manifest.files) {
    const auto found = listing.find(file.name);
    if (found == listing.end()) {
      detail::fail(partition, SinkError::Kind::mismatch, file.name + " is missing after the copy");
    }
    if (found->second.bytes != file.bytes) {
      detail::fail(partition, SinkError::Kind::mismatch,
                   file.name + ": size " + std::to_string(found->second.bytes) +
                       " != " + std::to_string(file.bytes));
    }
    const Checksum own = checksum_of(found->second);
    if (own != Checksum::none) {
      const std::string expected = co_await local.of(partition, file.name, own);
      const std::string& remote = found->second.hashes.at(std::string{to_string(own)});
      if (remote != expected) {
        detail::fail(partition, SinkError::Kind::mismatch,
                     file.name + ": " + std::string{to_string(own)} + " differs");
      }
    }
    if (checksum != Checksum::none) {
      file.remote_hash = found->second.hashes.at(std::string{to_string(checksum)});
    }
  }
  manifest.remote_checksum = std::string{to_string(checksum)};
  co_return manifest;
}

// True when the remote's object `name` holds exactly `content`: by its hash where the
// listing has one, else by reading it (a manifest is small).
asio::awaitable<bool> holds(const Partition& partition, const Listing& listing,
                            const std::string& name, std::string_view content) {
  const auto found = listing.find(name);
  if (found == listing.end() || found->second.bytes != content.size()) {
    co_return false;
  }
  const Checksum checksum = checksum_of(found->second);
  if (checksum != Checksum::none) {
    archive::Digest digest{to_string(checksum)};
    digest.update(content.data(), content.size());
    co_return digest.hex() == found->second.hashes.at(std::string{to_string(checksum)});
  }
  const std::optional<std::string> read = co_await detail::read_object(partition, name);
  co_return read == content;
}

Checksum parse_checksum(std::string_view text) {
  return text == "md5" ? Checksum::md5 : text == "sha1" ? Checksum::sha1 : Checksum::none;
}

// One rclone command that changes the remote; throws SinkError when it fails.
asio::awaitable<void> change(const Partition& partition, std::string_view what,
                             std::vector<std::string> arguments, std::chrono::seconds timeout) {
  const detail::RcloneResult result = co_await partition.rclone.run(std::move(arguments), timeout);
  if (!result.ok()) {
    detail::fail(partition, what, result);
  }
}

// Steps 2 and 3: the remote made ready for the parts, then the parts that differ copied.
asio::awaitable<void> replace(const Partition& partition, const TempDir& temp,
                              const std::filesystem::path& local_dir, const Listing& listing,
                              const std::vector<std::string>& stale,
                              const std::vector<archive::ManifestFile>& copy) {
  const std::string folder = detail::remote_path(partition.path);
  if (listing.contains(std::string{archive::kSuccessName})) {
    std::vector<std::string> arguments{"deletefile",
                                       folder + "/" + std::string{archive::kSuccessName}};
    co_await change(partition, "cannot remove _SUCCESS of", std::move(arguments), kStepTimeout);
  }
  if (!stale.empty()) {
    std::string names;
    for (const std::string& name : stale) {
      names += name + "\n";
    }
    const std::filesystem::path list = temp.write("stale", names);
    std::vector<std::string> arguments{"delete", "--max-depth=1",
                                       "--files-from-raw=" + list.string(), folder};
    co_await change(partition, "cannot remove stale objects of", std::move(arguments),
                    kStepTimeout);
  }
  if (!copy.empty()) {
    std::string names;
    std::uint64_t bytes = 0;
    for (const archive::ManifestFile& file : copy) {
      names += file.name + "\n";
      bytes += file.bytes;
    }
    const std::filesystem::path list = temp.write("copy", names);
    // --no-check-dest: the listing already said which parts differ; rclone copies them
    // (and checks each transfer's hash itself where both ends have one).
    std::vector<std::string> arguments{
        "copy",          "--files-from-raw=" + list.string(),         "--no-check-dest",
        "--no-traverse", "--transfers=" + std::to_string(kTransfers), local_dir.string(),
        folder};
    const auto timeout = kStepTimeout + std::chrono::seconds{bytes / kSlowestBytesPerSecond};
    co_await change(partition, "cannot copy parts to", std::move(arguments), timeout);
  }
}

// Uploads `content` as the partition's object `name` (steps 5 and 6).
asio::awaitable<void> upload(const Partition& partition, const TempDir& temp,
                             const std::string& name, std::string_view content) {
  const std::filesystem::path file = temp.write(name, content);
  std::vector<std::string> arguments{"copyto", "--no-check-dest", file.string(),
                                     detail::remote_path(partition.path + "/" + name)};
  const std::string what = "cannot upload " + name + " to";
  co_await change(partition, what, std::move(arguments), kStepTimeout);
}

}  // namespace

std::string_view to_string(Checksum checksum) {
  switch (checksum) {
    case Checksum::md5:
      return "md5";
    case Checksum::sha1:
      return "sha1";
    case Checksum::none:
      break;
  }
  return "none";
}

Checksum checksum_of(const RemoteObject& object) {
  if (object.hashes.contains("md5")) {
    return Checksum::md5;
  }
  if (object.hashes.contains("sha1")) {
    return Checksum::sha1;
  }
  return Checksum::none;
}

std::string partition_path(std::string_view job, std::string_view data_type, const Slot& slot) {
  std::string path = std::string{job} + "/" + std::string{data_type} + "/dt=" + slot.date();
  if (slot.granularity() == Granularity::hour) {
    path += "/hour=" + slot.hour();
  }
  return path;
}

Sink::Sink(asio::any_io_executor executor, config::Sink settings, asio::thread_pool& hash_pool,
           std::filesystem::path rclone)
    : executor_(std::move(executor)),
      settings_(std::move(settings)),
      hash_pool_(hash_pool),
      rclone_(std::move(rclone)) {}

asio::awaitable<Landed> Sink::land(std::filesystem::path local_dir, archive::Manifest manifest,
                                   Slot slot) {
  const detail::Rclone rclone{settings_, rclone_};
  const Partition partition{rclone, settings_.name,
                            partition_path(manifest.job, manifest.data_type, slot)};
  LocalHashes local{hash_pool_, local_dir};
  const std::string manifest_name{archive::kManifestName};
  const std::string success_name{archive::kSuccessName};

  // 1. What the remote holds, and what differs from the local partition.
  Listing listing = co_await detail::list(partition);
  std::vector<std::pair<std::string, Checksum>> wanted = hashes_to_compare(manifest, listing);
  co_await local.prefetch(partition, std::move(wanted));
  std::set<std::string> listed;
  std::vector<archive::ManifestFile> copy;
  Landed landed;
  for (const archive::ManifestFile& file : manifest.files) {
    listed.insert(file.name);
    if (!co_await same(partition, local, listing, file)) {
      copy.push_back(file);
      landed.uploaded_bytes += file.bytes;
    }
  }
  std::vector<std::string> stale;
  for (const auto& [name, object] : listing) {
    if (!listed.contains(name) && name != manifest_name && name != success_name) {
      stale.push_back(name);
    }
  }
  // Already landed: every part the same, the same remote manifest, _SUCCESS there.
  // Nothing is touched, so a reader never sees its _SUCCESS go and come back.
  if (copy.empty() && stale.empty()) {
    const archive::Manifest remote = co_await verified(partition, local, manifest, listing);
    const std::string text = archive::to_json(remote);
    const bool marked = listing.contains(success_name);
    if (marked && co_await holds(partition, listing, manifest_name, text)) {
      landed.checked = parse_checksum(remote.remote_checksum);
      co_return landed;
    }
  }

  // 2, 3. _SUCCESS and stale objects removed, the parts that differ copied.
  const TempDir temp;
  co_await replace(partition, temp, local_dir, listing, stale, copy);
  landed.uploaded = copy.size();
  // 4. Every part verified where it landed.
  if (!copy.empty()) {
    listing = co_await detail::list(partition);
  }
  const archive::Manifest remote = co_await verified(partition, local, manifest, listing);
  landed.checked = parse_checksum(remote.remote_checksum);
  // 5. The remote manifest. rclone's copyto checks the object it wrote: its size and,
  // where the backend has a hash, that hash against the local file's, as the parts are
  // checked. (On a backend without hashes that is the size alone: the manifest is no
  // longer read back, which cost two more rclone processes per partition.)
  const std::string text = archive::to_json(remote);
  if (!co_await holds(partition, listing, manifest_name, text)) {
    co_await upload(partition, temp, manifest_name, text);
    ++landed.uploaded;
    landed.uploaded_bytes += text.size();
  }
  // 6. _SUCCESS, last.
  co_await upload(partition, temp, success_name, "");
  ++landed.uploaded;
  co_return landed;
}

asio::awaitable<void> Sink::unmark(std::string job, std::string data_type, Slot slot) {
  const detail::Rclone rclone{settings_, rclone_};
  const Partition partition{rclone, settings_.name, partition_path(job, data_type, slot)};
  // `delete` with a filter rather than `deletefile`: it succeeds when there is no
  // _SUCCESS, and says "directory not found" (exit 3) when there is no folder yet, where
  // deletefile fails alike for an absent object and an unreachable remote.
  std::vector<std::string> arguments{"delete", "--max-depth=1",
                                     "--include=/" + std::string{archive::kSuccessName},
                                     detail::remote_path(partition.path)};
  const detail::RcloneResult result = co_await rclone.run(std::move(arguments), kStepTimeout);
  constexpr int kDirectoryNotFound = 3;
  if (!result.ok() && !(result.exit_code == kDirectoryNotFound && !result.timed_out)) {
    detail::fail(partition, "cannot remove _SUCCESS of", result);
  }
}

asio::awaitable<void> Sink::preupload(std::vector<std::filesystem::path> files, std::string job,
                                      std::string data_type, Slot slot) {
  if (files.empty()) {
    co_return;
  }
  const detail::Rclone rclone{settings_, rclone_};
  const Partition partition{rclone, settings_.name, partition_path(job, data_type, slot)};
  std::uint64_t bytes = 0;
  std::string names;
  for (const std::filesystem::path& file : files) {
    std::error_code error;
    const std::uintmax_t size = std::filesystem::file_size(file, error);
    bytes += error ? 0 : size;
    names += file.filename().string() + "\n";
  }
  const auto timeout = kStepTimeout + std::chrono::seconds{bytes / kSlowestBytesPerSecond};
  const std::string folder = detail::remote_path(partition.path);
  if (files.size() == 1) {
    const std::string name = files.front().filename().string();
    std::vector<std::string> arguments{"copyto", "--no-check-dest", files.front().string(),
                                       folder + "/" + name};
    co_await change(partition, "cannot pre-upload " + name + " to", std::move(arguments), timeout);
    co_return;
  }
  // Several parts published while the permits were taken: one process for them all,
  // as each rclone start costs the machine about 0.1 s of CPU.
  const TempDir temp;
  const std::filesystem::path list = temp.write("copy", names);
  std::vector<std::string> arguments{"copy",
                                     "--files-from-raw=" + list.string(),
                                     "--no-check-dest",
                                     "--no-traverse",
                                     "--transfers=" + std::to_string(kPreuploadTransfers),
                                     files.front().parent_path().string(),
                                     folder};
  const std::string what = "cannot pre-upload " + std::to_string(files.size()) + " parts to";
  co_await change(partition, what, std::move(arguments), timeout);
}

void Sink::end_all() {
  detail::end_all_rclones();
}

}  // namespace gio::sink
