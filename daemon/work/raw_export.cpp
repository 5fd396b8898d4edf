// The raw-export pass: ask for the slot's export, wait while the vendor runs it, then
// archive every part of every data type, asking for fresh links when they expire.

#include <algorithm>
#include <iterator>
#include <string_view>

#include "work/slot_work.hpp"

namespace gio::work {
namespace {

namespace asio = boost::asio;

// The raw export of `slot` as one answer. A job that names its data types asks the
// per-type endpoint once per type and gets their links merged; a job of all types
// asks the all-types endpoint once.
asio::awaitable<boost::system::result<api::RawExport, api::Error>> ask(const SlotWork& work,
                                                                       const config::RawJob& raw,
                                                                       api::Turn turn) {
  const auto expire = std::chrono::duration_cast<std::chrono::minutes>(work.job.link_expire);
  if (raw.data_types.empty()) {
    co_return co_await work.api.raw_export(work.slot, expire, turn);
  }
  api::RawExport merged;
  merged.status = api::ExportStatus::finished;
  for (const std::string& type : raw.data_types) {
    auto answer = co_await work.api.raw_export_type(work.slot, type, expire, turn);
    if (!answer) {
      co_return answer.error();
    }
    if (answer->status != api::ExportStatus::finished) {
      // The slot can only be downloaded once every type is FINISHED, so it follows the
      // first type that is not; asking the rest now would only spend the project's
      // few requests per second.
      co_return std::move(*answer);
    }
    merged.links.merge(answer->links);
  }
  co_return merged;
}

// `text` quoted for a message: printable ASCII kept, other bytes as \xNN, cut after 64
// bytes. A name the vendor sends never reaches the log or the state raw.
std::string escaped_name(std::string_view text) {
  constexpr std::size_t kShown = 64;
  std::string out = "\"";
  for (const char c : text.substr(0, kShown)) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte >= 0x7f) {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out + (text.size() > kShown ? "\"..." : "\"");
}

bool is_known(std::string_view type) {
  return std::find(std::begin(config::kDataTypes), std::end(config::kDataTypes), type) !=
         std::end(config::kDataTypes);
}

// What the answer's data types come to: the links to archive, and the types that have
// no safe folder name (their names, quoted).
struct Archivable {
  Links links;
  std::vector<std::string> unsafe;
};

// The links of a FINISHED answer that the job archives, or why the answer cannot be
// archived at all (a Retry). A type the daemon does not know is archived under its own
// name when that is a safe folder name (the vendor adds types), after telling the
// observer; one that is not is left out and named.
std::variant<Archivable, Retry> links_to_archive(const SlotWork& work, const config::RawJob& raw,
                                                 api::RawExport& answer) {
  // A finished export always lists its data types; one missing is an anomaly of the
  // answer, not an empty type, so the slot is asked for again.
  if (answer.links.empty()) {
    return Retry{.reason = "FINISHED answer lists no data types"};
  }
  for (const std::string& type : raw.data_types) {
    if (!answer.links.contains(type)) {
      return Retry{.reason = "FINISHED answer does not list data type " + type};
    }
  }
  Archivable archivable;
  for (auto& [type, urls] : answer.links) {
    if (!raw.data_types.empty() &&
        std::find(raw.data_types.begin(), raw.data_types.end(), type) == raw.data_types.end()) {
      continue;
    }
    if (!archive::is_safe_data_type(type)) {
      archivable.unsafe.push_back(escaped_name(type));
      continue;
    }
    if (!is_known(type)) {
      work.observer.unknown_data_type(work.job, work.slot, type);
    }
    archivable.links[type] = std::move(urls);
  }
  return archivable;
}

// Why a slot whose other types are archived still needs a person.
Failed unsafe_types(const std::vector<std::string>& names) {
  std::string list;
  for (const std::string& name : names) {
    list += (list.empty() ? "" : ", ") + name;
  }
  return Failed{.reason = "the API named a data type that is not a safe folder name: " + list +
                          " (the other types are archived)"};
}

}  // namespace

asio::awaitable<Outcome> raw_export(const SlotWork& work, const config::RawJob& raw) {
  Outcome outcome;
  outcome.progress.asked = true;
  auto answer = co_await ask(work, raw, work.turn);
  if (!answer) {
    outcome.result = result_of(answer.error());
    co_return outcome;
  }
  const std::string status{api::to_string(answer->status)};
  switch (answer->status) {
    case api::ExportStatus::running:
    case api::ExportStatus::not_exists:
      outcome.result =
          Wait{.api_status = status, .not_exists = answer->status == api::ExportStatus::not_exists};
      co_return outcome;
    case api::ExportStatus::error:
      // The vendor re-runs failed exports, so ERROR is asked again until give_up_after.
      outcome.result = Retry{
          .kind = RetryClass::export_failed,
          .reason = "the export failed (ERROR" +
                    (answer->error_message.empty() ? std::string{} : ": " + answer->error_message) +
                    ")",
          .api_status = status};
      co_return outcome;
    case api::ExportStatus::finished:
      break;
  }
  // Recorded before anything else is decided about the answer, as it was listed: a
  // crash from here on resumes the slot as downloading, with fresh links.
  work.ledger.downloading(status);
  auto archivable = links_to_archive(work, raw, *answer);
  if (auto* retry = std::get_if<Retry>(&archivable)) {
    outcome.result = std::move(*retry);
    co_return outcome;
  }
  const Archivable& parts_to_archive = std::get<Archivable>(archivable);
  const auto parts = co_await work.downloads.archive_parts(
      work.job, work.slot, parts_to_archive.links, work.ledger, outcome.progress);
  outcome.result = parts.result();
  // The types that can be archived are, first; then a type that cannot fails the slot.
  if (parts.status == Downloads::PartsStatus::done && !parts_to_archive.unsafe.empty()) {
    outcome.result = unsafe_types(parts_to_archive.unsafe);
  }
  co_return outcome;
}

}  // namespace gio::work
