#pragma once

// Commands of other processes (retry, backfill, requeue, verify --repair: anything that
// writes the state database), seen as they commit rather than by polling: the idle
// daemon then sleeps until its next deadline.
//
// inotify on the database's directory says that the database, its WAL or its journal
// was written; SQLite's data_version (through `changed`) says whether another
// connection committed. The daemon's own writes fire the same events but leave
// data_version as it was, so they cost a look each and never a pass of the loop.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "async/dir_watch.hpp"

namespace gio::scheduler {

class QueueWatch {
 public:
  // `changed`: whether another connection committed since it was last asked (true
  // when it cannot tell). `on_change`: called when it did.
  QueueWatch(boost::asio::any_io_executor executor, const std::filesystem::path& db,
             std::function<bool()> changed, std::function<void()> on_change);

  // False when inotify is unavailable, or the directory's watch ended: the caller polls
  // `changed` itself (said once, as event=queue_watch).
  bool active() const { return dir_->active(); }
  const std::string& why() const { return dir_->why(); }

 private:
  void look();
  void say_if_polled();  // once, when the directory cannot be (or is no longer) watched

  std::function<bool()> changed_;
  std::function<void()> on_change_;
  void recheck(std::size_t index);  // the index-th look after the last event (kRechecks)

  boost::asio::steady_timer recheck_;
  std::uint64_t recheck_series_ = 0;  // one per event: a newer one supersedes the series
  bool said_polled_ = false;
  std::optional<async::DirWatch> dir_;  // last: its events call look()
};

}  // namespace gio::scheduler
