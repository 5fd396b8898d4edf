#pragma once

// The archive's identity: a random id written once in <root>/.gio-exporter-archive. The
// state database records it with the archive's path, so that a database is never read
// against another archive (two configs sharing a database, archive_dir changed, a new
// database beside an old archive): a path alone cannot tell those apart. The name starts
// with '.', so Hive-style readers skip it.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace gio::archive {

inline constexpr std::string_view kIdentityName = ".gio-exporter-archive";

// The id in <root>/.gio-exporter-archive; nullopt when the file, or root itself, does not
// exist. Throws ArchiveError when it cannot be read, is not a regular file (a symlink is
// refused), or holds no id.
std::optional<std::string> read_identity(const std::filesystem::path& root);

// Writes a new random id (32 hex digits) there, durable on return (the file and root
// fsynced), with mode 0666 & ~umask; never replaces one: when the file exists (another
// process wrote it first), returns its id. root must exist. Throws ArchiveError.
std::string create_identity(const std::filesystem::path& root, unsigned umask);

}  // namespace gio::archive
