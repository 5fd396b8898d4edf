#pragma once

// `gio-exporter fetch URL... --dir DIR [--verify gzip|size] [--inflate isal|zlib]
// [--parallel N] [--rows]`: download
// links through the daemon's own download-and-verify path (for checking a network, a
// proxy or a CA setup, and for benchmarks).

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "archive/checksums.hpp"
#include "archive/verify_mode.hpp"
#include "http/client.hpp"

namespace gio::download {

// Fetches every URL (at most `parallel` at once) into DIR/.staging, then publishes each
// verified file into DIR under the name the archive would give it. Prints one line per URL to
// stdout, "OK name bytes sha256" or "FAILED redacted-url: reason". Returns 0 when every
// file was verified, 1 otherwise. `inflater` checks gzip streams. count_rows (gzip mode):
// the OK line ends with " rows=N columns=N", counted in the same pass as the gzip check.
int run_fetch(std::vector<std::string> urls, std::filesystem::path dir, archive::VerifyMode mode,
              archive::Inflater inflater, int parallel, bool count_rows, http::Settings settings);

}  // namespace gio::download
