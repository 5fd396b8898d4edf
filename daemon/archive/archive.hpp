#pragma once

// The archive: where verified files go and how they become visible.
//
//   <root>/<job>/<data_type>/dt=YYYY-MM-DD/hour=HH/<file>   hour slots (Beijing date and hour)
//   <root>/<job>/<data_type>/dt=YYYY-MM-DD/<file>           day slots
//   .../_manifest.json, then .../_SUCCESS                   per partition, in that order
//   <root>/.staging/                                        partial files (hidden from Hive/Spark)
//
// A file enters a partition only as a StagedFile (staged_file.hpp): written in the
// staging folder on the same file system, fsynced, renamed into place, followed by fsync
// of the folder. Nothing below the root that is a symlink is ever followed when writing.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "archive/staged_file.hpp"
#include "slot/slot.hpp"

namespace gio::archive {

inline constexpr std::string_view kManifestName = "_manifest.json";
inline constexpr std::string_view kSuccessName = "_SUCCESS";
inline constexpr std::string_view kStagingName = ".staging";
// A manifest's rows_note when its rows are not counted and no reason is given.
inline constexpr std::string_view kRowsNotCounted = "not counted";
// ... and the reason a size-only job gives (archive/verify_mode.hpp).
inline constexpr std::string_view kRowsNotCountedSize = "not counted: verify is size";
// Longest file name (bytes) taken from a link; leaves room below NAME_MAX (255).
inline constexpr std::size_t kMaxFileNameBytes = 200;
inline constexpr std::size_t kMaxDataTypeBytes = 64;
// What the archive's files and folders do not grant: 0640 files, 0750 folders (group may
// read, others nothing). Applied exactly, whatever the process umask.
inline constexpr unsigned kDefaultUmask = 0027;

struct ManifestFile {
  std::string name;
  std::uint64_t bytes = 0;
  std::string sha256;
  // A sink's copy of the manifest only (sink/sink.hpp): the remote object's own checksum
  // (Manifest::remote_checksum) as it was verified; "" on the local manifest.
  std::string remote_hash{};
  // CSV records in the file, header excluded (archive/csv_rows.hpp), counted as it was
  // verified; nullopt when not counted (a size-only job, or a manifest written before
  // rows were counted).
  std::optional<std::uint64_t> rows{};
  // The header's field names, in order; empty when not counted. The state keeps rows but
  // not headers: a part an earlier pass archived has its header read again from its
  // first line (read_csv_header) when its partition is completed.
  std::vector<std::string> columns{};
  // A daily raw part only: records per Beijing hour (UTC+8) of its `time` column, 24
  // entries; empty otherwise. Records without a usable time are in `rows` only, so the
  // sum may be less than rows.
  std::vector<std::uint64_t> rows_by_hour{};

  friend bool operator==(const ManifestFile&, const ManifestFile&) = default;
};

struct Manifest {
  std::string job, data_type, slot;  // slot name, e.g. 2026-11-22T03
  std::string export_date;           // 202611220300
  Instant archived_at;
  std::vector<ManifestFile> files;  // may be empty: a type with no data still gets a partition
  // A sink's copy only: which checksum its objects were verified with on the remote
  // ("md5", "sha1" or "none"); "" on the local manifest, and then not written.
  std::string remote_checksum{};
  // Why the partition's rows are not counted (written as "rows_note" beside a null
  // "rows" total), e.g. "not counted: verify is size"; "" gives a generic note.
  std::string rows_note{};

