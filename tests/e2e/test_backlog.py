"""A backlog archived in one pass, byte-exact, and hostile link names."""

import os
import unittest

from harness import E2ETestCase


class BacklogTest(E2ETestCase):
    def test_backlog_archived_byte_exact_once(self):
        server, daemon = self.start()
        slots = self.expected()
        self.assertGreaterEqual(len(slots), 4)

        self.assert_run_once()
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})

        # A second pass finds everything done: no new API work, no downloads.
        before = server.stats()
        self.assert_run_once()
        after = server.stats()
        self.assertEqual(after["downloads_started"], before["downloads_started"])
        self.assertEqual(after["api_calls"], before["api_calls"])

        job = daemon.job_status("shop-hourly")
        self.assertEqual(job["counts"], {"pending": 0, "waiting": 0, "downloading": 0,
                                         "uploading": 0, "done": len(slots), "failed": 0,
                                         "lost": 0})
        self.assertEqual(job["newest_done"], slots[-1])
        self.assertIsNone(job["oldest_not_done"])

        code, gaps = daemon.gaps()
        self.assertEqual(code, 0)
        self.assertEqual(gaps["gaps"], [])
        human = daemon.cli("gaps")
        self.assertEqual(human.returncode, 0, human.stdout + human.stderr)

    def test_link_names_stay_inside_their_partition(self):
        slot = "2026-11-22T14"
        server, daemon = self.start({"slots": {slot: {"link_names": {
            "visit": ["..%2F..%2Fescape.csv.gz", "%E6%B8%A0%E9%81%93.csv.gz"]}}}})
        slots = self.expected()
        self.assertIn(slot, slots)

        self.assert_run_once()
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})

        visit = self.partition("shop-hourly", "visit", slot)
        names = set(os.listdir(visit)) - {"_SUCCESS", "_manifest.json"}
        self.assertIn("渠道.csv.gz", names)
        self.assertEqual(len(names), 2, names)
        for name in names:
            self.assertNotIn("/", name)
            self.assertNotIn(name, ("..", "."))
        # Nothing named after the escaping link anywhere but inside that partition.
        for folder, _, files in os.walk(self.base):
            for name in files:
                if "escape" in name:
                    self.assertEqual(folder, visit, f"{name} escaped to {folder}")


if __name__ == "__main__":
    unittest.main()
