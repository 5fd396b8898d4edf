// Slot names: Slot::parse accepts only canonical names, so that a parsed name always
// round-trips (Slot::parse(s)->name() == s), and a slot's other forms agree with it.

#include <cstddef>
#include <cstdint>

#include "fuzz_check.hpp"
#include "slot/slot.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = gio::fuzz::as_text(data, size);
  for (const gio::Granularity granularity : {gio::Granularity::hour, gio::Granularity::day}) {
    const auto slot = gio::Slot::parse(text, granularity);
    if (!slot) {
      continue;
    }
    const std::string name = slot->name();
    GIO_FUZZ_CHECK(name == text, "parse(s).name() is not s: '" + name + "'");
    GIO_FUZZ_CHECK(slot->granularity() == granularity, "granularity");
    GIO_FUZZ_CHECK(gio::Slot::containing(slot->start(), granularity) == *slot,
                   "the slot does not contain its start");
    GIO_FUZZ_CHECK(
        gio::Slot::containing(slot->end() - std::chrono::seconds{1}, granularity) == *slot,
        "the slot does not contain its last second");
    GIO_FUZZ_CHECK(slot->next().previous() == *slot && slot->next().start() == slot->end(),
                   "next and previous");
    const std::string date = slot->date();
    GIO_FUZZ_CHECK(name.starts_with(date), "date() is not the name's date");
    if (granularity == gio::Granularity::hour) {
      GIO_FUZZ_CHECK(name == date + "T" + slot->hour(), "hour() is not the name's hour");
    } else {
      GIO_FUZZ_CHECK(slot->hour().empty() && name == date, "a day with an hour");
    }
    // export_date: yyyyMMddHHmm of the same Beijing start.
    std::string digits;
    for (const char c : name) {
      if (c >= '0' && c <= '9') {
        digits += c;
      }
    }
    digits.resize(12, '0');
    GIO_FUZZ_CHECK(slot->export_date() == digits, "export_date " + slot->export_date());
  }
  // The other untrusted texts of slot.hpp must not crash either.
  (void)gio::parse_granularity(text);
  if (const auto instant = gio::parse_utc(text)) {
    (void)gio::format_utc(*instant);
  }
  return 0;
}
