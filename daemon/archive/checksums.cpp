#include "archive/checksums.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "archive/csv_rows.hpp"

#ifdef GIO_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

namespace gio::archive {
namespace {

std::string to_hex(const unsigned char* digest, unsigned int length) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kDigits[digest[i] >> 4]);
    out.push_back(kDigits[digest[i] & 0xf]);
  }
  return out;
}

}  // namespace

Digest::Digest(std::string_view algorithm) : context_(EVP_MD_CTX_new()) {
  const std::string name{algorithm};
  const EVP_MD* type = EVP_get_digestbyname(name.c_str());
  if (context_ == nullptr || type == nullptr || EVP_DigestInit_ex(context_, type, nullptr) != 1) {
    EVP_MD_CTX_free(context_);
    throw std::runtime_error("cannot initialise digest " + name);
  }
}

Digest::~Digest() {
  EVP_MD_CTX_free(context_);
}

void Digest::update(const char* data, std::size_t size) {
  if (EVP_DigestUpdate(context_, data, size) != 1) {
    throw std::runtime_error("digest update failed");
  }
}

std::string Digest::hex() {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(context_, digest.data(), &length) != 1) {
    throw std::runtime_error("digest final failed");
  }
  return to_hex(digest.data(), length);
}

std::string file_digest_hex(std::string_view algorithm, const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    throw std::runtime_error("cannot open " + path.string() + ": " + std::strerror(errno));
  }
  Digest digest{algorithm};
  std::vector<char> buffer(1 << 20);
  for (;;) {
    const ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got < 0) {
      const int error = errno;
      ::close(fd);
      throw std::runtime_error("cannot read " + path.string() + ": " + std::strerror(error));
    }
    if (got == 0) {
      break;
    }
    digest.update(buffer.data(), static_cast<std::size_t>(got));
  }
  ::close(fd);
  return digest.hex();
}

std::string sha256_hex(std::string_view data) {
  Sha256 hash;
  hash.update(data.data(), data.size());
  return hash.hex();
}

class GzipChecker::Engine {
 public:
  virtual ~Engine() = default;
  virtual std::optional<std::string> feed(const char* data, std::size_t size,
                                          std::uint64_t offset) = 0;
  bool complete() const { return member_ended_; }
  void count_rows(CsvRowCounter* counter) { counter_ = counter; }

 protected:
  static std::string invalid(std::uint64_t at, const std::string& why) {
    return "not a valid gzip stream near byte " + std::to_string(at) + ": " + why;
  }

  // The first `produced` bytes of output_ are new: to the counter, if any.
  void inflated(std::size_t produced) {
    if (counter_ != nullptr && produced > 0) {
      counter_->feed(reinterpret_cast<const char*>(output_.data()), produced);
    }
  }

  // The inflated bytes go here and are dropped (once counted).
  std::vector<unsigned char> output_ = std::vector<unsigned char>(kOutput);
  bool member_ended_ = false;
  CsvRowCounter* counter_ = nullptr;

 private:
  static constexpr std::size_t kOutput = 256 << 10;
};

namespace {

class ZlibEngine final : public GzipChecker::Engine {
 public:
  ZlibEngine() {
    if (inflateInit2(&stream_, 16 + MAX_WBITS) != Z_OK) {
      throw std::runtime_error("cannot initialise zlib");
    }
  }
  ~ZlibEngine() override { inflateEnd(&stream_); }
  ZlibEngine(const ZlibEngine&) = delete;
  ZlibEngine& operator=(const ZlibEngine&) = delete;

  std::optional<std::string> feed(const char* data, std::size_t size,
                                  std::uint64_t offset) override {
    stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
    stream_.avail_in = static_cast<uInt>(size);
    while (stream_.avail_in > 0) {
      if (member_ended_) {
        // More bytes after a complete member: they must be another member; anything
        // else is reported by inflate as a bad header.
        inflateReset(&stream_);
        member_ended_ = false;
      }
      stream_.next_out = output_.data();
      stream_.avail_out = static_cast<uInt>(output_.size());
      const int rc = inflate(&stream_, Z_NO_FLUSH);
      inflated(output_.size() - stream_.avail_out);
      if (rc == Z_STREAM_END) {
        member_ended_ = true;
        continue;
      }
      if (rc == Z_OK || (rc == Z_BUF_ERROR && stream_.avail_in == 0)) {
        continue;
      }
      return invalid(offset + (size - stream_.avail_in),
                     stream_.msg != nullptr ? stream_.msg : "zlib error " + std::to_string(rc));
    }
    return std::nullopt;
  }

