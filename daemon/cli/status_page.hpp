#pragma once
// The status page of `run` (issue 17): `/` (the calendar of every job, rendered here),
// `/page.js`, `/page.css` (embedded at build time from daemon/cli/page/) and
// `/api/slots` (report::slots_json and the daemon's own facts). Read-only: it answers
// from the state store and the config, on the daemon's loop, so its answers are cached
// for a few seconds or until the store changes (another process's commit or the daemon's
// own writes), but rendered at most every 250 ms.

#include <boost/json/object.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "ops/server.hpp"
#include "slot/slot.hpp"
#include "state/state_store.hpp"

namespace gio::cli {

class StatusPage {
 public:
  StatusPage(state::StateStore& store, const Clock& clock);

  // The answer to `request` when its path is one of the page's, else nullopt.
  std::optional<ops::Reply> answer(const ops::Request& request, const config::Config& config);
  // A reload applied a config at `at`: the header says when, and the cache is stale.
  void reloaded(Instant at);

 private:
  // One query's answers, built once per period from one slots_json: the JSON, and the
  // page rendered from the same data when `/` asks for it.
  struct Cached {
    unsigned status = 200;
    std::shared_ptr<const std::string> json;
    std::shared_ptr<const std::string> html;  // null until `/` asks (status 200 only)
    Clock::SteadyTime made;
    std::int64_t data_version = 0;
    std::int64_t own_changes = 0;
  };
  ops::Reply slots(std::string_view query, const config::Config& config, bool html);
  // Before adding an answer: past the bounds, drop every one but the default's.
  void make_room();
  Cached render(std::string_view query, const config::Config& config, bool html);
  static void add_page(Cached& cached);
  boost::json::object daemon_facts(Instant now) const;

  state::StateStore& store_;
  const Clock& clock_;
  const Instant started_at_;
  std::optional<Instant> last_reload_;
  std::map<std::string, Cached, std::less<>> cache_;
};

// The whole page: `page_template` (index.html) with the daemon's facts and every job's
// calendar from `slots` (the /api/slots body). Every text is HTML-escaped.
std::string render_page(std::string_view page_template, const boost::json::object& slots);

}  // namespace gio::cli
