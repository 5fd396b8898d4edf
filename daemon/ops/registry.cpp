#include "ops/registry.hpp"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace gio::ops {

void Registry::declare(std::string name, Kind kind, std::string help) {
  if (help.find_first_of("\\\n") != std::string::npos) {
    throw std::logic_error("metric " + name + ": HELP text with a backslash or line feed");
  }
  if (const auto found = families_.find(name); found != families_.end()) {
    // Declared again (same name, maybe another kind): start it afresh.
    drop(found->second);
  }
  Family& declared = families_[name];
  declared = Family{.kind = kind, .help = std::move(help)};
  build(name, declared);
}

void Registry::build(const std::string& name, Family& family) {
  if (family.kind == Kind::counter) {
    family.counters = &prometheus::BuildCounter().Name(name).Help(family.help).Register(registry_);
  } else {
    family.gauges = &prometheus::BuildGauge().Name(name).Help(family.help).Register(registry_);
  }
}

void Registry::drop(Family& family) {
  if (family.counters != nullptr) {
    registry_.Remove(*family.counters);
  }
  if (family.gauges != nullptr) {
    registry_.Remove(*family.gauges);
  }
  family.counters = nullptr;
  family.gauges = nullptr;
}

Registry::Family& Registry::family(std::string_view name) {
  const auto found = families_.find(name);
  if (found == families_.end()) {
    throw std::logic_error("metric " + std::string{name} + " was not declared");
  }
  return found->second;
}

void Registry::add(std::string_view name, const Labels& labels, double by) {
  Family& found = family(name);
  const prometheus::Labels series{labels.begin(), labels.end()};
  if (found.kind == Kind::counter) {
    found.counters->Add(series).Increment(by);
  } else {
    found.gauges->Add(series).Increment(by);
  }
}

void Registry::set(std::string_view name, const Labels& labels, double value) {
  Family& found = family(name);
  if (found.kind == Kind::counter) {
    throw std::logic_error("metric " + std::string{name} + " is a counter: add() to it");
  }
  found.gauges->Add(prometheus::Labels{labels.begin(), labels.end()}).Set(value);
}

void Registry::advance_to(std::string_view name, const Labels& labels, double value) {
  Family& found = family(name);
  if (found.kind != Kind::counter) {
    throw std::logic_error("metric " + std::string{name} + " is a gauge: set() it");
  }
  prometheus::Counter& counter =
      found.counters->Add(prometheus::Labels{labels.begin(), labels.end()});
  if (value > counter.Value()) {
    counter.Increment(value - counter.Value());
  }
}

void Registry::clear(std::string_view name) {
  Family& found = family(name);
  // prometheus-cpp has no "remove every series": the family goes and comes back empty.
  drop(found);
  build(families_.find(name)->first, found);
}

double Registry::value(std::string_view name, const Labels& labels) const {
  const auto found = families_.find(name);
  if (found == families_.end()) {
    return 0;
  }
  const Family& family = found->second;
  const prometheus::Labels series{labels.begin(), labels.end()};
  // Add() on labels it has returns the existing series; Has() first keeps it from
  // creating one.
  if (family.counters != nullptr) {
    return family.counters->Has(series) ? family.counters->Add(series).Value() : 0;
  }
  return family.gauges->Has(series) ? family.gauges->Add(series).Value() : 0;
}

std::string Registry::text() const {
  // prometheus-cpp collects families in the order they were registered and series in
  // hash order; sorted, a scrape reads the same from one time to the next.
  std::vector<prometheus::MetricFamily> families = registry_.Collect();
  std::sort(families.begin(), families.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (prometheus::MetricFamily& family : families) {
    // Sorted through indices: a ClientMetric is large, and swapping it costs more than
    // the comparisons.
    std::vector<std::size_t> order(family.metric.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&family](std::size_t a, std::size_t b) {
      return family.metric[a].label < family.metric[b].label;
    });
    std::vector<prometheus::ClientMetric> sorted;
    sorted.reserve(order.size());
    for (const std::size_t index : order) {
      sorted.push_back(std::move(family.metric[index]));
    }
    family.metric = std::move(sorted);
  }
  return prometheus::TextSerializer{}.Serialize(families);
}

}  // namespace gio::ops
