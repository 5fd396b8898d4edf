// The raw-export pass: ask for the slot's export, wait while the vendor runs it, then
// archive every part of every data type, asking for fresh links when they expire.

#include <algorithm>

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

// The links of a FINISHED answer that the job archives, or why the answer cannot be
// archived (a Retry or a Failed).
std::variant<Links, Retry, Failed> links_to_archive(const config::RawJob& raw,
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
  Links links;
  for (auto& [type, urls] : answer.links) {
    if (!raw.data_types.empty() &&
        std::find(raw.data_types.begin(), raw.data_types.end(), type) == raw.data_types.end()) {
      continue;
    }
    if (!archive::is_safe_data_type(type)) {
      return Failed{.reason = "the API named a data type that is not a safe folder name"};
    }
    links[type] = std::move(urls);
  }
  return links;
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
  auto links = links_to_archive(raw, *answer);
  if (auto* retry = std::get_if<Retry>(&links)) {
    outcome.result = std::move(*retry);
    co_return outcome;
  }
  if (auto* failed = std::get_if<Failed>(&links)) {
    outcome.result = std::move(*failed);
    co_return outcome;
  }
  const auto parts = co_await work.downloads.archive_parts(
      work.job, work.slot, std::get<Links>(links), work.ledger, outcome.progress);
  outcome.result = parts.result();
  co_return outcome;
}

}  // namespace gio::work