  friend bool operator==(const Manifest&, const Manifest&) = default;
};

// The partition's rows: the sum of its files' rows; nullopt when a file was not counted.
// 0 for a partition without files.
std::optional<std::uint64_t> total_rows(const Manifest& manifest);

// One partition of a slot as the local archive holds it (local_copy.cpp).
struct LocalPartition {
  std::string data_type;
  std::filesystem::path dir;
  bool complete = false;               // _SUCCESS is a regular file
  std::optional<Manifest> manifest{};  // nullopt: missing, a symlink, or malformed
};

// The manifest of one partition of `slot`: what the archive writes next to the files.
// `files` lists every file of the partition (may be empty).
Manifest make_manifest(std::string_view job, std::string_view data_type, const Slot& slot,
                       Instant archived_at, std::vector<ManifestFile> files);

// Pretty-printed JSON with a fixed key order (job, data_type, slot, export_date,
// archived_at as "2026-11-22T03:04:05Z", rows (the total, or null and rows_note),
// files[{name, bytes, sha256, rows, columns, rows_by_hour}]); a file's rows and columns
// only when counted, rows_by_hour only when split.
std::string to_json(const Manifest& manifest);
// nullopt when the text is not such a manifest, or names a file that is not a safe
// file name (a tampered manifest must not lead a reader outside its partition).
std::optional<Manifest> parse_manifest(std::string_view json);

// A file-system failure; the message names the path and the errno text.
class ArchiveError : public std::runtime_error {
 public:
  explicit ArchiveError(const std::string& message) : std::runtime_error(message) {}
  // "<what> <path>: <strerror(error)>"
  ArchiveError(std::string_view what, const std::filesystem::path& path, int error);
};

class Archive {
 public:
  // Creates root and root/.staging if missing; removes leftover files in .staging
  // (a crash's partial downloads) unless another live Archive (this or another process)
  // holds the staging folder. Throws ArchiveError when root is not writable, or when
  // .staging is a symlink or on another file system. Files it publishes or writes get
  // mode 0666 & ~umask and folders it creates 0777 & ~umask (0640 and 0750 by default);
  // umask must leave the owner read, write and search (umask & 0700 == 0).
  explicit Archive(std::filesystem::path root, unsigned umask = kDefaultUmask);
  ~Archive();
  Archive(Archive&& other) noexcept;
  Archive& operator=(Archive&& other) noexcept;
  Archive(const Archive&) = delete;
  Archive& operator=(const Archive&) = delete;

  const std::filesystem::path& root() const { return root_; }
  // True when this Archive holds the staging folder's lock: no other live Archive (in
  // this or another process) writes into the same root. The daemon refuses to run
  // without it, so two daemons never work the same slots.
  bool exclusive() const { return exclusive_; }
  std::filesystem::path staging_dir() const;
  // Only computes the path; does not touch the disk.
  std::filesystem::path partition_dir(std::string_view job, std::string_view data_type,
                                      const Slot& slot) const;

  // A new empty file in this archive's .staging with the archive's file mode, named after
  // `hint` (see StagedFile::create).
  StagedFile stage(std::string_view hint) const;
  // `content` staged, written and synced: ready to publish.
  StagedFile stage_bytes(std::string_view content) const;

  // Moves a staged file to <partition>/<name> (creating folders): syncs it if the caller
  // has not, gives it the archive's file mode, renames it, then fsyncs the partition
  // folder (and the parents of newly created folders) so the rename is durable. Returns
  // the final path. Throws ArchiveError when `name` is not is_safe_file_name, the staged
  // entry is no longer a regular file, a partition component is a symlink or not a
  // folder, or a system call fails; the staged file is then removed.
  std::filesystem::path publish(StagedFile file, std::string_view job, std::string_view data_type,
                                const Slot& slot, std::string_view name) const;

  // True when <partition>/<file.name> is a regular file (a symlink never counts, nor a
  // symlink on the way to it) of file.bytes bytes whose sha256 is file.sha256: the
  // recorded file is still in its partition. False too when the partition cannot be
  // read: publishing there again says why. Reads the whole file the first time this
  // Archive sees it (so always after a restart, as after a crash); a file it has read
  // since, unchanged (same inode, size, mtime and ctime), is not read again. Call it off
  // the event loop for large parts.
  bool holds(std::string_view job, std::string_view data_type, const Slot& slot,
             const ManifestFile& file) const;

  // Removes files the manifest does not list (parts of an earlier answer), then writes
  // _manifest.json (staged file + fsync + rename), fsyncs the folder,
  // then _SUCCESS (empty) the same way. Creates the folder if needed (an empty data
  // type). Order matters: readers trust _SUCCESS.
  void complete_partition(const Manifest& manifest, const Slot& slot) const;

