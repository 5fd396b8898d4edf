"""Wall-clock jumps (issue 14, item 2): the daemon's wall clock leaps 3 days ahead and
comes back, or goes 2 hours back, while slots are polling. Nothing within the vendor's
retention may be marked lost or failed on the jumped clock, no slot may be left with a
next_at far ahead, and polling must go on whatever the clock says. The clock is moved
with libfaketime (harness.FakedWallClock); the fake server keeps its own time."""

import datetime as dt
import time
import unittest

from harness import E2ETestCase, FakedWallClock, hourly_job, slot_name, wait_for

JOB = "shop-hourly"


class ClockJumpTest(E2ETestCase):
    def start_polling(self, old_days=None):
        """A running daemon under a faked clock, every slot answering RUNNING (and asked
        at least once) until finish() lets the server finish them. `old_days`: also a
        slot that many days old, queued with `backfill`."""
        self.clock = FakedWallClock(self.aux_dir)
        # A budget well above 1 ask per slot per second: polling is not starved (item 3).
        server, daemon = self.start(jobs=[hourly_job(poll_every="1s", give_up_after="24h")],
                                    api_requests_per_second=20)
        self.slots = self.expected()
        old = None
        if old_days is not None:
            old = slot_name(server.now() - dt.timedelta(days=old_days), "hour")
            self.slots.insert(0, old)
        server.scenario({"slots": {slot: {"status": "RUNNING"} for slot in self.slots}})
        daemon.start(env=self.clock.env)
        daemon.wait_for_database()
        if old is not None:
            result = daemon.cli("backfill", "--job", JOB, "--from", old, "--to", old)
            self.assertEqual(result.returncode, 0, result.stderr)
        self.wait_asked(1)
        return server, daemon

    def calls(self):
        calls = self.server.stats()["api_calls"]
        return {slot: calls.get(f"hour/{slot}", 0) for slot in self.slots}

    def wait_asked(self, times, since=None):
        """Until every slot was asked `times` more times than in `since`."""
        since = since or {}
        try:
            wait_for(lambda: all(n - since.get(slot, 0) >= times for slot, n in self.calls().items()),
                     20, f"every slot asked {times} more time(s)")
        except AssertionError as error:
            raise AssertionError(f"{error}{self.context()}") from None

    def finish(self):
        self.server.scenario({"slots": {slot: {"status": "FINISHED"} for slot in self.slots}})

    def assert_all_archived(self):
        self.wait_done(JOB, len(self.slots), timeout=60)
        counts = self.daemon.job_status(JOB)["counts"]
        self.assertEqual({state: n for state, n in counts.items() if n},
                         {"done": len(self.slots)}, f"{counts}{self.context()}")
        self.assertEqual(self.daemon.events("slot_lost"), [], self.context())
        self.assertEqual(self.daemon.events("slot_failed"), [], self.context())
        self.assert_archived(JOB, self.slots)

    def test_three_days_ahead_and_back_loses_nothing(self):
        # A slot 13 days old: 2 days inside the vendor's retention, so the jumped clock
        # puts it past its loss; every slot is past give_up_after (24h) on it.
        server, daemon = self.start_polling(old_days=13)
        self.clock.set("+3d")
        time.sleep(3)  # polled on (every second) for a while on the jumped clock
        self.clock.set("+0")
        back = self.calls()
        self.assertEqual(daemon.events("slot_lost") + daemon.events("slot_failed"), [],
                         self.context())
        # Back at the right time: every slot is still polled, not left 3 days ahead.
        self.wait_asked(2, since=back)
        self.assertEqual(daemon.events("clock_jump")[0]["by"][:1], "+", self.context())
        self.finish()
        # Every slot done, and no other row: none planned for the 3 days that never came.
        self.assert_all_archived()

    def test_two_hours_back_keeps_polling(self):
        server, daemon = self.start_polling()
        self.clock.set("-2h")
        time.sleep(1.5)  # the jump lands between two polls
        self.wait_asked(2, since=self.calls())
        self.finish()
        self.assert_all_archived()
        jumps = daemon.events("clock_jump")
        self.assertEqual([j["by"][:1] for j in jumps], ["-"], self.context())


if __name__ == "__main__":
    unittest.main()
