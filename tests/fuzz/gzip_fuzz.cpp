// gzip checking: ISA-L and zlib must accept the same inputs (valid to the end of a
// member), however the bytes are split into feeds, so that which library a build has
// never changes what the archive accepts. Where they reject, they may say it
// differently: a few bytes that cannot start a member are "incorrect header" to zlib at
// once, and an incomplete header to igzip until it has read ten. The first byte of the
// input picks the split.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "archive/checksums.hpp"
#include "fuzz_check.hpp"

namespace {

struct Verdict {
  bool valid = true;
  bool complete = false;
  std::string problem;
};

Verdict check(gio::archive::Inflater inflater, std::string_view data, std::size_t piece) {
  gio::archive::GzipChecker checker{inflater};
  for (std::size_t at = 0; at < data.size(); at += piece) {
    const std::size_t size = std::min(piece, data.size() - at);
    if (auto problem = checker.feed(data.data() + at, size, at)) {
      return {.valid = false, .complete = false, .problem = *problem};
    }
  }
  return {.valid = true, .complete = checker.complete(), .problem = {}};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using gio::archive::Inflater;
  if (size == 0 || !gio::archive::available(Inflater::isal)) {
    return 0;
  }
  const std::size_t piece = data[0] < 128 ? data[0] + 1u : (data[0] - 127u) * 997u;
  const std::string_view stream = gio::fuzz::as_text(data + 1, size - 1);
  const Verdict zlib = check(Inflater::zlib, stream, piece);
  const Verdict isal = check(Inflater::isal, stream, piece);
  const auto accepted = [](const Verdict& verdict) { return verdict.valid && verdict.complete; };
  GIO_FUZZ_CHECK(
      accepted(zlib) == accepted(isal),
      "zlib: " +
          (zlib.valid ? std::string{zlib.complete ? "complete" : "incomplete"} : zlib.problem) +
          "; isal: " +
          (isal.valid ? std::string{isal.complete ? "complete" : "incomplete"} : isal.problem));
  return 0;
}
