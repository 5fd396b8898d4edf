"""Bounded downloads (issue 14, item 7): an endless chunked body that is valid gzip all the
way stops at limits.max_part_size. The part fails with the limit named, nothing past the
limit reaches the disk, nothing is archived and the slot is not done."""

import os
import time
import unittest

from harness import E2ETestCase, hourly_job

LIMIT = 1 << 20  # the smallest limit the config takes
ONE_PART = {"visit": 1, "page": 0, "custom_event": 0, "action": 0}


class BoundedDownloadsTest(E2ETestCase):
    def largest_staged(self):
        staging = os.path.join(self.daemon.archive, ".staging")
        sizes = [0]
        for name in self.staging_files():
            try:
                sizes.append(os.path.getsize(os.path.join(staging, name)))
            except FileNotFoundError:
                pass  # removed between the listing and the stat
        return max(sizes)

    def test_an_endless_body_stops_at_the_part_size_limit(self):
        server, daemon = self.start({"parts": ONE_PART, "slot_defaults": {"endless_body": True}},
                                    jobs=[hourly_job(backfill="3h")], parallel_downloads=1)
        daemon.edit_config("limits: {parallel_downloads: 1", "limits: {parallel_downloads: 1, max_part_size: 1MiB")
        slots = self.expected()
        self.assertGreaterEqual(len(slots), 1)

        daemon.start()
        failed = lambda: [line for line in daemon.log_text().splitlines()
                          if "download of " in line and "too_large" in line]
        # Watch the staging folder while parts are cut, once per slot: the vendor would
        # send the same object again, so each slot fails at once instead of downloading up
        # to the limit at every retry.
        largest = 0
        deadline = time.monotonic() + 30
        while len(daemon.events("slot_failed")) < len(slots) and time.monotonic() < deadline:
            largest = max(largest, self.largest_staged())
            time.sleep(0.01)
        lines = failed()
        self.assertEqual(len(lines), len(slots), self.context())
        self.assertIn(f"limits.max_part_size ({LIMIT} bytes)", lines[0], self.context())
        self.assertIn("(try 1 of", lines[0])
        self.assertLessEqual(largest, LIMIT, "a staged part grew past the limit")
        counts = daemon.job_status("shop-hourly")["counts"]
        self.assertEqual(counts.get("done", 0), 0)
        self.assertEqual(counts.get("failed", 0), len(slots), counts)
        for event in daemon.events("slot_failed"):
            self.assertIn("too_large", event["reason"])
            self.assertIn("raise limits.max_part_size", event["reason"])
        self.assertTrue(daemon.running(), self.context())
        # The server sent more than the limit (the body never ends) but far from all of it:
        # the daemon hung up.
        endless = server.stats().get("endless_bytes", {})
        self.assertTrue(endless, "no endless body was served")
        for path, sent in endless.items():
            self.assertLess(sent, 64 * LIMIT, f"{path}: the daemon kept reading")
        self.stop_daemon()

        # Nothing archived, nothing left in staging.
        self.assertEqual(self.staging_files(), [])
        for slot in slots:
            self.assertFalse(os.path.exists(self.partition("shop-hourly", "visit", slot)),
                             f"{slot} has a partition")

    def test_parts_under_the_limit_are_archived(self):
        # The same limit does not get in the way of parts below it.
        server, daemon = self.start({"parts": ONE_PART, "rows": 2000},
                                    jobs=[hourly_job(backfill="3h")])
        daemon.edit_config("limits: {parallel_downloads: 4", "limits: {parallel_downloads: 4, max_part_size: 1MiB")
        slots = self.expected()
        self.assert_run_once()
        for slot in slots:
            for files in server.files("hour", slot).values():
                self.assertTrue(all(f["bytes"] < LIMIT for f in files))
        self.assert_archived("shop-hourly", slots)


if __name__ == "__main__":
    unittest.main()
