#include "work/slot_work.hpp"

#include <variant>

namespace gio::work {

Result result_of(const api::Error& error) {
  if (error.held) {
    return Retry{.kind = RetryClass::held, .reason = error.message};
  }
  if (error.transient) {
    return Retry{.reason = error.message, .retry_after = error.retry_after};
  }
  return Failed{.reason = error.message};
}

boost::asio::awaitable<Outcome> run(const SlotWork& work) {
  // std::visit: a new kind of job does not compile until it has its pass.
  return std::visit(config::Overloaded{
                        [&](const config::RawJob& raw) { return raw_export(work, raw); },
                        [&](const config::ChartJob& chart) { return work::chart(work, chart); },
                        [&](const config::UserListJob& lists) { return user_lists(work, lists); },
                    },
                    work.job.settings);
}

}  // namespace gio::work
