#pragma once

// Counters and gauges in the Prometheus text exposition format (version 0.0.4), kept
// by prometheus-cpp's core library (docs/architecture.md says why a library).
//
// A Registry belongs to the daemon's one io_context thread: modules count into it as
// things happen (API calls, archived files, failures), and the metrics listener sets
// the gauges it reads from the state store just before each scrape.

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gio::ops {

// Label names and values (written sorted by name).
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class Kind { counter, gauge };

class Registry {
 public:
  // Declares a metric family: its HELP text and TYPE. add()/set() on a name not
  // declared throw std::logic_error (a typo must not create a silent new series), and
  // so does a HELP text with a backslash or a line feed (prometheus-cpp 1.0 writes
  // HELP unescaped).
  void declare(std::string name, Kind kind, std::string help);

  // counter += by (by >= 0), or gauge += by.
  void add(std::string_view name, const Labels& labels = {}, double by = 1);
  // gauge = value (a counter only goes up: std::logic_error).
  void set(std::string_view name, const Labels& labels, double value);
  // A counter kept elsewhere (the kernel's CPU time): raised to `value`, never lowered,
  // so it still only goes up. std::logic_error on a gauge.
  void advance_to(std::string_view name, const Labels& labels, double value);
  // Drops every series of a family (gauges recomputed from scratch at each scrape).
  void clear(std::string_view name);
  // The value of one series; 0 when it has none yet.
  double value(std::string_view name, const Labels& labels = {}) const;

  // Every family with at least one series, by name: "# HELP", "# TYPE", then one line
  // per series, sorted, label values escaped as the format requires.
  std::string text() const;

 private:
  struct Family {
    Kind kind = Kind::counter;
    std::string help;
    prometheus::Family<prometheus::Counter>* counters = nullptr;  // owned by registry_
    prometheus::Family<prometheus::Gauge>* gauges = nullptr;
  };
  Family& family(std::string_view name);
  // Creates the family's series in registry_ (again, after clear()).
  void build(const std::string& name, Family& family);
  // Removes the family's series from registry_.
  void drop(Family& family);

  prometheus::Registry registry_;
  std::map<std::string, Family, std::less<>> families_;
};

}  // namespace gio::ops
