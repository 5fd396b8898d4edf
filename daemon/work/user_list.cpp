// The user-list pass (resource: segmentations | tags): every list id of the slot asked
// for, and the done ones downloaded like raw parts (same verification, archive and
// manifests), with the list id in place of the data type.

#include "work/slot_work.hpp"

namespace gio::work {
namespace {

namespace asio = boost::asio;

// What one round of asks came to: the done lists' links, how many are still doing,
// and the last list whose export failed.
struct Round {
  Links ready;
  int doing = 0;
  std::string failure;
};

// Asks for every list not archived yet. A failed call ends the pass: its Outcome is
// returned.
asio::awaitable<std::optional<Outcome>> ask_lists(const SlotWork& work,
                                                  const config::UserListJob& lists, Round& round,
                                                  Progress& progress) {
  const auto expire = std::chrono::duration_cast<std::chrono::minutes>(work.job.link_expire);
  for (const std::string& list_id : lists.lists) {
    if (work.archive.is_complete(work.job.name, list_id, work.slot)) {
      continue;  // archived by an earlier pass: never asked again
    }
    progress.asked = true;
    const api::UserListRequest request{
        .resource = lists.resource, .list_id = list_id, .parameters = lists.parameters};
    auto answer = co_await work.api.user_list(request, work.slot, expire, work.turn);
    if (!answer) {
      co_return Outcome{.result = result_of(answer.error()), .progress = progress};
    }
    switch (answer->status) {
      case api::UserListStatus::doing:
        ++round.doing;
        break;
      case api::UserListStatus::failed:
        // Like a raw ERROR: asked again every poll_every until give_up_after.
        round.failure =
            std::string{config::to_string(lists.resource)} + " " + list_id + ": the export failed" +
            (answer->error_message.empty() ? std::string{} : ": " + answer->error_message);
        break;
      case api::UserListStatus::done:
        round.ready[list_id] = std::move(answer->links);
        break;
    }
  }
  co_return std::nullopt;
}

}  // namespace

asio::awaitable<Outcome> user_lists(const SlotWork& work, const config::UserListJob& lists) {
  Outcome outcome;
  Round round;
  if (auto stop = co_await ask_lists(work, lists, round, outcome.progress)) {
    co_return std::move(*stop);
  }
  Downloads::Parts parts;
  if (!round.ready.empty()) {
    work.ledger.downloading(api::to_string(api::UserListStatus::done));
    parts = co_await work.downloads.archive_parts(work.job, work.slot, round.ready, work.ledger,
                                                  outcome.progress);
    if (parts.status != Downloads::PartsStatus::done) {
      outcome.result = parts.result();
      co_return outcome;
    }
  }
  if (!round.failure.empty()) {
    outcome.result = Retry{.kind = RetryClass::export_failed,
                           .reason = round.failure,
                           .api_status = std::string{api::to_string(api::UserListStatus::failed)}};
  } else if (round.doing > 0) {
    // Lists archived in this pass stay archived; only the "doing" ones are asked again.
    outcome.result = Wait{.api_status = std::string{api::to_string(api::UserListStatus::doing)},
                          .detail = " lists_doing=" + std::to_string(round.doing)};
  } else {
    outcome.result = Done{.files = parts.files,
                          .bytes = parts.bytes,
                          .items = "lists=" + std::to_string(lists.lists.size()),
                          .api_status = std::string{api::to_string(api::UserListStatus::done)}};
  }
  co_return outcome;
}

}  // namespace gio::work
