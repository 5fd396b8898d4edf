#pragma once

// One pass of work on one slot, whatever its job's kind: ask the API, and archive what
// is finished. A pass returns its Outcome; it never touches the state store (beyond its
// Ledger), the event log, metrics or hooks (it tells its Observer what it does). When
// the file host refuses the links, the pass ends in a Retry of class links_expired and
// the scheduler asks again at once.
//
//   raw export (raw_export.cpp)  one answer of links by data type -> parts -> partitions
//   chart      (chart.cpp)       one document per chart id -> chart.json + chart.csv
//   user list  (user_list.cpp)   one answer of links per list id -> parts -> partitions

#include <boost/asio/awaitable.hpp>

#include "api/client.hpp"
#include "archive/archive.hpp"
#include "config/config.hpp"
#include "slot/slot.hpp"
#include "work/downloads.hpp"
#include "work/outcome.hpp"

namespace gio::work {

// What a pass needs; the references outlive it.
struct SlotWork {
  const config::Job& job;
  const config::Project& project;
  const Slot& slot;
  api::Client& api;
  api::Turn turn;  // the slot's place in the project's rate-limit queue
  Ledger& ledger;
  const archive::Archive& archive;
  const Clock& clock;
  Downloads& downloads;
  Observer& observer;
};

// A failed API call as a pass's result: retried later when the error is transient (with
// the server's Retry-After), failed otherwise.
Result result_of(const api::Error& error);

// The pass of the job's kind.
boost::asio::awaitable<Outcome> run(const SlotWork& work);

boost::asio::awaitable<Outcome> raw_export(const SlotWork& work, const config::RawJob& raw);
boost::asio::awaitable<Outcome> chart(const SlotWork& work, const config::ChartJob& chart);
boost::asio::awaitable<Outcome> user_lists(const SlotWork& work, const config::UserListJob& lists);

}  // namespace gio::work
