"""Startup faults: an archive or state folder that cannot be written and a damaged state
database are clear startup errors (exit 1, naming the path and the cause); a database
locked by another process is waited for, not fatal."""

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import threading
import unittest

from harness import E2ETestCase, wait_for


class StartupTest(E2ETestCase):
    def assert_cannot_start(self, *needles):
        result = self.daemon.cli("run", timeout=30)
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        output = result.stdout + result.stderr
        self.assertIn("cannot start", output)
        for needle in needles:
            self.assertIn(needle, output)
        return output

    def test_archive_folder_that_cannot_be_created(self):
        self.start()
        blocker = os.path.join(self.daemon.run_dir, "blocker")
        with open(blocker, "w") as f:
            f.write("a file where a folder should be\n")
        self.daemon.edit_config("archive_dir: archive", "archive_dir: blocker/archive")
        self.assert_cannot_start(os.path.join(blocker, "archive"), "Not a directory")

    def test_state_folder_that_cannot_be_created(self):
        self.start()
        blocker = os.path.join(self.daemon.run_dir, "blocker")
        with open(blocker, "w") as f:
            f.write("a file where a folder should be\n")
        self.daemon.edit_config("state_db: state.db", "state_db: blocker/state.db")
        self.assert_cannot_start("blocker", "Not a directory")

    def test_damaged_state_database_is_refused(self):
        server, daemon = self.start()
        self.assert_run_once()
        db = os.path.join(daemon.run_dir, "state.db")
        self.assertFalse(os.path.exists(db + "-wal") and os.path.getsize(db + "-wal") > 0)
        # Page 1 (the header and schema) stays readable; a later b-tree page is garbage.
        with open(db, "r+b") as f:
            f.seek(4096 * 2)
            f.write(b"\xde\xad\xbe\xef" * 1024)
        self.assert_cannot_start(db, "integrity")

    def test_locked_state_database_is_waited_for(self):
        server, daemon = self.start()
        slots = self.expected()
        db = os.path.join(daemon.run_dir, "state.db")
        # A pass at an earlier clock creates the database (and leaves the slots of now
        # unplanned); then another process holds its write lock for longer than the
        # daemon's busy timeout (10 s).
        self.assert_run_once(now=server.now() - dt.timedelta(hours=7))
        earlier = daemon.job_status("shop-hourly")["counts"]["done"]
        holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("CREATE TABLE held (x)")
        release = threading.Event()

        def hold():
            release.wait(60)
            holder.execute("ROLLBACK")
            holder.close()

        thread = threading.Thread(target=hold)
        thread.start()
        try:
            daemon.start()
            wait_for(lambda: "is locked by another process; waiting" in daemon.log_text(), 30,
                     "the daemon saying it waits for the lock")
            self.assertTrue(daemon.running(), self.context())
        finally:
            release.set()
            thread.join()
        self.wait_done("shop-hourly", earlier + len(slots))
        self.stop_daemon()
        self.assert_archived("shop-hourly", slots)

    def test_stop_while_the_config_is_read_ends_cleanly(self):
        """A SIGTERM that arrives while `run` still reads its config (here a token file
        that is a FIFO nobody has written yet) is held, not fatal: once the config is
        read the daemon stops cleanly, exit 0, instead of dying by the signal."""
        server, daemon = self.start()
        fifo = os.path.join(daemon.run_dir, "token.fifo")
        os.mkfifo(fifo, 0o600)
        daemon.edit_config("auth: {token_env: GIO_TEST_TOKEN}", f"auth: {{token_file: {fifo}}}")
        daemon.start()

        def holds_sigterm():
            with open(f"/proc/{daemon.process.pid}/status", encoding="ascii") as f:
                blocked = next(line for line in f if line.startswith("SigBlk:"))
            return bool(int(blocked.split()[1], 16) >> (signal.SIGTERM - 1) & 1)

        # Blocked in open(2) of the FIFO, with SIGTERM held.
        wait_for(lambda: not daemon.running() or holds_sigterm(), 30, "the daemon holding SIGTERM")
        self.assertTrue(daemon.running(), self.context())
        daemon.process.send_signal(signal.SIGTERM)
        with open(fifo, "w", encoding="ascii") as f:
            f.write("test-token\n")
        self.assertEqual(daemon.process.wait(30), 0, self.context())
        self.assertIn("received SIGTERM; stopping", daemon.log_text())


if __name__ == "__main__":
    unittest.main()
