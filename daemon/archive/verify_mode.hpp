#pragma once

namespace gio::archive {

// How much checking a downloaded part gets before it is archived.
enum class VerifyMode {
  gzip,  // Content-Length, sha256, and the gzip stream inflated to its end
  size,  // Content-Length and sha256 only
};

}  // namespace gio::archive
