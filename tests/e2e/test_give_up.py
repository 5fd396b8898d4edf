"""give_up_after: a slot that never comes is failed, also by `run --once`; a backlog
found after an outage is not failed before it has been asked for."""

import datetime as dt
import subprocess
import unittest

from harness import E2ETestCase, hourly_job, slot_start


class GiveUpTest(E2ETestCase):
    def test_run_once_gives_up_on_a_slot_and_exits(self):
        slot = "2026-11-22T14"
        server, daemon = self.start({"slots": {slot: {"status": "NOT_EXISTS"}}},
                                    jobs=[hourly_job(poll_every="1s", give_up_after="1s")])
        slots = self.expected()
        self.assertIn(slot, slots)

        # First pass at the server's now: asked once, still waiting.
        self.assert_run_once(timeout=60)
        code, gaps = daemon.gaps()
        self.assertEqual(code, 2)
        self.assertEqual([(g["slot"], g["state"]) for g in gaps["gaps"]], [(slot, "waiting")],
                         f"{gaps}{self.context()}")
        self.assertGreaterEqual(gaps["gaps"][0]["attempts"], 1)
        others = [s for s in slots if s != slot]
        self.assert_archived("shop-hourly", others)

        # An hour later the slot is long past give_up_after: the pass must fail it and
        # exit, not wait for it (a hang here is the bug this guards against).
        later = server.now() + dt.timedelta(hours=1)
        try:
            result = daemon.run_once(timeout=20, now=later)
        except subprocess.TimeoutExpired:
            self.fail(f"run --once an hour later did not exit within 20s{self.context()}")
        # It ran, and failed a slot: exit status 3 says so to a timer-driven setup.
        self.assertEqual(result.returncode, 3, f"run --once:\n{result.stdout}{result.stderr}")

        code, gaps = daemon.gaps(now=later)
        self.assertEqual(code, 2, gaps)
        by_slot = {g["slot"]: g for g in gaps["gaps"]}
        self.assertIn(slot, by_slot, gaps)
        gap = by_slot[slot]
        self.assertEqual(gap["state"], "failed", gap)
        self.assertIn("gave up", gap["last_error"] or "", gap)
        # Slots newly due at the later clock may be waiting or failed (the server has
        # not finished them); nothing may be left half-way.
        stuck = [(g["slot"], g["state"]) for g in gaps["gaps"] if g["state"] in ("pending", "downloading")]
        self.assertEqual(stuck, [], f"{gaps}{self.context()}")
        # The slots archived before are still done.
        for other in others:
            self.assertNotIn(other, by_slot, gaps)

    def test_backlog_after_outage_is_not_failed_unasked(self):
        # Every slot of the 12h window has been ready for longer than give_up_after
        # when the daemon first sees it; each gets asked and archived, none failed.
        server, daemon = self.start(jobs=[hourly_job(give_up_after="1h", backfill="12h")])
        slots = self.expected()
        self.assertGreaterEqual(len(slots), 10)
        self.assertLess(slot_age_hours(slots[0], server.now()), 12)
        self.assertGreater(slot_age_hours(slots[0], server.now()), 2)

        self.assert_run_once()
        counts = daemon.job_status("shop-hourly")["counts"]
        self.assertEqual(counts["failed"], 0, f"{counts}{self.context()}")
        self.assertEqual(counts["done"], len(slots), counts)
        code, gaps = daemon.gaps()
        self.assertEqual([(g["slot"], g["state"]) for g in gaps["gaps"] if g["state"] == "failed"], [])
        self.assertEqual((code, gaps["gaps"]), (0, []))
        self.assert_archived("shop-hourly", slots)

    def test_old_slot_still_running_is_not_failed_on_first_ask(self):
        # The oldest slot has been ready for ~10h (give_up_after: 1h) and answers
        # RUNNING once: give_up_after counts from when it was first planned (now), so
        # it keeps waiting (or is done, if the pass asked again) but is not failed.
        server, daemon = self.start(jobs=[hourly_job(give_up_after="1h", backfill="12h")])
        slots = self.expected()
        oldest = slots[0]
        self.assertGreater(slot_age_hours(oldest, server.now()), 2)
        server.scenario({"slots": {oldest: {"running_polls": 1}}})

        self.assert_run_once()
        self.assertGreaterEqual(server.stats()["api_calls"][f"hour/{oldest}"], 1)
        counts = daemon.job_status("shop-hourly")["counts"]
        self.assertEqual(counts["failed"], 0, f"{counts}{self.context()}")
        _, gaps = daemon.gaps()
        self.assertEqual([(g["slot"], g["state"]) for g in gaps["gaps"] if g["state"] != "waiting"], [],
                         gaps)
        self.assert_archived("shop-hourly", slots[1:])


def slot_age_hours(slot, now):
    return (now - slot_start(slot)).total_seconds() / 3600


if __name__ == "__main__":
    unittest.main()
