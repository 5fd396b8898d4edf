#pragma once

// Sinks (issue 15): a job's partitions landed on an rclone remote, with the archive's
// layout under the remote path, and verified there.
//
//   <remote>/<job>/<type or chart id>/dt=YYYY-MM-DD[/hour=HH]/<parts>
//   .../_manifest.json, then .../_SUCCESS                  per partition, in that order
//
// The local archive is the staging area: a complete local partition (its _SUCCESS and
// _manifest.json written by archive::Archive) is landed by Sink::land, and only a landed
// partition counts as done. Every step is idempotent, so a crash or SIGKILL at any point
// is resumed by landing the partition again:
//   1. list the remote partition (sizes and the backend's hashes);
//   2. remove a _SUCCESS that is there (a reader must not trust a partition being
//      rewritten), and every object the manifest does not list (an earlier answer's);
//   3. copy the parts whose remote object is missing or differs (size or hash);
//   4. list again and check every part: size, and the checksum the backend has (MD5 on
//      S3-likes and WebDAV servers that give one, SHA-1 elsewhere), computed locally from
//      the staged file for the comparison;
//   5. upload _manifest.json, the local manifest plus which checksum was checked and each
//      part's remote hash (rclone checks the object it wrote: size, and the hash where
//      the backend has one);
//   6. upload _SUCCESS (empty), last.
//
// rclone runs as a child process per step (see docs/architecture.md for the measured
// choice against `rclone rcd`), in a process group of its own, with a clean environment:
// the remote string (it may hold credentials in an on-the-fly backend string) reaches
// rclone through the environment as an alias remote, never through argv, and neither it
// nor rclone's raw output reaches a log line or an error message unredacted.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "archive/archive.hpp"
#include "config/config.hpp"
#include "slot/slot.hpp"

namespace gio::sink {

// The checksum a partition's objects were verified with on the remote.
enum class Checksum { none, md5, sha1 };
std::string_view to_string(Checksum checksum);  // "none", "md5", "sha1"

// One object of a remote folder, as rclone lists it.
struct RemoteObject {
  std::string name;
  std::uint64_t bytes = 0;
  // "md5"/"sha1" -> lowercase hex, as the backend has them.
  std::map<std::string, std::string> hashes;

  friend bool operator==(const RemoteObject&, const RemoteObject&) = default;
};

// What landing a partition did.
struct Landed {
  Checksum checked = Checksum::none;
  // Objects copied by this call, parts, _manifest.json and _SUCCESS (0: the remote
  // already held the partition, and nothing was touched).
  std::size_t uploaded = 0;
  std::uint64_t uploaded_bytes = 0;  // of the parts and manifest copied
};

// One way the remote differs from a manifest (verify --sink).
struct Mismatch {
  std::string object;  // the object's name in the partition
  std::string what;    // "missing", "size 10 != 12", "md5 differs", "no _SUCCESS", ...

  friend bool operator==(const Mismatch&, const Mismatch&) = default;
};

// A failure of rclone or of the remote. The message names the sink and the remote
// partition path (relative, as the archive names it), never the remote string, and
// carries rclone's last error line, redacted and bounded.
class SinkError : public std::runtime_error {
 public:
  enum class Kind {
    unavailable,  // rclone could not reach the remote (network, 5xx, timeout): try again later
    // The remote refused (permissions, quota, bad bucket): still retried, but a person
    // is needed.
    refused,
    mismatch,  // what was uploaded does not verify (size or checksum)
    setup,     // rclone is missing or the remote does not parse
  };
  SinkError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// The remote folder of a partition, relative to the remote path: the archive's own
// relative layout, "<job>/<type>/dt=YYYY-MM-DD[/hour=HH]".
std::string partition_path(std::string_view job, std::string_view data_type, const Slot& slot);

class Sink {
 public:
  // `hash_pool` computes the local MD5/SHA-1 of parts off the event loop. `rclone` is the
  // program to run ("rclone": found on PATH); tests may point it elsewhere.
  Sink(boost::asio::any_io_executor executor, config::Sink settings,
       boost::asio::thread_pool& hash_pool, std::filesystem::path rclone = "rclone");

  const std::string& name() const { return settings_.name; }

  // Lands the complete local partition `local_dir` (its parts as `manifest` lists them)
  // in the remote folder partition_path(manifest's job, type, slot), as the steps above
  // say. Throws SinkError. Idempotent: a partition already landed is only listed and
  // checked.
  boost::asio::awaitable<Landed> land(std::filesystem::path local_dir, archive::Manifest manifest,
                                      Slot slot);

  // Overlap with the download (pre-upload): while a slot downloads, each part published
  // into the archive is copied at once to its remote partition, so that the landing
  // finds it there and copies only what is missing or differs. Landing stays the only
  // judge (it lists, verifies, writes the manifest and _SUCCESS), so a pre-upload that
  // failed or was cut short costs nothing but the copy again.
  //
  // Removes the remote partition's _SUCCESS (nothing when it has none, or no folder):
  // called before the first part of a partition is rewritten, so that a reader never
  // sees a _SUCCESS over a partition that is changing. Throws SinkError.
  boost::asio::awaitable<void> unmark(std::string job, std::string data_type, Slot slot);
  // Copies the local parts `files` (of one local partition folder) to the remote
  // partition, under their own names, in one rclone process. Throws SinkError.
  boost::asio::awaitable<void> preupload(std::vector<std::filesystem::path> files, std::string job,
                                         std::string data_type, Slot slot);

  // The remote partition against `manifest` (existence, size, checksum of every part;
  // the remote's _manifest.json and _SUCCESS): empty when it holds exactly that. Throws
  // SinkError when the remote cannot be listed.
  boost::asio::awaitable<std::vector<Mismatch>> check(archive::Manifest manifest, Slot slot);

  // The remote partition's manifest, nullopt when it has none (or a malformed one).
  boost::asio::awaitable<std::optional<archive::Manifest>> remote_manifest(std::string job,
                                                                           std::string data_type,
                                                                           Slot slot);

  // check-config without the network: rclone runs (`rclone version`), and the remote
  // parses (an on-the-fly backend is one this rclone has, its parameters well quoted; a
  // named remote is in rclone's config). Returns rclone's version line. Throws SinkError
  // (setup).
  boost::asio::awaitable<std::string> validate();

  // Lists the remote's root folder: check-config's "can be listed". True when it exists,
  // false when the remote answered that it does not (yet: the first upload creates it).
  // Throws SinkError.
  boost::asio::awaitable<bool> probe();

  // Ends every rclone process still running (the daemon's stop): SIGTERM to its group,
  // SIGKILL after a grace period.
  static void end_all();

 private:
  boost::asio::any_io_executor executor_;
  config::Sink settings_;
  boost::asio::thread_pool& hash_pool_;
  std::filesystem::path rclone_;
};

// Which Checksum to check a remote object with: md5 when the listing has one, else sha1,
// else none.
Checksum checksum_of(const RemoteObject& object);

}  // namespace gio::sink
