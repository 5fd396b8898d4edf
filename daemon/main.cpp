#include <malloc.h>

#include <cstdlib>
#include <initializer_list>

#include "cli/cli.hpp"

namespace {

// glibc's allocator, tuned for a daemon whose memory is a few long-lived objects plus
// buffers of 64 KiB to 1 MiB per download (issue 18: peak RSS during a slot).
void tune_malloc() {
  // An operator's own tuning (glibc's MALLOC_* variables or GLIBC_TUNABLES) wins.
  for (const char* name :
       {"GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}) {
    if (std::getenv(name) != nullptr) {
      return;
    }
  }
  // mallopt refusing one (it returns 0) leaves glibc's default, which costs memory only:
  // nothing to report, and the others still apply.
  //
  // One arena for every thread. By default glibc gives each thread that allocates its own
  // arena (up to 8 per core), and each keeps its freed pieces: the verify pool's threads
  // held about 0.5 MiB each of read-back buffers long gone. Those threads allocate once
  // per 4 MiB checked, so sharing the main arena's lock costs nothing measurable.
  static_cast<void>(mallopt(M_ARENA_MAX, 1));
  // A fixed threshold: blocks of 512 KiB and more (the downloads' 1 MiB buffers) are
  // mapped and handed back to the kernel when freed. The default threshold rises to the
  // size of the largest block freed, after which such buffers stay in the heap.
  static_cast<void>(mallopt(M_MMAP_THRESHOLD, 512 << 10));
  // Return freed memory at the heap's top once 256 KiB of it is free (set explicitly,
  // since fixing the mmap threshold also stops glibc from adjusting this one).
  static_cast<void>(mallopt(M_TRIM_THRESHOLD, 256 << 10));
}

}  // namespace

int main(int argc, char** argv) {
  tune_malloc();
  return gio::cli::main(argc, argv);
}
