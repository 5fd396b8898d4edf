#include "ops/registry.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <stdexcept>

namespace gio::ops {
namespace {

// Label values: backslash, double quote and line feed escaped. HELP text: backslash
// and line feed.
std::string escape(std::string_view text, bool quotes) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::string render(const Labels& labels) {
  if (labels.empty()) {
    return "";
  }
  std::string out = "{";
  for (const auto& [name, value] : labels) {
    if (out.size() > 1) {
      out += ',';
    }
    out += name + "=\"" + escape(value, true) + "\"";
  }
  return out + "}";
}

std::string format_value(double value) {
  if (std::isnan(value)) {
    return "NaN";
  }
  if (std::isinf(value)) {
    return value > 0 ? "+Inf" : "-Inf";
  }
  // Whole numbers (counts, bytes, unix seconds) print exactly, without an exponent.
  if (value == std::floor(value) && std::fabs(value) < 9e15) {
    return std::to_string(static_cast<std::int64_t>(value));
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  return buffer;
}

}  // namespace

void Registry::declare(std::string name, Kind kind, std::string help) {
  Family& declared = families_[std::move(name)];
  declared.kind = kind;
  declared.help = std::move(help);
}

Registry::Family& Registry::family(std::string_view name) {
  const auto found = families_.find(name);
  if (found == families_.end()) {
    throw std::logic_error("metric " + std::string{name} + " was not declared");
  }
  return found->second;
}

const Registry::Family* Registry::find(std::string_view name) const {
  const auto found = families_.find(name);
  return found == families_.end() ? nullptr : &found->second;
}

void Registry::add(std::string_view name, const Labels& labels, double by) {
  family(name).series[render(labels)] += by;
}

void Registry::set(std::string_view name, const Labels& labels, double value) {
  family(name).series[render(labels)] = value;
}

void Registry::clear(std::string_view name) {
  family(name).series.clear();
}

double Registry::value(std::string_view name, const Labels& labels) const {
  const Family* found = find(name);
  if (found == nullptr) {
    return 0;
  }
  const auto series = found->series.find(render(labels));
  return series == found->series.end() ? 0 : series->second;
}

std::string Registry::text() const {
  std::string out;
  for (const auto& [name, family] : families_) {
    if (family.series.empty()) {
      continue;
    }
    out += "# HELP " + name + " " + escape(family.help, false) + "\n";
    out += "# TYPE " + name + (family.kind == Kind::counter ? " counter\n" : " gauge\n");
    for (const auto& [labels, value] : family.series) {
      out += name + labels + " " + format_value(value) + "\n";
    }
  }
  return out;
}

}  // namespace gio::ops
