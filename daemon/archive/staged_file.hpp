#pragma once

// The one way a file is written for the archive (and for `gio-exporter fetch`): created
// in a staging folder on the same file system, written, fsynced, and only then moved
// into place by rename(), so a reader sees the whole file or none of it. A staged file
// that is dropped before it is published is removed.

#include <filesystem>
#include <string>
#include <string_view>

#include "archive/fd.hpp"

namespace gio::archive {

class Archive;

// A file being written in a staging folder; removed when dropped unless published.
// Move-only; the destructor never throws. The staging folder is held by descriptor,
// so the file is written, checked, renamed and removed there even if the folder's path
// changes meanwhile.
class StagedFile {
 public:
  // New empty file in `staging_dir` (which must exist and is not followed when it is a
  // symlink): O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, a unique name made from `hint`
  // (characters other than [A-Za-z0-9._-] become '_'), and exactly `mode` whatever the
  // process umask. Throws ArchiveError naming the path.
  static StagedFile create(const std::filesystem::path& staging_dir, std::string_view hint,
                           unsigned mode);

  // Nothing staged, as a moved-from one: a placeholder (asio's co_spawn needs results
  // that can be default-constructed).
  StagedFile() = default;
  StagedFile(StagedFile&& other) noexcept;
  StagedFile& operator=(StagedFile&& other) noexcept;
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  ~StagedFile();

  // Where the file is while staged; empty once moved from.
  const std::filesystem::path& path() const { return path_; }
  // Open for reading and writing until sync(); -1 afterwards.
  int fd() const { return file_.get(); }

  // Appends all of `bytes` (EINTR-safe). Throws ArchiveError naming the path (ENOSPC,
  // EFBIG, ...) or when the file was already synced.
  void write(std::string_view bytes);
  // fsync and close: the bytes must be durable before the name can appear anywhere, or a
  // crash could leave a published name with missing bytes. Nothing to do the second time.
  void sync();

  // Publishes outside an archive (`fetch --dir`): syncs if not yet done, renames the file
  // to `name` in `folder` (replacing a file of that name), then fsyncs the folder so the
  // rename is durable. `folder` must be on the staging folder's file system and `name` a
  // safe file name (is_safe_file_name). Returns the final path. On failure the file stays
  // staged (removed when dropped) and ArchiveError says why.
  std::filesystem::path publish_to(const std::filesystem::path& folder, std::string_view name);

 private:
  friend class Archive;

  StagedFile(Fd folder, std::filesystem::path path, Fd file);
  // Creates the file below the staging folder open as `folder` (shown as `folder_path`).
  static StagedFile create_in(Fd folder, const std::filesystem::path& folder_path,
                              std::string_view hint, unsigned mode);
  // Throws ArchiveError when there is no staged file (moved from or already published).
  void expect_staged() const;
  // After sync(): refuses when the staged entry is no longer a regular file (replaced by a
  // symlink, say), else gives it exactly `mode`, without following a symlink.
  void set_mode(unsigned mode) const;
  // After sync(): renames the file to `name` in the folder open as `target` (shown as
  // `target_path`); from then on it is not this object's to remove. The caller fsyncs
  // `target` when it needs the rename durable.
  void rename_into(int target, const std::filesystem::path& target_path, const std::string& name);

  Fd folder_;  // the staging folder
  std::filesystem::path path_;
  std::string name_;  // path_'s name in folder_; empty when there is nothing to remove
  Fd file_;
};

}  // namespace gio::archive
