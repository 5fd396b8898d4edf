"""While downloads are paused (a full disk) or the state database cannot be written, the
daemon holds its API asks: they stop, attempts do not grow, and the pause is logged once
with its cause (issue 14, item 14). A full file system is simulated with RLIMIT_FSIZE,
which fails writes past a size with EFBIG just as a full one fails them with ENOSPC."""

import os
import resource
import sqlite3
import time
import unittest

from harness import E2ETestCase, hourly_job, wait_for

ROWS = 50000  # a part far bigger than the state database
ONE_PART = {"visit": 1, "page": 0, "custom_event": 0, "action": 0}
WINDOW = 8  # seconds watched during the pause: longer than a poll and a pause


class PauseAsksTest(E2ETestCase):
    def api_asks(self):
        return sum(self.server.stats()["api_calls"].values())

    def attempts(self):
        db = os.path.join(self.run_dir, "state.db")
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
            return connection.execute("SELECT coalesce(sum(attempts), 0) FROM slots").fetchone()[0]

    def watch(self):
        """(API asks, attempts) made during WINDOW seconds."""
        asks, attempts = self.api_asks(), self.attempts()
        time.sleep(WINDOW)
        return self.api_asks() - asks, self.attempts() - attempts

    def test_a_full_disk_holds_the_asks(self):
        # poll_every 6 s: the pause lasts 6 s, and a retry would come within 6 s.
        server, daemon = self.start({"rows": ROWS, "parts": ONE_PART},
                                    jobs=[hourly_job(backfill="10h", poll_every="6s")])
        slots = self.expected()
        self.assertGreaterEqual(len(slots), 4)
        size = server.files("hour", slots[0])["visit"][0]["bytes"]
        limit = size - 256 * 1024
        self.assertGreater(limit, 1024 * 1024, "the part must dwarf the state database")

        daemon.start(preexec_fn=lambda: resource.setrlimit(
            resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY)))
        wait_for(lambda: len(daemon.events("downloads_paused")) >= 1, 30, "event=downloads_paused")
        time.sleep(2)  # the slots in flight when the disk filled settle
        asks, attempts = self.watch()
        # At most one probe per lapsed pause (6 s) finds the disk still full.
        self.assertLessEqual(asks, 2, self.context())
        self.assertLessEqual(attempts, 2, self.context())
        paused = daemon.events("downloads_paused")
        self.assertEqual(len(paused), 1, self.context())
        self.assertIn("File too large", paused[0]["reason"])
        self.assertEqual(daemon.job_status("shop-hourly")["counts"]["done"], 0)

        # Space comes back: the next probe resumes the downloads, and every slot is done.
        resource.prlimit(daemon.process.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        self.wait_done("shop-hourly", len(slots), timeout=60)
        self.assertEqual(len(daemon.events("downloads_resumed")), 1, self.context())
        self.stop_daemon()
        self.assert_archived("shop-hourly", slots)

    def test_a_database_that_cannot_be_written_holds_the_asks(self):
        # Slots that stay RUNNING are polled every second: each poll is a database write.
        server, daemon = self.start({"slot_defaults": {"status": "RUNNING"}},
                                    jobs=[hourly_job(backfill="6h", poll_every="1s")])
        slots = self.expected()
        daemon.start()
        wait_for(lambda: daemon.job_status("shop-hourly")["counts"].get("waiting", 0) == len(slots),
                 20, "every slot waiting")
        # The database's files may grow only a little more: its writes fail soon.
        files = [os.path.join(self.run_dir, name) for name in ("state.db", "state.db-wal")]
        limit = max(os.path.getsize(path) for path in files if os.path.exists(path)) + 16 * 1024
        resource.prlimit(daemon.process.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        # (Before the fix the failure showed as one event=slot_error per slot.)
        wait_for(lambda: daemon.events("state_db_error") or daemon.events("slot_error"), 30,
                 "event=state_db_error")
        time.sleep(2)  # the slots in flight when the database filled settle
        asks, attempts = self.watch()
        self.assertEqual(asks, 0, self.context())
        self.assertEqual(attempts, 0, self.context())
        self.assertEqual(len(daemon.events("state_db_error")), 1, self.context())
        self.assertEqual(daemon.events("slot_error"), [], self.context())
        self.assertTrue(daemon.running(), self.context())

        # Room again: the loop finds the database writable, says so once, and asks again.
        resource.prlimit(daemon.process.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        wait_for(lambda: daemon.events("state_db_ok"), 20, "event=state_db_ok")
        asks = self.api_asks()
        wait_for(lambda: self.api_asks() > asks + len(slots), 20, "asks again")
        self.assertEqual(len(daemon.events("state_db_ok")), 1, self.context())
        self.stop_daemon()


if __name__ == "__main__":
    unittest.main()
