#pragma once

// Counters and gauges in the Prometheus text exposition format (version 0.0.4).
//
// A Registry belongs to the daemon's one io_context thread: modules count into it as
// things happen (API calls, archived files, failures), and the metrics listener sets
// the gauges it reads from the state store just before each scrape.

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gio::ops {

// Label names and values, in the order they are written.
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class Kind { counter, gauge };

class Registry {
 public:
  // Declares a metric family: its HELP text and TYPE. add()/set() on a name not
  // declared throw std::logic_error (a typo must not create a silent new series).
  void declare(std::string name, Kind kind, std::string help);

  // counter += by (by >= 0).
  void add(std::string_view name, const Labels& labels = {}, double by = 1);
  // gauge = value.
  void set(std::string_view name, const Labels& labels, double value);
  // Drops every series of a family (gauges recomputed from scratch at each scrape).
  void clear(std::string_view name);
  // The value of one series; 0 when it has none yet.
  double value(std::string_view name, const Labels& labels = {}) const;

  // Every family with at least one series, by name: "# HELP", "# TYPE", then one line
  // per series, label values escaped as the format requires.
  std::string text() const;

 private:
  struct Family {
    Kind kind = Kind::counter;
    std::string help;
    std::map<std::string, double> series;  // rendered labels ("{a=\"b\"}") -> value
  };
  Family& family(std::string_view name);
  const Family* find(std::string_view name) const;

  std::map<std::string, Family, std::less<>> families_;
};

}  // namespace gio::ops
