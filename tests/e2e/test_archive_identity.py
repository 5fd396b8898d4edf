"""One state database belongs to one archive (issue 14, items 6, 10 and 11).

(6) The database records the archive's identity (the id in <archive>/.gio-exporter-archive
and its path) and every command refuses another archive; a second daemon on the same
database exits at once; `adopt-archive` is the deliberate way to move an archive.
(10) A database deleted or replaced under a running daemon stops it (/healthz 503 first);
a new empty database beside an archive that has an identity is refused, not filled by
downloading everything again; read-only commands never create a database.
(11) A state database inside the archive is refused by check-config and run.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from harness import E2ETestCase, wait_for

IDENTITY = ".gio-exporter-archive"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return None, ""


class ArchiveIdentityTest(E2ETestCase):
    def other_config(self, archive_dir):
        """A copy of the daemon's config with another archive_dir (same state_db)."""
        path = os.path.join(self.run_dir, "config2.yaml")
        with open(self.daemon.config, encoding="utf-8") as f:
            text = f.read()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace("archive_dir: archive", f"archive_dir: {archive_dir}"))
        return path

    def api_calls(self):
        return sum(self.server.stats()["api_calls"].values())

    def assert_refused(self, result, *words):
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 1, output)
        for word in words:
            self.assertIn(word, output)
        return output

    # --- (6) ---------------------------------------------------------------------

    def test_a_second_daemon_on_the_same_database_with_another_archive_exits_at_once(self):
        server, daemon = self.start({"rows": 400, "slot_defaults": {"slow_bytes_per_second": 40000}})
        daemon.start()
        self.wait_done("shop-hourly", 1, timeout=30)
        other = self.other_config("archive2")
        for args in (("run",), ("run", "--once")):
            try:
                second = daemon.cli(*args, config=other, timeout=15)
            except subprocess.TimeoutExpired:
                self.fail(f"a second `{' '.join(args)}` on the same state_db kept running{self.context()}")
            output = self.assert_refused(second, "another gio-exporter is running",
                                         os.path.join(self.run_dir, "state.db"))
            self.assertIn(f"pid {daemon.process.pid}", output)
            self.assertTrue(daemon.running(), "the first daemon stopped")
        self.assertFalse(os.path.exists(os.path.join(self.run_dir, "archive2", IDENTITY)))
        self.stop_daemon()

    def test_another_archive_dir_is_refused_until_adopted(self):
        server, daemon = self.start()
        slots = self.expected()
        self.assert_run_once()
        archive = os.path.join(self.run_dir, "archive")
        self.assertTrue(os.path.isfile(os.path.join(archive, IDENTITY)))
        calls = self.api_calls()

        daemon.edit_config("archive_dir: archive", "archive_dir: archive2")
        archive2 = os.path.join(self.run_dir, "archive2")
        result = daemon.run_once()
        output = self.assert_refused(result, archive, archive2, "adopt-archive")
        self.assertEqual(self.api_calls(), calls, "the refused run asked the API")
        # The read-only commands refuse too: gaps must not call an empty archive complete.
        for args in (("gaps",), ("gaps", "--json"), ("status",), ("verify",)):
            self.assert_refused(daemon.cli(*args), archive, archive2)

        adopted = daemon.cli("adopt-archive")
        self.assertEqual(adopted.returncode, 0, adopted.stdout + adopted.stderr)
        self.assertIn(archive2, adopted.stdout + adopted.stderr)
        self.assertTrue(os.path.isfile(os.path.join(archive2, IDENTITY)))
        # Adopted: the database now says what it says of this archive, and verify finds it empty.
        self.assertEqual(daemon.cli("status").returncode, 0)
        self.assertEqual(daemon.cli("verify").returncode, 2)
        self.assert_run_once()
        # The first archive is now another database's: going back is refused as well.
        daemon.edit_config("archive_dir: archive2", "archive_dir: archive")
        self.assert_refused(daemon.run_once(), archive, archive2)
        self.assertTrue(slots)

    def test_a_moved_archive_is_refused_until_adopted_and_then_kept(self):
        server, daemon = self.start()
        slots = self.expected()
        self.assert_run_once()
        calls = self.api_calls()
        archive = os.path.join(self.run_dir, "archive")
        moved = os.path.join(self.run_dir, "moved")
        os.rename(archive, moved)
        daemon.edit_config("archive_dir: archive", "archive_dir: moved")
        self.assert_refused(daemon.run_once(), archive, moved, "adopt-archive")
        self.assert_refused(daemon.cli("gaps"), archive, moved)

        adopted = daemon.cli("adopt-archive")
        self.assertEqual(adopted.returncode, 0, adopted.stdout + adopted.stderr)
        self.assert_run_once()
        self.assertEqual(self.api_calls(), calls, "a moved and adopted archive was fetched again")
        self.assertEqual(daemon.gaps()[0], 0)
        daemon.archive = moved
        self.assert_archived("shop-hourly", slots)

    def test_the_archive_of_another_database_is_refused(self):
        server, daemon = self.start()
        self.assert_run_once()
        # Another database (another config) pointed at the same archive.
        other = self.other_config("archive")
        with open(other, encoding="utf-8") as f:
            text = f.read()
        with open(other, "w", encoding="utf-8") as f:
            f.write(text.replace("state_db: state.db", "state_db: other.db"))
        result = daemon.cli("run", "--once", config=other)
        self.assert_refused(result, os.path.join(self.run_dir, "archive"), "adopt-archive")
        self.assertFalse(os.path.exists(os.path.join(self.run_dir, "other.db-wal")))

    # --- (10) --------------------------------------------------------------------

    def watched_daemon(self):
        server, daemon = self.start({"rows": 400, "slot_defaults": {"slow_bytes_per_second": 40000}})
        port = free_port()
        daemon.edit_config('metrics: {listen: ""}', f"metrics: {{listen: 127.0.0.1:{port}}}")
        daemon.start()
        self.wait_done("shop-hourly", 1, timeout=30)
        base = f"http://127.0.0.1:{port}"
        self.assertEqual(get(base + "/healthz")[0], 200)
        return daemon, base

    def assert_stops_unhealthy(self, daemon, base, word):
        seen = []

        def unhealthy():
            status, body = get(base + "/healthz")
            seen.append((status, body))
            return status == 503 and word in body

        try:
            wait_for(unhealthy, 10, f"/healthz 503 naming '{word}'", interval=0.05)
        except AssertionError as error:
            raise AssertionError(f"{error}; seen {seen[-3:]}{self.context()}") from None
        try:
            code = daemon.process.wait(15)
        except subprocess.TimeoutExpired:
            self.fail(f"the daemon kept running on a {word} database{self.context()}")
        self.assertNotEqual(code, 0)
        log = daemon.log_text()
        self.assertIn(os.path.join(self.run_dir, "state.db"), log)
        self.assertIn(word, log)

    def test_a_deleted_database_stops_the_daemon_after_healthz_says_so(self):
        daemon, base = self.watched_daemon()
        db = os.path.join(self.run_dir, "state.db")
        os.remove(db)
        self.assert_stops_unhealthy(daemon, base, "deleted")
        self.assertFalse(os.path.exists(db), "something made a new database")

    def test_a_replaced_database_stops_the_daemon(self):
        daemon, base = self.watched_daemon()
        db = os.path.join(self.run_dir, "state.db")
        shutil.copyfile(db, db + ".copy")
        os.replace(db + ".copy", db)
        self.assert_stops_unhealthy(daemon, base, "replaced")

    def test_status_never_creates_a_database(self):
        server, daemon = self.start()
        db = os.path.join(self.run_dir, "state.db")
        for args in (("status",), ("gaps",), ("verify",)):
            result = daemon.cli(*args)
            self.assert_refused(result, db, "no such file")
            self.assertFalse(os.path.exists(db), f"{args[0]} created the database")

    def test_a_new_database_beside_an_archive_with_an_identity_is_refused(self):
        server, daemon = self.start()
        self.assert_run_once()
        calls = self.api_calls()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(os.path.join(self.run_dir, "state.db" + suffix)):
                os.remove(os.path.join(self.run_dir, "state.db" + suffix))
        result = daemon.run_once()
        self.assert_refused(result, os.path.join(self.run_dir, "archive"), "adopt-archive")
        self.assertEqual(self.api_calls(), calls, "the new database started downloading again")

    # --- (11) --------------------------------------------------------------------

    def check_config_with_state_db(self, state_db):
        self.daemon.edit_config("state_db: state.db", f"state_db: {state_db}")
        return self.daemon.cli("check-config", "--no-secrets")

    def test_a_state_database_inside_the_archive_is_refused(self):
        server, daemon = self.start()
        archive = os.path.join(self.run_dir, "archive")
        for state_db in ("archive/.staging/state.db", "archive/state.db", "archive/x/y/state.db"):
            with self.subTest(state_db=state_db):
                try:
                    result = self.check_config_with_state_db(state_db)
                    self.assert_refused(result, "inside the archive", archive)
                    self.assert_refused(daemon.run_once(timeout=30), "inside the archive")
                    self.assertFalse(os.path.exists(os.path.join(self.run_dir, state_db)))
                finally:
                    daemon.edit_config(f"state_db: {state_db}", "state_db: state.db")

    def test_a_state_database_reached_through_a_symlink_into_the_archive_is_refused(self):
        server, daemon = self.start()
        os.makedirs(os.path.join(self.run_dir, "archive", ".staging"))
        os.symlink(os.path.join(self.run_dir, "archive", ".staging"), os.path.join(self.run_dir, "db"))
        result = self.check_config_with_state_db("db/state.db")
        self.assert_refused(result, "inside the archive")


if __name__ == "__main__":
    unittest.main()