  // True when the partition's _SUCCESS is a regular file (a symlink never counts).
  // Like read_manifest and reopen_partition, throws ArchiveError when a component of the
  // partition path is a symlink or not a folder.
  bool is_complete(std::string_view job, std::string_view data_type, const Slot& slot) const;

  // The partition's manifest; nullopt when missing, a symlink, or malformed.
  std::optional<Manifest> read_manifest(std::string_view job, std::string_view data_type,
                                        const Slot& slot) const;

  // Removes the _SUCCESS marker of a partition (before re-fetching a slot); durable on
  // return. Nothing to do when the partition or marker does not exist.
  void reopen_partition(std::string_view job, std::string_view data_type, const Slot& slot) const;

  // --- The local copy of a slot landed on a sink (issue 15; local_copy.cpp) ---

  // Every partition folder the archive holds for `slot` of `job` (by data type, sorted),
  // with whether it is complete and its manifest: what a sink lands. Throws ArchiveError
  // when a component of a partition's path is a symlink or not a folder.
  std::vector<LocalPartition> slot_partitions(std::string_view job, const Slot& slot) const;

  // Removes a partition's local copy: _SUCCESS first (readers stop trusting it), then
  // its files, then the folder itself and its dt= folder when that is left empty; each
  // step durable. Never follows a symlink: one below the root on the way is refused
  // (ArchiveError), one inside the folder is removed as a link. A folder inside is not
  // ours and is left (so is the partition folder then). Returns the bytes of the regular
  // files removed; 0 when the partition does not exist.
  std::uint64_t remove_partition(std::string_view job, std::string_view data_type,
                                 const Slot& slot) const;

 private:
  std::filesystem::path root_;
  int root_fd_ = -1;
  int staging_fd_ = -1;  // holds an flock: a second Archive must not wipe live downloads
  bool exclusive_ = false;
  unsigned file_mode_ = 0666 & ~kDefaultUmask;
  unsigned folder_mode_ = 0777 & ~kDefaultUmask;
  // The sha256 of files holds() has read, by what would change with their content: a
  // slot retried many times does not read its large parts again at each pass.
  struct HashMemo;
  std::unique_ptr<HashMemo> hashed_;
};

// [A-Za-z0-9_][A-Za-z0-9_-]*, at most kMaxDataTypeBytes: a data type named by the API
// becomes a folder under its own name (the vendor's types are snake_case, but it may add
// others such as adsTrackClick); nothing else is safe as one.
bool is_safe_data_type(std::string_view data_type);

// What file_name_from_link produces: non-empty, at most kMaxFileNameBytes, valid UTF-8,
// no '/', '\\', NUL or control characters, and not starting with '.', '_' or ' '.
bool is_safe_file_name(std::string_view name);

// A download link's file name made safe: the last path segment of the URL (query and
// fragment ignored), percent-decoded; then '/', '\\', NUL and control characters
// (< 0x20, 0x7f) become '_'; invalid UTF-8 bytes become '_'; leading dots and spaces
// removed; names Hive hides or the archive reserves (anything starting with '_' or '.')
// get the prefix "part-"; capped at kMaxFileNameBytes keeping the extension (.csv.gz)
// and never cutting a UTF-8 sequence; empty results and malformed URLs fall back to
// "part-<index>.csv.gz". Valid UTF-8 (e.g. Chinese) is kept.
std::string file_name_from_link(std::string_view url, std::size_t index);

// file_name_from_link for each link (index = position), then names that collide are
// made unique by inserting "-2", "-3", ... before the extension ("a.csv.gz",
// "a-2.csv.gz"), never reusing a name another link already has.
std::vector<std::string> file_names_for_links(const std::vector<std::string>& urls);

// Length of the well-formed UTF-8 sequence starting at `pos`, or 0 when the bytes there
// are not one (stray continuation, overlong form, surrogate, beyond U+10FFFF, truncated).
// Also what hook output is checked with before it reaches the log.
std::size_t utf8_sequence_length(std::string_view text, std::size_t pos);

}  // namespace gio::archive
