#pragma once

// File and gzip helpers the unit tests share, each made with an implementation other
// than the code under test (zlib directly, the sha256sum command).

#include <gtest/gtest.h>
#include <zlib.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

namespace gio::test {

// One gzip member of `data`.
inline std::string gzip_member(std::string_view data) {
  z_stream stream{};
  EXPECT_EQ(deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&stream, data.size()) + 64, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

// sha256 of `data` by the sha256sum command.
inline std::string sha256sum(const std::string& data, const std::filesystem::path& scratch) {
  const std::filesystem::path file = scratch / "expected.bin";
  std::ofstream{file, std::ios::binary} << data;
  std::FILE* pipe = ::popen(("sha256sum " + file.string()).c_str(), "r");
  std::array<char, 65> hex{};
  EXPECT_NE(pipe, nullptr);
  EXPECT_EQ(std::fread(hex.data(), 1, 64, pipe), 64u);
  ::pclose(pipe);
  std::filesystem::remove(file);
  return std::string{hex.data(), 64};
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace gio::test
