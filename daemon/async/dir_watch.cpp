#include "async/dir_watch.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gio::async {

namespace asio = boost::asio;

namespace {

constexpr std::uint32_t kFileEvents =
    IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE;
constexpr std::uint32_t kDirEvents = IN_DELETE_SELF | IN_MOVE_SELF | IN_Q_OVERFLOW | IN_IGNORED;

}  // namespace

DirWatch::DirWatch(asio::any_io_executor executor, const std::filesystem::path& dir,
                   std::set<std::string> names, std::function<void()> on_change) {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    why_ = std::string{"inotify_init1: "} + std::strerror(errno);
    return;
  }
  const std::string path = dir.empty() ? std::string{"."} : dir.string();
  if (::inotify_add_watch(fd, path.c_str(), kFileEvents | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
    why_ = "inotify_add_watch " + path + ": " + std::strerror(errno);
    ::close(fd);
    return;
  }
  auto state = std::make_shared<State>(State{.stream = asio::posix::stream_descriptor{executor},
                                             .names = std::move(names),
                                             .on_change = std::move(on_change)});
  // Registering with the reactor can fail (epoll out of memory or watches): then the
  // caller polls, as without inotify, rather than the daemon stopping.
  boost::system::error_code error;
  state->stream.assign(fd, error);
  if (error) {
    why_ = "watching " + path + ": " + error.message();
    ::close(fd);
    return;
  }
  state_ = std::move(state);
  read_next(state_);
}

DirWatch::~DirWatch() {
  if (state_) {
    state_->stopped = true;
    boost::system::error_code ignored;
    state_->stream.close(ignored);
  }
}

void DirWatch::read_next(const std::shared_ptr<State>& state) {
  state->stream.async_read_some(
      asio::buffer(state->buffer), [state](const boost::system::error_code& error, std::size_t n) {
        if (state->stopped) {
          return;
        }
        if (error) {
          if (error == asio::error::operation_aborted) {
            return;
          }
          // An unreadable descriptor tells nothing more: said as a change once, so the
          // caller looks, and polls from then on (active() is false).
          state->ended = true;
          state->on_change();
          return;
        }
        bool changed = false;
        for (std::size_t at = 0; at + sizeof(inotify_event) <= n;) {
          const auto* event = reinterpret_cast<const inotify_event*>(state->buffer.data() + at);
          at += sizeof(inotify_event) + event->len;
          if ((event->mask & kDirEvents) != 0) {
            changed = true;
            state->ended = state->ended || (event->mask & IN_IGNORED) != 0;
          } else if (event->len > 0 && state->names.contains(event->name)) {
            changed = true;
          }
        }
        if (changed) {
          state->on_change();
        }
        if (!state->stopped && !state->ended) {
          read_next(state);
        }
      });
}

}  // namespace gio::async
