#include "archive/checksums.hpp"

#include <openssl/evp.h>

#include <stdexcept>

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

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  if (context_ == nullptr || EVP_DigestInit_ex(context_, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(context_);
    throw std::runtime_error("cannot initialise SHA-256");
  }
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(context_);
}

void Sha256::update(const char* data, std::size_t size) {
  if (EVP_DigestUpdate(context_, data, size) != 1) {
    throw std::runtime_error("SHA-256 update failed");
  }
}

std::string Sha256::hex() {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(context_, digest.data(), &length) != 1) {
    throw std::runtime_error("SHA-256 final failed");
  }
  return to_hex(digest.data(), length);
}

std::string sha256_hex(std::string_view data) {
  Sha256 hash;
  hash.update(data.data(), data.size());
  return hash.hex();
}

GzipChecker::GzipChecker() : output_(std::make_unique<std::array<Bytef, 256 << 10>>()) {
  if (inflateInit2(&stream_, 16 + MAX_WBITS) != Z_OK) {
    throw std::runtime_error("cannot initialise zlib");
  }
}

GzipChecker::~GzipChecker() {
  inflateEnd(&stream_);
}

std::optional<std::string> GzipChecker::feed(const char* data, std::size_t size,
                                             std::uint64_t offset) {
  stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
  stream_.avail_in = static_cast<uInt>(size);
  while (stream_.avail_in > 0) {
    if (member_ended_) {
      // More bytes after a complete member: they must be another member; anything
      // else is reported by inflate as a bad header.
      inflateReset(&stream_);
      member_ended_ = false;
    }
    stream_.next_out = output_->data();
    stream_.avail_out = static_cast<uInt>(output_->size());
    const int rc = inflate(&stream_, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      member_ended_ = true;
      continue;
    }
    if (rc == Z_OK || (rc == Z_BUF_ERROR && stream_.avail_in == 0)) {
      continue;
    }
    const std::uint64_t at = offset + (size - stream_.avail_in);
    return "not a valid gzip stream near byte " + std::to_string(at) + ": " +
           (stream_.msg != nullptr ? stream_.msg : "zlib error " + std::to_string(rc));
  }
  return std::nullopt;
}

}  // namespace gio::archive
