// Reading a sink back: verify --sink (Sink::check), the remote manifest, and
// check-config's probe.

#include <set>
#include <tuple>

#include "sink/sink.hpp"
#include "sink/steps.hpp"

namespace gio::sink {
namespace {

namespace asio = boost::asio;
using detail::Listing;

constexpr std::chrono::minutes kProbeTimeout{2};

// The parts against the manifest: existence and size, and the checksum the remote's own
// manifest recorded where the listing has it.
void check_parts(const archive::Manifest& manifest, const archive::Manifest* remote,
                 const Listing& listing, std::vector<Mismatch>& found) {
  std::map<std::string, std::string> recorded;  // name -> remote hash
  if (remote != nullptr) {
    for (const archive::ManifestFile& file : remote->files) {
      recorded.emplace(file.name, file.remote_hash);
    }
  }
  const std::string checksum = remote == nullptr ? "" : remote->remote_checksum;
  for (const archive::ManifestFile& file : manifest.files) {
    const auto object = listing.find(file.name);
    if (object == listing.end()) {
      found.push_back({file.name, "missing"});
      continue;
    }
    if (object->second.bytes != file.bytes) {
      found.push_back({file.name, "size " + std::to_string(object->second.bytes) +
                                      " != " + std::to_string(file.bytes)});
      continue;
    }
    const auto hash = object->second.hashes.find(checksum);
    const auto expected = recorded.find(file.name);
    if (hash != object->second.hashes.end() && expected != recorded.end() &&
        !expected->second.empty() && hash->second != expected->second) {
      found.push_back({file.name, checksum + " differs"});
    }
  }
}

// The remote manifest against the local one: the same parts (names, sizes, sha256), in
// whatever order (the expected one may come from the state database's rows).
bool same_parts(const archive::Manifest& a, const archive::Manifest& b) {
  if (a.job != b.job || a.data_type != b.data_type || a.slot != b.slot) {
    return false;
  }
  const auto parts = [](const archive::Manifest& manifest) {
    std::set<std::tuple<std::string, std::uint64_t, std::string>> set;
    for (const archive::ManifestFile& file : manifest.files) {
      set.emplace(file.name, file.bytes, file.sha256);
    }
    return set;
  };
  return a.files.size() == b.files.size() && parts(a) == parts(b);
}

// Why the remote string does not parse as rclone reads one ("" when it does), and the
// backend (":s3,...:path") or remote name ("oss:path") it names ("" for a local path).
struct RemoteSyntax {
  std::string problem;
  std::string backend, name;
};

RemoteSyntax remote_syntax(std::string_view remote) {
  RemoteSyntax syntax;
  const bool on_the_fly = remote.starts_with(':');
  const std::size_t start = on_the_fly ? 1 : 0;
  const std::size_t head_end = remote.find_first_of(",:", start);
  if (head_end == std::string_view::npos) {
    if (on_the_fly) {
      syntax.problem = "the remote names a backend but has no closing ':'";
    }
    return syntax;  // a local path
  }
  std::string head{remote.substr(start, head_end - start)};
  if (head.empty() && on_the_fly) {
    syntax.problem = "the remote names no backend after ':'";
    return syntax;
  }
  // Parameters up to the ':' that ends them, outside quotes.
  std::size_t at = head_end;
  char quote = 0;
  while (at < remote.size() && (quote != 0 || remote[at] != ':')) {
    if (quote == 0 && (remote[at] == '\'' || remote[at] == '"') && remote[at - 1] == '=') {
      quote = remote[at];
    } else if (quote != 0 && remote[at] == quote) {
      const bool doubled = at + 1 < remote.size() && remote[at + 1] == quote;
      at += doubled ? 1 : 0;
      quote = doubled ? quote : 0;
    }
    ++at;
  }
  if (quote != 0) {
    syntax.problem = "a quoted value of the remote is not closed";
  } else if (at >= remote.size()) {
    syntax.problem = "the remote's parameters have no closing ':'";
  } else if (on_the_fly) {
    syntax.backend = std::move(head);
  } else if (head.find('/') == std::string::npos) {
    syntax.name = std::move(head);
  }
  return syntax;
}

// True when rclone's output lists `word` as a line's first word (before ':' or ' ').
bool lists(std::string_view output, std::string_view word) {
  std::size_t at = 0;
  while (at < output.size()) {
    const std::size_t end = std::min(output.find('\n', at), output.size());
    std::string_view line = output.substr(at, end - at);
    line.remove_prefix(std::min(line.find_first_not_of(' '), line.size()));
    if (line.starts_with(word) &&
        (line.size() == word.size() || line[word.size()] == ':' || line[word.size()] == ' ')) {
      return true;
    }
    at = end + 1;
  }
  return false;
}

}  // namespace

asio::awaitable<std::string> Sink::validate() {
  const detail::Rclone rclone{settings_, rclone_};
  const auto setup = [this](const std::string& why) {
    return SinkError(SinkError::Kind::setup, "sink " + settings_.name + ": " + why);
  };
  std::vector<std::string> version{"version"};
  const detail::RcloneResult ran = co_await rclone.run(std::move(version), kProbeTimeout);
  if (!ran.ok()) {
    throw setup("rclone does not run: " + (ran.error.empty() ? "rclone failed" : ran.error));
  }
  const std::string line = ran.output.substr(0, ran.output.find('\n'));
  const RemoteSyntax syntax = remote_syntax(settings_.rclone_remote);
  if (!syntax.problem.empty()) {
    throw setup(syntax.problem);
  }
  std::vector<std::string> arguments;
  if (!syntax.backend.empty()) {
    arguments = {"help", "backends"};
  } else if (!syntax.name.empty()) {
    arguments = {"listremotes"};
  } else {
    co_return line;
  }
  const detail::RcloneResult listed = co_await rclone.run(std::move(arguments), kProbeTimeout);
  if (!listed.ok()) {
    throw setup("cannot read rclone's config: " +
                (listed.error.empty() ? "rclone failed" : listed.error));
  }
  if (!syntax.backend.empty() && !lists(listed.output, syntax.backend)) {
    throw setup(line + " has no backend \"" + syntax.backend + "\"");
  }
  if (!syntax.name.empty() && !lists(listed.output, syntax.name)) {
    throw setup("rclone's config has no remote \"" + syntax.name + "\"" +
                (settings_.rclone_config.empty() ? "" : " (rclone_config)"));
  }
  co_return line;
}

asio::awaitable<std::vector<Mismatch>> Sink::check(archive::Manifest manifest, Slot slot) {
  const detail::Rclone rclone{settings_, rclone_};
  const detail::Partition partition{rclone, settings_.name,
                                    partition_path(manifest.job, manifest.data_type, slot)};
  const std::string manifest_name{archive::kManifestName};
  const std::string success_name{archive::kSuccessName};
  const Listing listing = co_await detail::list(partition);

  std::vector<Mismatch> found;
  std::optional<archive::Manifest> remote;
  if (!listing.contains(manifest_name)) {
    found.push_back({manifest_name, "missing"});
  } else {
    const std::optional<std::string> text = co_await detail::read_object(partition, manifest_name);
    remote = text ? archive::parse_manifest(*text) : std::nullopt;
    if (!remote) {
      found.push_back({manifest_name, "malformed"});
    } else if (!same_parts(*remote, manifest)) {
      found.push_back({manifest_name, "differs from the local manifest"});
    }
  }
  check_parts(manifest, remote ? &*remote : nullptr, listing, found);
  std::set<std::string> listed{manifest_name, success_name};
  for (const archive::ManifestFile& file : manifest.files) {
    listed.insert(file.name);
  }
  for (const auto& [name, object] : listing) {
    if (!listed.contains(name)) {
      found.push_back({name, "not in the manifest"});
    }
  }
  if (!listing.contains(success_name)) {
    found.push_back({success_name, "no _SUCCESS"});
  }
  co_return found;
}

asio::awaitable<std::optional<archive::Manifest>> Sink::remote_manifest(std::string job,
                                                                        std::string data_type,
                                                                        Slot slot) {
  const detail::Rclone rclone{settings_, rclone_};
  const detail::Partition partition{rclone, settings_.name, partition_path(job, data_type, slot)};
  const std::optional<std::string> text =
      co_await detail::read_object(partition, archive::kManifestName);
  co_return text ? archive::parse_manifest(*text) : std::nullopt;
}

asio::awaitable<bool> Sink::probe() {
  const detail::Rclone rclone{settings_, rclone_};
  // The top folders only (the jobs'): a bucket's whole listing could be huge.
  std::vector<std::string> arguments{"lsf", "--dirs-only", "--max-depth=1",
                                     detail::remote_path("")};
  const detail::RcloneResult result = co_await rclone.run(std::move(arguments), kProbeTimeout);
  // 3: the remote path does not exist yet; the remote answered, and the first upload
  // creates it.
  if (!result.ok() && !(result.exit_code == 3 && !result.timed_out)) {
    const std::string what = result.error.empty() ? "rclone failed" : result.error;
    throw SinkError(detail::classify(result),
                    "sink " + settings_.name + ": cannot list the remote: " + what);
  }
  co_return result.ok();
}

}  // namespace gio::sink
