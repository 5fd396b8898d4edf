#pragma once

// Changes to a few files of one directory, as they happen (inotify), so that an idle
// daemon sleeps until something changes instead of looking every few seconds.

#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>

namespace gio::async {

class DirWatch {
 public:
  // Calls on_change on the executor after events on any of `names` in `dir` (created,
  // written, closed after writing, renamed or deleted), or on the directory itself
  // (moved or deleted), or when the kernel dropped events (its queue overflowed): once
  // per batch read, not once per event. When inotify is unavailable (its limits reached,
  // a filesystem without it), active() is false and why() says why: the caller polls.
  DirWatch(boost::asio::any_io_executor executor, const std::filesystem::path& dir,
           std::set<std::string> names, std::function<void()> on_change);
  ~DirWatch();
  DirWatch(const DirWatch&) = delete;
  DirWatch& operator=(const DirWatch&) = delete;

  // False too once the directory is gone (moved or deleted: its watch ends with it).
  bool active() const { return state_ != nullptr && !state_->ended; }
  const std::string& why() const { return why_; }

 private:
  struct State {
    boost::asio::posix::stream_descriptor stream;
    std::set<std::string> names;
    std::function<void()> on_change;
    // Room for many events at once: a burst of writes is one read, one call.
    alignas(8) std::array<char, 16 * 1024> buffer{};
    bool stopped = false;  // the watch was destroyed
    bool ended = false;    // the kernel ended the watch (IN_IGNORED) or the read failed
  };
  static void read_next(const std::shared_ptr<State>& state);
  std::shared_ptr<State> state_;
  std::string why_;
};

}  // namespace gio::async
