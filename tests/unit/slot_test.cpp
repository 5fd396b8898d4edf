#include "slot/slot.hpp"

#include <gtest/gtest.h>

namespace gio {
namespace {

Instant utc(std::string_view text) {
  const auto parsed = parse_utc(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(Instant{});
}

TEST(Slot, HourIsNamedInBeijingTime) {
  // 19:30 UTC on the 21st is 03:30 on the 22nd in Beijing.
  const auto slot = Slot::containing(utc("2026-11-21T19:30:00Z"), Granularity::hour);
  EXPECT_EQ(slot.name(), "2026-11-22T03");
  EXPECT_EQ(slot.export_date(), "202611220300");
  EXPECT_EQ(slot.date(), "2026-11-22");
  EXPECT_EQ(slot.hour(), "03");
  EXPECT_EQ(format_utc(slot.start()), "2026-11-21T19:00:00Z");
  EXPECT_EQ(format_utc(slot.end()), "2026-11-21T20:00:00Z");
}

TEST(Slot, DayStartsAtBeijingMidnight) {
  const auto slot = Slot::containing(utc("2026-11-21T15:59:59Z"), Granularity::day);
  EXPECT_EQ(slot.name(), "2026-11-21");
  EXPECT_EQ(slot.export_date(), "202611210000");
  EXPECT_EQ(slot.hour(), "");
  EXPECT_EQ(format_utc(slot.start()), "2026-11-20T16:00:00Z");
  EXPECT_EQ(slot.next().name(), "2026-11-22");
  EXPECT_EQ(format_utc(slot.next().start()), "2026-11-21T16:00:00Z");
}

TEST(Slot, ParseRoundTrips) {
  const auto hour = Slot::parse("2026-11-22T03", Granularity::hour);
  ASSERT_TRUE(hour);
  EXPECT_EQ(hour->name(), "2026-11-22T03");
  EXPECT_EQ(format_utc(hour->start()), "2026-11-21T19:00:00Z");
  EXPECT_EQ(hour->previous().name(), "2026-11-22T02");
  EXPECT_EQ(hour->lost_at(), hour->start() + std::chrono::days{15});

  const auto day = Slot::parse("2024-02-29", Granularity::day);
  ASSERT_TRUE(day);
  EXPECT_EQ(day->name(), "2024-02-29");
}

TEST(Slot, ParseRejectsMalformedNames) {
  for (const char* bad : {"2026-11-22", "2026-11-22T24", "2026-13-01T00", "2026-11-22T3",
                          "2026-11-22X03", "2026-11-31T00", "abcd-11-22T03", ""}) {
    EXPECT_FALSE(Slot::parse(bad, Granularity::hour)) << bad;
  }
  for (const char* bad : {"2026-11-22T03", "2025-02-29", "2026/11/22", "2026-11-2"}) {
    EXPECT_FALSE(Slot::parse(bad, Granularity::day)) << bad;
  }
}

TEST(Slot, YearBoundary) {
  const auto slot = Slot::containing(utc("2026-12-31T16:00:00Z"), Granularity::hour);
  EXPECT_EQ(slot.name(), "2027-01-01T00");
  EXPECT_EQ(slot.previous().name(), "2026-12-31T23");
}

TEST(Clock, ManualClockMovesOnlyWhenTold) {
  ManualClock clock{utc("2026-11-22T00:00:00Z")};
  EXPECT_EQ(format_utc(clock.now()), "2026-11-22T00:00:00Z");
  clock.advance(std::chrono::minutes{90});
  EXPECT_EQ(format_utc(clock.now()), "2026-11-22T01:30:00Z");
}

TEST(Clock, ManualClockJumpsMoveTheWallClockAlone) {
  ManualClock clock{utc("2026-11-22T00:00:00Z")};
  const auto steady = clock.steady();
  clock.advance(std::chrono::minutes{10});  // time passing: both clocks
  EXPECT_EQ(clock.steady() - steady, std::chrono::minutes{10});
  clock.jump(std::chrono::hours{72});     // a jump: the wall clock alone
  clock.advance(-std::chrono::hours{2});  // back: the steady clock never goes back
  clock.set(utc("2026-11-30T00:00:00Z"));
  EXPECT_EQ(format_utc(clock.now()), "2026-11-30T00:00:00Z");
  EXPECT_EQ(clock.steady() - steady, std::chrono::minutes{10});
}

TEST(Time, ParseUtcRejectsGarbage) {
  EXPECT_FALSE(parse_utc("2026-11-22 00:00:00Z"));
  EXPECT_FALSE(parse_utc("2026-11-22T25:00:00Z"));
  EXPECT_FALSE(parse_utc("2026-02-30T00:00:00Z"));
}

}  // namespace
}  // namespace gio
