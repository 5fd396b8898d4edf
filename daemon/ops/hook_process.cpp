#include "ops/hook_process.hpp"

#include <unistd.h>

#include <algorithm>
#include <iterator>

#include "archive/archive.hpp"

namespace gio::ops {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// C1 controls (U+0080..U+009F: a terminal may read U+009B as an escape) and the Unicode
// line and paragraph separators, which some viewers break lines at.
bool unsafe_character(std::string_view sequence) {
  const auto byte = [&sequence](std::size_t i) { return static_cast<unsigned char>(sequence[i]); };
  if (sequence.size() == 2) {
    return byte(0) == 0xC2 && byte(1) < 0xA0;
  }
  return sequence.size() == 3 && byte(0) == 0xE2 && byte(1) == 0x80 &&
         (byte(2) == 0xA8 || byte(2) == 0xA9);
}

}  // namespace

std::vector<std::string> hook_environment(const HookVariables& variables, char* const* parent) {
  std::vector<std::string> environment = process::inherited_environment(parent);
  for (const auto& [name, value] : variables) {
    if (std::ranges::find(kHookVariableNames, name) != std::end(kHookVariableNames)) {
      environment.push_back(name + "=" + value);
    }
  }
  return environment;
}

std::string hook_output_text(std::string_view bytes) {
  if (bytes.ends_with('\n')) {
    bytes.remove_suffix(1);
  }
  std::string text;
  text.reserve(bytes.size());
  while (!bytes.empty()) {
    const std::size_t length = archive::utf8_sequence_length(bytes, 0);
    if (length == 0 || unsafe_character(bytes.substr(0, length))) {
      text += kReplacement;
      bytes.remove_prefix(std::max<std::size_t>(length, 1));
    } else {
      text += bytes.substr(0, length);
      bytes.remove_prefix(length);
    }
  }
  return text;
}

void HookOutput::add(std::string_view bytes) {
  total_ += bytes.size();
  if (kept_.size() < kMaxBytes) {
    kept_ += bytes.substr(0, kMaxBytes - kept_.size());
  }
}

int spawn_hook(std::string command, const HookVariables& variables, process::Spawned& spawned) {
  const process::Command shell{.program = "/bin/sh",
                               .arguments = {"-c", std::move(command)},
                               .environment = hook_environment(variables, environ),
                               .merge_errors = true};
  return process::spawn(shell, spawned);
}

}  // namespace gio::ops