 private:
  z_stream stream_{};
};

#ifdef GIO_HAVE_ISAL
std::string isal_error(int rc) {
  switch (rc) {
    case ISAL_INVALID_BLOCK:
      return "invalid deflate block";
    case ISAL_INVALID_SYMBOL:
      return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK:
      return "invalid distance too far back";
    case ISAL_INVALID_WRAPPER:
      return "incorrect header";
    case ISAL_UNSUPPORTED_METHOD:
      return "unknown compression method";
    case ISAL_INCORRECT_CHECKSUM:
      return "incorrect data check";
    default:
      return "igzip error " + std::to_string(rc);
  }
}

class IsalEngine final : public GzipChecker::Engine {
 public:
  IsalEngine() {
    isal_inflate_init(&state_);
    start_member();
  }

  std::optional<std::string> feed(const char* data, std::size_t size,
                                  std::uint64_t offset) override {
    state_.next_in = reinterpret_cast<std::uint8_t*>(const_cast<char*>(data));
    state_.avail_in = static_cast<std::uint32_t>(size);
    while (state_.avail_in > 0) {
      if (member_ended_) {
        start_member();  // what follows a member must be another one
      }
      // igzip ignores the reserved bits of a member's flags byte (its fourth), which
      // RFC 1952 says a decompressor must refuse, as zlib does: they are checked here.
      if (member_read_ <= kFlags && kFlags - member_read_ < state_.avail_in &&
          (state_.next_in[kFlags - member_read_] & kReservedFlags) != 0) {
        return invalid(offset + (size - state_.avail_in) + (kFlags - member_read_),
                       "unknown header flags set");
      }
      const std::uint32_t unread = state_.avail_in;
      state_.next_out = output_.data();
      state_.avail_out = static_cast<std::uint32_t>(output_.size());
      const int rc = isal_inflate(&state_);
      inflated(output_.size() - state_.avail_out);
      if (rc != ISAL_DECOMP_OK) {
        return invalid(offset + (size - state_.avail_in), isal_error(rc));
      }
      member_read_ += unread - state_.avail_in;
      // On finishing, igzip hands back the input it read beyond the member's trailer.
      member_ended_ = state_.block_state == ISAL_BLOCK_FINISH;
      if (!member_ended_ && state_.avail_in == unread && state_.avail_out == output_.size()) {
        // Never seen; a guard against spinning here forever should igzip stall.
        return invalid(offset + (size - state_.avail_in), "igzip made no progress");
      }
    }
    return std::nullopt;
  }

 private:
  void start_member() {
    isal_inflate_reset(&state_);
    state_.crc_flag = ISAL_GZIP;  // parse the header, check the CRC-32 and length
    member_ended_ = false;
    member_read_ = 0;
  }

  static constexpr std::uint64_t kFlags = 3;
  static constexpr unsigned kReservedFlags = 0xe0;
  std::uint64_t member_read_ = 0;  // bytes of the current member given to igzip

  inflate_state state_;  // about 100 KiB, history included: engines live on the heap
};
#endif

}  // namespace

std::string_view to_string(Inflater inflater) {
  return inflater == Inflater::isal ? "isal" : "zlib";
}

bool available(Inflater inflater) {
#ifdef GIO_HAVE_ISAL
  constexpr bool kHaveIsal = true;
#else
  constexpr bool kHaveIsal = false;
#endif
  return inflater == Inflater::zlib || kHaveIsal;
}

Inflater best_inflater() {
  return available(Inflater::isal) ? Inflater::isal : Inflater::zlib;
}

GzipChecker::GzipChecker(Inflater inflater) {
  if (!available(inflater)) {
    throw std::invalid_argument("this build has no " + std::string{to_string(inflater)});
  }
#ifdef GIO_HAVE_ISAL
  if (inflater == Inflater::isal) {
    engine_ = std::make_unique<IsalEngine>();
    return;
  }
#endif
  engine_ = std::make_unique<ZlibEngine>();
}

GzipChecker::~GzipChecker() = default;

std::optional<std::string> GzipChecker::feed(const char* data, std::size_t size,
                                             std::uint64_t offset) {
  return engine_->feed(data, size, offset);
}

bool GzipChecker::complete() const {
  return engine_->complete();
}

void GzipChecker::count_rows(CsvRowCounter* counter) {
  engine_->count_rows(counter);
}

}  // namespace gio::archive
