"""Another process holding the state database's write lock (an open `BEGIN IMMEDIATE`,
a backup, a long `retry`) must not stall the daemon's event loop: /healthz keeps
answering, SIGTERM still stops it at once, and once the lock is gone the work it could
not record is recorded, and the archive is right (issue 14, item 9)."""

import os
import socket
import sqlite3
import time
import unittest
import urllib.error
import urllib.request

from harness import E2ETestCase, wait_for

# Slots keep polling (and so keep writing) for a few seconds, and parts download slowly,
# so the daemon has writes to make while the test holds the lock.
SCENARIO = {"rows": 400, "slot_defaults": {"running_polls": 4, "slow_bytes_per_second": 60000}}
LOCK_SECONDS = 6


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def probe(url, timeout):
    """(HTTP status or None, seconds taken, body): None when no answer came in `timeout`."""
    started = time.monotonic()
    body = ""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = response.status
            body = response.read().decode()
    except urllib.error.HTTPError as error:
        status = error.code
        body = error.read().decode()
    except (urllib.error.URLError, TimeoutError, socket.timeout):
        status = None
    return status, time.monotonic() - started, body


class LockWaitsTest(E2ETestCase):
    def start_daemon(self):
        self.start(SCENARIO)
        port = free_port()
        self.daemon.edit_config('metrics: {listen: ""}', f"metrics: {{listen: 127.0.0.1:{port}}}")
        self.daemon.start()
        self.daemon.wait_for_database()
        # Started and working: its first asks are in, its loop runs.
        self.daemon.job_status("shop-hourly")
        time.sleep(1)
        return f"http://127.0.0.1:{port}"

    def hold_lock(self, begin="BEGIN IMMEDIATE"):
        """A connection of another process's kind holding the write lock until rolled back
        (in WAL mode, EXCLUSIVE is the same lock as IMMEDIATE)."""
        db = sqlite3.connect(os.path.join(self.run_dir, "state.db"), timeout=10, isolation_level=None)
        self.addCleanup(db.close)
        db.execute(begin)
        # A write of its own, as a backup or a `retry` in its transaction would make.
        db.execute("INSERT INTO kv (key, value) VALUES ('test/lock', 'held') "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        return db

    def test_health_answers_while_locked_and_work_completes_after(self):
        base = self.start_daemon()
        slots = self.expected()
        db = self.hold_lock()
        held_at = time.monotonic()
        answers = []
        while time.monotonic() - held_at < LOCK_SECONDS:
            answers.append(probe(base + "/healthz", timeout=3))
            time.sleep(0.5)
        scrape = probe(base + "/metrics", timeout=3)
        db.execute("ROLLBACK")
        self.assertGreaterEqual(len(answers), 8)
        for status, took, body in answers:
            self.assertIsNotNone(status, f"/healthz did not answer within 3s while the database was "
                                         f"locked: {answers}{self.context()}")
            self.assertLess(took, 1.0, f"/healthz took {took:.1f}s while locked: {answers}")
            # A lock held for seconds (a backup, a `retry`) is no reason to restart the daemon.
            self.assertEqual(status, 200, body)
            self.assertIn("locked by another process", body)
        self.assertEqual(scrape[0], 200, f"/metrics while locked: {scrape}")
        self.assertLess(scrape[1], 1.0, f"/metrics while locked: {scrape}")
        self.assertTrue(self.daemon.running(), f"the daemon stopped{self.context()}")

        # Nothing the lock held up is dropped: every slot ends done, the archive exact.
        self.wait_done("shop-hourly", len(slots), timeout=60)
        self.assertEqual(probe(base + "/healthz", timeout=3)[0], 200)
        self.stop_daemon()
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})
        self.assertEqual(self.daemon.events("slot_error"), [], self.context())

    def test_sigterm_while_a_write_waits_and_the_next_start_redoes_it(self):
        self.start_daemon()
        slots = self.expected()
        db = self.hold_lock("BEGIN EXCLUSIVE")
        # Long enough for the slots' polls (every second) to have a write waiting.
        time.sleep(2)
        code, took = self.daemon.terminate(timeout=LOCK_SECONDS + 5)
        db.execute("ROLLBACK")
        self.assertEqual(code, 0, f"the daemon did not stop after SIGTERM{self.context()}")
        self.assertLess(took, 3.0, f"SIGTERM took {took:.1f}s while a write waited{self.context()}")

        # What was not written is redone by the next start, as after a crash.
        self.daemon.start()
        self.wait_done("shop-hourly", len(slots), timeout=60)
        self.stop_daemon()
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})

    def test_a_file_that_could_not_be_recorded_is_fetched_again_once_the_lock_is_gone(self):
        # Slots are ready at once and their parts download slowly: the lock comes while
        # parts are on the wire, so recording them (before they are published) meets it.
        self.start({"rows": 400, "slot_defaults": {"slow_bytes_per_second": 8000}})
        slots = self.expected()
        self.daemon.start()
        wait_for(lambda: sum(self.server.stats()["downloads_started"].values()) > 0, 20,
                 "the first download")
        db = self.hold_lock()
        time.sleep(4)
        db.execute("ROLLBACK")
        self.wait_done("shop-hourly", len(slots), timeout=90)
        self.stop_daemon()
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})
        self.assertEqual(self.daemon.events("slot_error"), [], self.context())
        self.assertEqual(self.daemon.events("slot_failed"), [], self.context())
        self.assertIn("the state database is locked by another process; the pass is redone",
                      self.daemon.log_text())


if __name__ == "__main__":
    unittest.main()
