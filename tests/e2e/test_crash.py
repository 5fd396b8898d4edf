"""Stops at awkward moments: kill -9 mid-backlog, SIGTERM mid-download."""

import os
import unittest

from harness import MARKERS, E2ETestCase, hourly_job, wait_for


def archived_data_files(archive):
    """{path: (inode, mtime_ns)} of every data file visible in a partition: no markers,
    nothing under the staging area."""
    staging = os.path.join(archive, ".staging")
    found = {}
    for folder, dirs, files in os.walk(archive):
        if folder == staging or folder.startswith(staging + os.sep):
            continue
        for name in files:
            if name in MARKERS:
                continue
            path = os.path.join(folder, name)
            info = os.stat(path)
            found[path] = (info.st_ino, info.st_mtime_ns)
    return found


def in_flight(stats):
    started = stats["downloads_started"]
    completed = stats["downloads_completed"]
    return any(n > completed.get(path, 0) for path, n in started.items())


class CrashTest(E2ETestCase):
    def test_kill_9_mid_backlog_then_restart(self):
        # Small, slow files: the backlog takes several seconds, so the kill lands
        # while some slots are done and other downloads are half-way.
        server, daemon = self.start({"rows": 400, "slot_defaults": {"slow_bytes_per_second": 12000}},
                                    jobs=[hourly_job(backfill="12h")])
        slots = self.expected()
        self.assertGreaterEqual(len(slots), 10)

        daemon.start()

        def some_done_and_downloading():
            done = daemon.job_status("shop-hourly")["counts"]["done"]
            return done >= 1 and done < len(slots) and in_flight(server.stats())

        wait_for(some_done_and_downloading, 60, "a done slot while downloads are in flight", 0.05)
        daemon.kill()
        visible = archived_data_files(daemon.archive)

        _, gaps = daemon.gaps()
        not_done = {g["slot"] for g in gaps["gaps"]}
        done_before = [s for s in slots if s not in not_done]
        self.assertTrue(done_before)
        self.assertTrue(not_done)
        before = server.stats()
        self.assert_nothing_partial("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots}, allow_staging_files=True)

        server.scenario({"slot_defaults": {"slow_bytes_per_second": 0}})
        self.assert_run_once()

        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})
        after = server.stats()
        self.assertEqual(self.downloads_of(after["downloads_completed"], done_before),
                         self.downloads_of(before["downloads_completed"], done_before),
                         "files of slots done before the kill were downloaded again")
        code, gaps = daemon.gaps()
        self.assertEqual((code, gaps["gaps"]), (0, []))

        # Nothing that was in the archive at the kill was downloaded and put in place
        # again: same inode, same mtime (this covers files of slots not yet done, too).
        self.assertTrue(visible)
        now_visible = archived_data_files(daemon.archive)
        replaced = sorted(os.path.relpath(path, daemon.archive) for path, seen in visible.items()
                          if now_visible.get(path) != seen)
        self.assertEqual(replaced, [], f"archived files replaced after the restart{self.context()}")

    def test_sigterm_mid_download_exits_cleanly(self):
        server, daemon = self.start({"rows": 400, "slot_defaults": {"slow_bytes_per_second": 8000}})
        slots = self.expected()

        daemon.start()
        wait_for(lambda: in_flight(server.stats()), 30, "a download in flight", 0.05)
        took = self.stop_daemon(within=5)
        self.assertLess(took, 5)

        self.assert_nothing_partial("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots}, allow_staging_files=True)

        # What the stop interrupted is finished by the next run.
        server.scenario({"slot_defaults": {"slow_bytes_per_second": 0}})
        self.assert_run_once()
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})


if __name__ == "__main__":
    unittest.main()
