"""Fresh hours are served while a backlog the vendor answers NOT_EXISTS for saturates the
API budget, and that backlog backs off (issue 14, item 3)."""

import datetime as dt
import time
import unittest

from harness import E2ETestCase, FakeServer, Daemon, expected_slots, hourly_job, parse_utc

# The server starts 10 s before the hour 09:00Z (17:00 Beijing) becomes ready (10:40Z),
# so that hour becomes ready while the daemon works on the backlog.
SERVER_NOW = "2026-11-22T10:39:50Z"
FRESH = "2026-11-22T17"
FRESH_READY = parse_utc("2026-11-22T10:40:00Z")
ONE_SMALL_PART = {"visit": 1, "page": 0, "custom_event": 0, "action": 0}


class FairnessTest(E2ETestCase):
    def start_backlog(self, job, rate, fresh):
        """A server where every slot of `job` ready 10 minutes before SERVER_NOW answers
        NOT_EXISTS for ever, and `fresh` ({slot: config}) are served. The daemon is built,
        not started; returns the backlog's slot names."""
        backlog_clock = parse_utc(SERVER_NOW) - dt.timedelta(minutes=10)
        backlog = expected_slots(backlog_clock, job["backfill"], job["ready_after"])
        slots = {name: {"status": "NOT_EXISTS"} for name in backlog if name not in fresh}
        slots.update(fresh)
        self.server = FakeServer(self.aux_dir, {"rows": 200, "parts": ONE_SMALL_PART, "slots": slots},
                                 now=SERVER_NOW)
        self.daemon = Daemon(self.run_dir, self.aux_dir, self.server, [job],
                             api_requests_per_second=rate)
        return [name for name in backlog if name not in fresh], backlog_clock

    def asks(self, slots):
        calls = self.server.stats()["api_calls"]
        return {slot: calls.get(f"hour/{slot}", 0) for slot in slots}

    def test_a_fresh_hour_is_archived_while_the_backlog_saturates_the_budget(self):
        # A day of hours the vendor never made, inside the grace (so no back-off helps):
        # only fairness can serve the fresh hour. 1 call/s and a poll every 2 s serve 2
        # of the backlog's 20-odd slots per poll.
        job = hourly_job(backfill="1d", poll_every="2s", not_exists_grace="48h")
        backlog, backlog_clock = self.start_backlog(job, 20, {FRESH: {"running_polls": 1}})
        self.assertGreater(len(backlog), 15)
        # First asks of the whole backlog, quickly: from then on it is repeat asks.
        self.assert_run_once(now=backlog_clock)
        self.assertEqual(self.daemon.job_status("shop-hourly")["counts"]["waiting"], len(backlog))
        asked_before = self.asks(backlog)
        self.assertTrue(all(n == 1 for n in asked_before.values()), asked_before)

        self.daemon.edit_config("api_requests_per_second: 20", "api_requests_per_second: 1")
        self.daemon.start()
        started = time.monotonic()
        ready_in = max(0.0, (FRESH_READY - self.server.now()).total_seconds())
        # Ready, then a first ask (RUNNING), a poll after 1 s (FINISHED), the download:
        # a few polls and calls, however long the backlog.
        bound = ready_in + 3 * 2 + 3 * 1 + 6
        self.wait_done("shop-hourly", 1, timeout=bound)
        took = time.monotonic() - started
        counts = self.daemon.job_status("shop-hourly")["counts"]
        self.assertEqual(counts["waiting"], len(backlog), counts)  # still unresolved
        self.assertEqual(counts.get("failed", 0), 0, counts)
        # The budget went to the backlog too: it was not simply switched off.
        asked_during = sum(self.asks(backlog).values()) - sum(asked_before.values())
        self.assertGreaterEqual(asked_during, min(3, int(took) - 4), self.context())
        self.stop_daemon()
        self.assert_archived("shop-hourly", [FRESH])

    def test_not_exists_past_its_grace_backs_off(self):
        # Hours missing long past their grace, with a later hour exported: each is asked
        # once, then not again for hours (it was asked every second before).
        job = hourly_job(backfill="12h", poll_every="1s", not_exists_grace="10m")
        later = "2026-11-22T16"  # 08:00Z, ready by the backlog's clock
        backlog, backlog_clock = self.start_backlog(job, 20, {later: {}})
        self.daemon.start()
        self.wait_done("shop-hourly", 1, timeout=20)
        time.sleep(6)
        asked = self.asks(backlog)
        self.assertTrue(all(1 <= n <= 2 for n in asked.values()), f"{asked}{self.context()}")
        self.stop_daemon()
        self.assertEqual(self.daemon.job_status("shop-hourly")["counts"]["waiting"], len(backlog))


if __name__ == "__main__":
    unittest.main()
