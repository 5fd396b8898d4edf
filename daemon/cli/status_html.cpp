// The status page's HTML, rendered from the /api/slots body (status_page.hpp), so that
// the first answer already shows every calendar; page.js renders the same markup from
// the same JSON on each refresh.

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "cli/status_page.hpp"
#include "report/format.hpp"

namespace gio::cli {

namespace json = boost::json;

namespace {

// The most urgent slots listed above a job's calendar: enough to act on at a glance; the
// calendar below marks the others.
constexpr std::size_t kAttentionShown = 8;

// The character of each shown state (page.js and the legend in index.html use the same
// ones): colour is not the only clue.
std::string_view glyph(std::string_view state) {
  static const std::map<std::string_view, std::string_view> glyphs = {
      {"done", "✓"},   {"waiting", "…"}, {"downloading", "↓"}, {"uploading", "↑"},
      {"failed", "✗"}, {"lost", "!"},    {"not_ready", "○"},   {"unplanned", "?"}};
  const auto found = glyphs.find(state);
  return found == glyphs.end() ? "·" : found->second;
}

void escape_into(std::string& out, std::string_view text) {
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
}

std::string escape(std::string_view text) {
  std::string out;
  escape_into(out, text);
  return out;
}

std::string_view text(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value && value->is_string() ? std::string_view{value->as_string()} : std::string_view{};
}

std::int64_t number(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (value && value->is_int64()) {
    return value->as_int64();
  }
  return value && value->is_uint64() ? static_cast<std::int64_t>(value->as_uint64()) : 0;
}

// A state as the legend words it ("not ready", not "not_ready").
std::string words(std::string_view state) {
  std::string out{state};
  std::replace(out.begin(), out.end(), '_', ' ');
  return out;
}

// "10:40 UTC" on the day of `now`, else "Dec 7 06:00 UTC": short, and plainly UTC (slot
// names are Beijing time). As page.js's shortUtc.
std::string short_utc(Instant at, Instant now) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto day = std::chrono::floor<std::chrono::days>(at);
  const std::chrono::hh_mm_ss time{at - day};
  char hm[8];
  std::snprintf(hm, sizeof hm, "%02d:%02d", static_cast<int>(time.hours().count()),
                static_cast<int>(time.minutes().count()));
  std::string out;
  if (day != std::chrono::floor<std::chrono::days>(now)) {
    const std::chrono::year_month_day date{day};
    out = std::string{kMonths[static_cast<unsigned>(date.month()) - 1]} + " " +
          std::to_string(static_cast<unsigned>(date.day())) + " ";
  }
  return out + hm + " UTC";
}

// "Next ask: slot 2026-11-22T17 (Beijing), in 30m — 10:40 UTC".
std::string next_ask(const json::object& next, std::string_view generated_at) {
  const std::string_view at_text = text(next, "at");
  const auto at = parse_utc(at_text);
  const auto now = parse_utc(generated_at);
  std::string out =
      "<p class=\"next\">Next ask: slot <b>" + escape(text(next, "slot")) + "</b> (Beijing), ";
  if (!at || !now) {
    return out + escape(at_text) + "</p>";
  }
  out += *at > *now ? "in " + report::format_in(*at - *now) : std::string{"now"};
  return out + " — <time datetime=\"" + escape(at_text) + "\">" + short_utc(*at, *now) +
         "</time></p>";
}

std::string left(const json::object& cell) {
  return report::format_left(std::chrono::seconds{number(cell, "seconds_left")});
}

// What a cell's tooltip says: the slot, its state, and what went wrong if anything.
std::string title(const json::object& cell) {
  std::string out{text(cell, "slot")};
  if (const std::string_view chart = text(cell, "chart"); !chart.empty()) {
    out += " chart " + std::string{chart};
  }
  out += " · " + words(text(cell, "state"));
  if (const auto attempts = number(cell, "attempts"); attempts > 0) {
    out += " · " + std::to_string(attempts) + " attempt(s)";
  }
  if (const std::string_view error = text(cell, "last_error"); !error.empty()) {
    out += " · " + std::string{error};
  }
  out += " · " + left(cell) + " left";
  return out;
}

void slot_attributes(std::string& out, std::string_view job, const json::object& cell) {
  out += " data-job=\"" + escape(job) + "\" data-slot=\"" + escape(text(cell, "slot")) +
         "\" data-state=\"" + escape(text(cell, "state")) + "\"";
  if (const std::string_view chart = text(cell, "chart"); !chart.empty()) {
    out += " data-chart=\"" + escape(chart) + "\"";
  }
  const json::value* risk = cell.if_contains("at_risk");
  if (risk && risk->is_bool() && risk->as_bool()) {
    out += " data-risk=\"1\"";
  }
}

void render_cell(std::string& out, std::string_view job, const json::object& cell) {
  out += "<button type=\"button\" class=\"cell\"";
  slot_attributes(out, job, cell);
  out += " title=\"" + escape(title(cell)) + "\">" + std::string{glyph(text(cell, "state"))} +
         "</button>";
}

void render_row(std::string& out, std::string_view label, std::string_view job,
                const std::vector<const json::object*>& cells) {
  out +=
      "<div class=\"row\"><span class=\"label\">" + escape(label) + "</span><div class=\"cells\">";
  for (const json::object* cell : cells) {
    render_cell(out, job, *cell);
  }
  out += "</div></div>";
}

// Hourly: a row per day. Daily: a row per chart (or one row), a cell per day, so that a
// fortnight reads left to right as the hours do.
void render_calendar(std::string& out, const json::object& job) {
  const std::string_view name = text(job, "job");
  const bool hourly = text(job, "granularity") == "hour";
  out += std::string{"<div class=\"calendar "} + (hourly ? "hourly" : "daily") + "\">";
  const json::array& days = job.at("days").as_array();
  if (hourly) {
    out +=
        "<div class=\"row hours\" aria-hidden=\"true\"><span class=\"label\"></span><div "
        "class=\"cells\">";
    for (int hour = 0; hour < 24; ++hour) {
      out += "<span>" + std::to_string(hour) + "</span>";
    }
    out += "</div></div>";
    for (const json::value& day : days) {
      std::vector<const json::object*> cells;
      for (const json::value& cell : day.at("cells").as_array()) {
        cells.push_back(&cell.as_object());
      }
      render_row(out, text(day.as_object(), "date"), name, cells);
    }
  } else {
    std::vector<std::pair<std::string, std::vector<const json::object*>>> rows;
    for (const json::value& day : days) {
      for (const json::value& value : day.at("cells").as_array()) {
        const std::string chart{text(value.as_object(), "chart")};
        auto row = std::find_if(rows.begin(), rows.end(),
                                [&](const auto& entry) { return entry.first == chart; });
        if (row == rows.end()) {
          row = rows.insert(rows.end(), {chart, {}});
        }
        row->second.push_back(&value.as_object());
      }
    }
    for (const auto& [chart, cells] : rows) {
      render_row(out, chart.empty() ? "days" : chart, name, cells);
    }
  }
  out += "</div>";
}

void render_attention(std::string& out, const json::object& job) {
  out += "<ul class=\"attention\">";
  const json::array& attention = job.at("attention").as_array();
  for (std::size_t i = 0; i < attention.size() && i < kAttentionShown; ++i) {
    const json::object& cell = attention[i].as_object();
    out += "<li";
    slot_attributes(out, text(job, "job"), cell);
    out += "><span class=\"glyph\">" + std::string{glyph(text(cell, "state"))} +
           "</span> <b class=\"slot\">" + escape(text(cell, "slot")) + "</b>";
    if (const std::string_view chart = text(cell, "chart"); !chart.empty()) {
      out += " <span class=\"chart\">" + escape(chart) + "</span>";
    }
    out += " <span class=\"state\">" + escape(words(text(cell, "state"))) + "</span>";
    if (const std::string_view error = text(cell, "last_error"); !error.empty()) {
      out += " <span class=\"error\">" + escape(error) + "</span>";
    }
    out += " <span class=\"left\">" + escape(left(cell)) + " left</span></li>";
  }
  out += "</ul>";
  if (attention.size() > kAttentionShown) {
    out += "<p class=\"more\">and " + std::to_string(attention.size() - kAttentionShown) +
           " more (the calendar shows them)</p>";
  }
}

void render_job(std::string& out, const json::object& job, std::string_view generated_at) {
  const std::string name = escape(text(job, "job"));
  out += "<section class=\"job\" data-job=\"" + name + "\"><header class=\"job-head\"><h2>" + name +
         "</h2><span class=\"tags\">" + escape(text(job, "kind")) + " · " +
         escape(text(job, "granularity"));
  if (const std::string_view sink = text(job, "sink"); !sink.empty()) {
    out += " · sink " + escape(sink);
  }
  out += "</span></header><ul class=\"counts\">";
  for (const auto& [state, count] : job.at("counts").as_object()) {
    if (count.is_number() && count.to_number<std::int64_t>() > 0) {
      out += "<li data-state=\"" + escape(state) + "\"><span class=\"glyph\">" +
             std::string{glyph(state)} + "</span>" +
             std::to_string(count.to_number<std::int64_t>()) + " " + escape(words(state)) + "</li>";
    }
  }
  out += "</ul>";
  if (const json::value* next = job.if_contains("next_ask"); next && next->is_object()) {
    out += next_ask(next->as_object(), generated_at);
  }
  render_attention(out, job);
  render_calendar(out, job);
  out += "</section>\n";
}

std::string render_daemon(const json::object& daemon) {
  std::string out =
      "version " + escape(text(daemon, "version")) + " · up " +
      escape(report::format_in(std::chrono::seconds{number(daemon, "uptime_seconds")})) +
      " · last reload ";
  const std::string_view reload = text(daemon, "last_reload");
  out += reload.empty() ? std::string{"none"} : escape(reload);
  return out;
}

void replace(std::string& page, std::string_view mark, std::string_view with) {
  if (const auto at = page.find(mark); at != std::string::npos) {
    page.replace(at, mark.size(), with);
  }
}

}  // namespace

std::string render_page(std::string_view page_template, const json::object& slots) {
  std::string jobs;
  for (const json::value& job : slots.at("jobs").as_array()) {
    render_job(jobs, job.as_object(), text(slots, "generated_at"));
  }
  std::string page{page_template};
  replace(page, "@GENERATED_AT@", escape(text(slots, "generated_at")));
  replace(page, "@DAEMON@", render_daemon(slots.at("daemon").as_object()));
  replace(page, "@JOBS@", jobs);
  return page;
}

}  // namespace gio::cli
