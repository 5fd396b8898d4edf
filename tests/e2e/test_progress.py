"""Progress for long work (issue 17): `status` shows the bytes a downloading slot has
fetched, growing while it downloads and gone once it is done; `fetch` draws a progress
line on a terminal and nothing otherwise."""

import os
import pty
import re
import select
import sqlite3
import subprocess
import time
import unittest

from harness import E2ETestCase, hourly_job, wait_for

JOB = "shop-hourly"
# Slow enough that a part takes several of the daemon's 2 s reports, small enough that
# the test stays short (about 60 KB per part at 2000 rows).
SLOW = 6000


def progress_rows(database):
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return connection.execute("SELECT count(*) FROM progress").fetchone()[0]
    finally:
        connection.close()


class StatusProgressTest(E2ETestCase):
    def test_status_shows_bytes_done_growing_then_gone(self):
        server, daemon = self.start({"slot_defaults": {"slow_bytes_per_second": SLOW}},
                                    jobs=[hourly_job(backfill="3h", data_types=["visit"])],
                                    parallel_downloads=1)
        slots = self.expected()
        daemon.start()

        def downloading():
            entries = daemon.job_status(JOB)["downloading"]
            return entries if entries and entries[0]["bytes_done"] > 0 else None

        first = wait_for(downloading, 60, "a downloading slot with bytes done", 0.25)[0]
        self.assertIn(first["slot"], slots)
        self.assertEqual(set(first), {"slot", "bytes_done", "bytes_total"})
        if first["bytes_total"] is not None:
            self.assertLessEqual(first["bytes_done"], first["bytes_total"])

        def grown():
            entries = [e for e in daemon.job_status(JOB)["downloading"] if e["slot"] == first["slot"]]
            return entries[0] if entries and entries[0]["bytes_done"] > first["bytes_done"] else None

        line = re.compile(rf"\n  downloading: {re.escape(first['slot'])} \d+ (bytes|MiB)( of \d+ "
                          r"(bytes|MiB))?\n")
        wait_for(lambda: line.search(daemon.cli("status").stdout), 30, "the downloading line", 0.25)
        later = wait_for(grown, 30, "the bytes done growing", 0.25)

        server.scenario({"slot_defaults": {"slow_bytes_per_second": 0}})
        self.wait_done(JOB, len(slots), timeout=120)
        self.assertEqual(daemon.job_status(JOB)["downloading"], [])
        self.assertNotIn("downloading:", daemon.cli("status").stdout)
        self.assertEqual(progress_rows(os.path.join(daemon.run_dir, "state.db")), 0, self.context())
        self.assertGreater(later["bytes_done"], 0)


class FetchProgressTest(E2ETestCase):
    def links(self, server):
        slot = self.expected()[-1]
        wait_for(lambda: server.ask("hour", slot)[1]["status"] == "FINISHED", 30,
                 "a finished export", 0.2)
        answer = server.ask("hour", slot)[1]
        return [link for links in answer["downloadLinks"].values() for link in links][:1]

    def test_a_terminal_gets_a_progress_line_and_a_pipe_nothing(self):
        server, daemon = self.start({"slot_defaults": {"slow_bytes_per_second": 40000}})
        [link] = self.links(server)
        out = os.path.join(self.base, "out")

        # Under a pseudo-terminal: stderr is a TTY.
        command = [daemon.binary, "-c", daemon.config, "fetch", "--dir", out + "-tty", link]
        master, slave = pty.openpty()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=slave, env=daemon.env(), cwd=self.aux_dir)
        os.close(slave)
        drawn = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed its end
                    break
                if not chunk:
                    break
                drawn += chunk
            elif process.poll() is not None:
                break
        stdout = process.communicate(timeout=30)[0].decode()
        os.close(master)
        self.assertEqual(process.returncode, 0, stdout + drawn.decode(errors="replace"))
        self.assertTrue(stdout.startswith("OK "), stdout)
        text = drawn.decode(errors="replace")
        name = stdout.split()[1]
        # Redrawn in place, and a final line with the bytes, the rate and the time left.
        self.assertIn("\r", text)
        final = text.replace("\r\n", "\n").split("\n")[-2].split("\r")[-1]
        self.assertRegex(final, rf"{re.escape(name)} \d+ (bytes|MiB)( of \d+ (bytes|MiB))? "
                                r"\d+ (bytes|MiB)/s ETA (\d+:\d\d|--:--)")
        self.assertNotIn("sign=", text)

        # Not a terminal: nothing drawn.
        result = subprocess.run(command[:4] + ["--dir", out + "-pipe", link], capture_output=True,
                                text=True, timeout=60, env=daemon.env(), cwd=self.aux_dir)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertTrue(result.stdout.startswith("OK "), result.stdout)
        self.assertEqual(result.stderr, "")


if __name__ == "__main__":
    unittest.main()
