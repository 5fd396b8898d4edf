#pragma once

// The two checks every archived part goes through, shared by the downloader (as a
// part arrives), the scrubber (re-reading the archive) and the chart writer: SHA-256,
// and a gzip stream inflated to its end. Both stream in blocks, so memory stays flat
// whatever the size of the file.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace gio::archive {

class CsvRowCounter;

// A message digest of OpenSSL's by name ("sha256", "md5", "sha1": a sink compares a
// staged part with the remote's own checksum, which is MD5 or SHA-1).
class Digest {
 public:
  // Throws std::runtime_error when OpenSSL has no such digest or cannot set it up.
  explicit Digest(std::string_view algorithm);
  ~Digest();
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;

  void update(const char* data, std::size_t size);
  // Lower-case hex of the digest; call once, after the last update().
  std::string hex();

 private:
  evp_md_ctx_st* context_;
};

class Sha256 : public Digest {
 public:
  Sha256() : Digest("sha256") {}
};

// Lower-case hex digest `algorithm` of the file at `path`, read in blocks (memory stays
// flat). Blocking: call it off the event loop. Throws std::runtime_error naming the
// path and the errno text when it cannot be read.
std::string file_digest_hex(std::string_view algorithm, const std::filesystem::path& path);

// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

// Which library inflates gzip: ISA-L's igzip (several times zlib's speed on x86-64 and
// arm64) when the build found it, zlib otherwise. Both check every member's CRC-32 and
// length.
enum class Inflater { zlib, isal };
std::string_view to_string(Inflater inflater);
// The fastest inflater this build has.
Inflater best_inflater();
// Whether this build has `inflater`.
bool available(Inflater inflater);

// Inflates gzip members one after another (gzip allows concatenation), keeping none of
// the output: the only question is whether the stream is valid to its end. The inflated
// bytes may be handed to a CsvRowCounter on the way (count_rows): rows are counted in
// the same pass, on the same thread.
class GzipChecker {
 public:
  // Throws std::invalid_argument for an inflater this build lacks, std::runtime_error
  // when the library cannot set up.
  explicit GzipChecker(Inflater inflater = best_inflater());
  ~GzipChecker();
  GzipChecker(const GzipChecker&) = delete;
  GzipChecker& operator=(const GzipChecker&) = delete;

  // The next `size` bytes, which start at `offset` in the file (for the message): the
  // problem found, or nullopt.
  std::optional<std::string> feed(const char* data, std::size_t size, std::uint64_t offset);
  // True once the bytes fed so far end exactly at the end of a member.
  bool complete() const;
  // From now on, every inflated byte also goes to `counter` (nullptr: to none), which
  // must outlive the feeds.
  void count_rows(CsvRowCounter* counter);

  class Engine;  // one per library, in checksums.cpp

 private:
  std::unique_ptr<Engine> engine_;
};

}  // namespace gio::archive
