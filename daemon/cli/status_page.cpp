// The status page's routes, its query parameters and its cache (status_page.hpp).

#include "cli/status_page.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <stdexcept>

#include "report/slot_view.hpp"
#include "version.hpp"

namespace gio::cli {

// Generated from daemon/cli/page/ by cmake/embed_files.cmake.
namespace page_files {
extern const std::string_view kIndexHtml;
extern const std::string_view kPageJs;
extern const std::string_view kPageCss;
}  // namespace page_files

namespace json = boost::json;

namespace {

// A rendered answer is reused for this long (the page polls every 5 s; 20 of them cost
// one render per query and period), or until the store changes, but for at least
// kRebuiltAfter.
constexpr std::chrono::seconds kFresh{2};
constexpr std::chrono::milliseconds kRebuiltAfter{250};
// Distinct queries kept, and their answers' bytes in all (an answer is ~1 MiB for the
// default range of a large config; a query may cover at most kRetention + 1 days, see
// report::SlotQuery). Past either the cache starts again but for the default answer
// (key ""), which the polling pages share: a client varying its query must neither grow
// the daemon's memory nor make every poller's answer be rendered again.
constexpr std::size_t kMaxCached = 16;
constexpr std::size_t kMaxCachedBytes = std::size_t{32} << 20;

// Scripts and styles only from this origin's own files, nothing inline, no frames, no
// forms: the page shows what the store holds and can do nothing else.
constexpr std::string_view kPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

void common_headers(ops::Reply& reply) {
  reply.headers.emplace_back("X-Content-Type-Options", "nosniff");
  reply.headers.emplace_back("Referrer-Policy", "no-referrer");
}

ops::Reply asset(std::shared_ptr<const std::string> body, std::string_view type) {
  ops::Reply reply{.content_type = std::string{type}, .shared_body = std::move(body)};
  common_headers(reply);
  reply.headers.emplace_back("Cache-Control", "no-cache");
  return reply;
}

// Embedded and never changing while the binary runs: copied into a string once, then
// shared by every answer.
std::shared_ptr<const std::string> page_js() {
  static const auto body = std::make_shared<const std::string>(page_files::kPageJs);
  return body;
}

std::shared_ptr<const std::string> page_css() {
  static const auto body = std::make_shared<const std::string>(page_files::kPageCss);
  return body;
}

json::object error_json(std::string_view message) {
  return json::object{{"error", message}};
}

// job, from, to of a query string; "" counts as absent. Throws std::invalid_argument
// for another parameter, one given twice, or one that is not well encoded.
report::SlotQuery parse_query(std::string_view query) {
  report::SlotQuery parsed{.within_retention = true};
  if (query.empty()) {
    return parsed;
  }
  const std::string target = "?" + std::string{query};
  const auto ref = boost::urls::parse_relative_ref(target);
  if (!ref) {
    throw std::invalid_argument("the query is not well encoded");
  }
  bool seen_job = false, seen_from = false, seen_to = false;
  for (const auto& param : ref->params()) {
    const auto set = [&](std::optional<std::string>& field, bool& seen) {
      if (std::exchange(seen, true)) {
        throw std::invalid_argument(param.key + ": given twice");
      }
      if (!param.value.empty()) {
        field = param.value;
      }
    };
    if (param.key == "job") {
      set(parsed.job, seen_job);
    } else if (param.key == "from") {
      set(parsed.from, seen_from);
    } else if (param.key == "to") {
      set(parsed.to, seen_to);
    } else {
      throw std::invalid_argument("unknown parameter (job, from and to are known)");
    }
  }
  return parsed;
}

}  // namespace

StatusPage::StatusPage(state::StateStore& store, const Clock& clock)
    : store_(store), clock_(clock), started_at_(clock.now()) {}

void StatusPage::reloaded(Instant at) {
  last_reload_ = at;
  cache_.clear();  // jobs may have come or gone
}

std::optional<ops::Reply> StatusPage::answer(const ops::Request& request,
                                             const config::Config& config) {
  if (request.path == "/") {
    // The page takes no parameter of its own (?refresh= is for its script).
    return slots("", config, true);
  }
  if (request.path == "/api/slots") {
    return slots(request.query, config, false);
  }
  if (request.path == "/page.js") {
    return asset(page_js(), "text/javascript; charset=utf-8");
  }
  if (request.path == "/page.css") {
    return asset(page_css(), "text/css; charset=utf-8");
  }
  return std::nullopt;
}

ops::Reply StatusPage::slots(std::string_view query, const config::Config& config, bool html) {
  const auto now = clock_.steady();  // the ages below, on the clock tests drive
  // Another process's commit moves data_version, the daemon's own writes own_changes:
  // either makes the answer stale (a slot turning done shows on the next poll), but it is
  // built at most every kRebuiltAfter, so that a busy loop writing many slots while
  // pages poll does not render for every request.
  const std::int64_t version = store_.data_version();
  const std::int64_t changes = store_.own_changes();
  auto found = cache_.find(query);
  const auto changed = [&](const Cached& cached) {
    return cached.data_version != version || cached.own_changes != changes;
  };
  if (found == cache_.end() || now - found->second.made >= kFresh ||
      (changed(found->second) && now - found->second.made >= kRebuiltAfter)) {
    // Drop the stale answer first: the new one is built without both in memory (a client
    // still sending the old one holds its own reference).
    if (found != cache_.end()) {
      cache_.erase(found);
    }
    make_room();
    Cached fresh = render(query, config, html);
    fresh.made = now;
    fresh.data_version = version;
    fresh.own_changes = changes;
    found = cache_.emplace(std::string{query}, std::move(fresh)).first;
  } else if (html && found->second.status == 200 && !found->second.html) {
    add_page(found->second);
  }
  const Cached& cached = found->second;
  const bool page = html && cached.status == 200;
  ops::Reply reply{.status = cached.status,
                   .content_type = page ? "text/html; charset=utf-8" : "application/json",
                   .shared_body = page ? cached.html : cached.json};
  common_headers(reply);
  reply.headers.emplace_back("Cache-Control", "no-store");
  if (html) {
    reply.headers.emplace_back("Content-Security-Policy", std::string{kPolicy});
  }
  return reply;
}

void StatusPage::make_room() {
  std::size_t bytes = 0;
  for (const auto& [query, cached] : cache_) {
    bytes += (cached.json ? cached.json->size() : 0) + (cached.html ? cached.html->size() : 0);
  }
  if (cache_.size() < kMaxCached && bytes < kMaxCachedBytes) {
    return;
  }
  std::erase_if(cache_, [](const auto& entry) { return !entry.first.empty(); });
}

StatusPage::Cached StatusPage::render(std::string_view query, const config::Config& config,
                                      bool html) {
  const Instant now = clock_.now();
  Cached cached;
  json::object body;
  try {
    body = report::slots_json(config, store_, now, parse_query(query));
    body["daemon"] = daemon_facts(now);
  } catch (const report::UnknownJob& error) {
    cached.status = 404;
    body = error_json(error.what());
  } catch (const std::invalid_argument& error) {
    cached.status = 400;
    body = error_json(error.what());
  }
  cached.json = std::make_shared<const std::string>(json::serialize(body));
  if (html && cached.status == 200) {
    cached.html = std::make_shared<const std::string>(render_page(page_files::kIndexHtml, body));
  }
  return cached;  // the tree goes here: only the strings are kept
}

// `/` after /api/slots built the period's data: the page from the same JSON (parsing it
// back costs less than asking the store again, and keeps both answers the same data).
void StatusPage::add_page(Cached& cached) {
  const json::value body = json::parse(*cached.json);
  cached.html =
      std::make_shared<const std::string>(render_page(page_files::kIndexHtml, body.as_object()));
}

json::object StatusPage::daemon_facts(Instant now) const {
  return json::object{
      {"version", kVersion},
      {"started_at", format_utc(started_at_)},
      {"uptime_seconds", std::max<std::int64_t>(0, to_unix(now) - to_unix(started_at_))},
      {"last_reload", last_reload_ ? json::value(format_utc(*last_reload_)) : json::value()}};
}

}  // namespace gio::cli
