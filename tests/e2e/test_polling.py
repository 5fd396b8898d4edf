"""Slots that are not ready: RUNNING, NOT_EXISTS and ERROR answers."""

import json
import unittest

from harness import E2ETestCase


class PollingTest(E2ETestCase):
    def test_running_slot_is_polled_until_finished(self):
        slot = "2026-11-22T15"
        server, daemon = self.start({"slots": {slot: {"running_polls": 3}}})
        slots = self.expected()
        self.assertIn(slot, slots)

        daemon.start()
        self.wait_done("shop-hourly", len(slots), timeout=60)
        self.stop_daemon()

        self.assertGreaterEqual(server.stats()["api_calls"][f"hour/{slot}"], 4)
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})

    def test_not_exists_slot_is_a_waiting_gap(self):
        slot = "2026-11-22T14"
        server, daemon = self.start({"slots": {slot: {"status": "NOT_EXISTS"}}})
        slots = self.expected()
        self.assertIn(slot, slots)

        self.assert_run_once()
        others = [s for s in slots if s != slot]
        self.assert_archived("shop-hourly", others)
        self.assert_no_strays({"shop-hourly": others})
        self.assertEqual(server.stats()["api_statuses"][f"hour/{slot}"], "NOT_EXISTS")

        human = daemon.cli("gaps")
        self.assertEqual(human.returncode, 2, human.stdout + human.stderr)
        self.assertIn(slot, human.stdout)

        code, gaps = daemon.gaps(job="shop-hourly")
        self.assertEqual(code, 2)
        self.assertEqual([(g["job"], g["slot"], g["state"]) for g in gaps["gaps"]],
                         [("shop-hourly", slot, "waiting")])
        gap = gaps["gaps"][0]
        for key in ("attempts", "api_status", "last_error", "lost_at", "seconds_left"):
            self.assertIn(key, gap)
        self.assertGreaterEqual(gap["attempts"], 1)
        self.assertGreater(gap["seconds_left"], 0)
        json.dumps(gaps)  # plain JSON all the way down

        counts = daemon.job_status("shop-hourly")["counts"]
        self.assertEqual((counts["done"], counts["waiting"]), (len(others), 1))

    def test_error_answers_are_retried_until_finished(self):
        slot = "2026-11-22T13"
        server, daemon = self.start({"slots": {slot: {"error_polls": 2}}})
        slots = self.expected()
        self.assertIn(slot, slots)

        daemon.start()
        self.wait_done("shop-hourly", len(slots), timeout=60)
        self.stop_daemon()

        self.assertGreaterEqual(server.stats()["api_calls"][f"hour/{slot}"], 3)
        self.assert_archived("shop-hourly", slots)
        code, gaps = daemon.gaps()
        self.assertEqual((code, gaps["gaps"]), (0, []))


if __name__ == "__main__":
    unittest.main()
