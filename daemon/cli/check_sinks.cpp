// check-config's part for sinks: rclone runs, each sink's remote parses, and (unless
// --no-secrets: listing needs the remote's credentials) each remote can be listed.
// Every message names the sink, never its remote string.

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "async/run.hpp"
#include "cli/commands.hpp"
#include "sink/sink.hpp"

namespace gio::cli {

std::vector<config::Problem> check_sinks(const std::string& file, const config::Config& config,
                                         bool list) {
  std::vector<config::Problem> problems;
  if (config.sinks.empty()) {
    return problems;
  }
  boost::asio::io_context io;
  boost::asio::thread_pool pool{1};
  for (const config::Sink& settings : config.sinks) {
    sink::Sink sink{io.get_executor(), settings, pool};
    try {
      async::run_to_end(io, sink.validate());
      if (list) {
        async::run_to_end(io, sink.probe());
      }
    } catch (const sink::SinkError& error) {
      problems.push_back({file, settings.place.line, settings.place.column, error.what()});
      if (error.kind() == sink::SinkError::Kind::setup &&
          std::string_view{error.what()}.find("rclone does not run") != std::string_view::npos) {
        break;  // the same for every sink
      }
    }
  }
  return problems;
}

}  // namespace gio::cli
