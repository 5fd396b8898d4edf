"""`status --calendar`: the slot grid against golden files (plain and colour), at a fixed
clock, over a state the real daemon built against the fake server and then set into
every shown state."""

import datetime as dt
import json
import os
import re
import sqlite3
import unittest

from harness import E2ETestCase, hourly_job

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
# The clock the calendar is drawn at: 2026-11-22 18:10 Beijing (the harness's NOW).
AT = "2026-11-22T10:10:00Z"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class CalendarTest(E2ETestCase):
    def setUp(self):
        super().setUp()
        daily = {"name": "shop-daily", "project": "shop", "kind": "raw", "granularity": "day",
                 "data_types": "all", "ready_after": "6h", "poll_every": "1s",
                 "give_up_after": "24h", "backfill": "2d", "link_expire": "60m"}
        # A chart job: one calendar line per chart.
        charts = {"name": "shop-charts", "project": "shop", "kind": "chart",
                  "charts": ["fUn1", "rEt2"], "resource": "funnels", "granularity": "day",
                  "interval": "1d", "ready_after": "6h", "poll_every": "1s",
                  "give_up_after": "24h", "backfill": "2d"}
        self.start(jobs=[hourly_job(backfill="8h"), daily, charts])
        self.assert_run_once()
        # Every state the store has, at fixed times (the run's own next_at follow the
        # real clock), so the grid is the same on every run.
        with sqlite3.connect(os.path.join(self.daemon.run_dir, "state.db")) as db:
            def put(slot, state, error="", attempts=1, status="", job="shop-hourly"):
                changed = db.execute(
                    "UPDATE slots SET state = ?, last_error = ?, attempts = ?, api_status = ?, "
                    "next_at = 1795400000, done_at = CASE WHEN ? = 'done' THEN done_at END "
                    "WHERE job = ? AND slot = ?",
                    (state, error, attempts, status, state, job, slot)).rowcount
                self.assertEqual(changed, 1, f"{job} {slot}")
            # The run archived 11..16 (8 h of backfill) and 2026-11-21 of the daily job.
            put("2026-11-22T13", "failed", "gave up after 24h: the export answered ERROR "
                "(the vendor's job failed; retry --failed asks again)", 7, "ERROR")
            put("2026-11-22T14", "waiting", attempts=2, status="RUNNING")
            put("2026-11-22T15", "downloading", attempts=1, status="FINISHED")
            db.execute("DELETE FROM slots WHERE job = 'shop-hourly' AND slot = '2026-11-22T16'")
            put("2026-11-21", "failed", "links refused", 3, "FINISHED", job="shop-daily")

    def calendar(self, *args, colour=None):
        self.daemon.extra_env.pop("GIO_EXPORTER_COLOR", None)
        self.daemon.extra_env.pop("NO_COLOR", None)
        if colour is not None:
            self.daemon.extra_env.update(colour)
        now = dt.datetime.strptime(AT, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        result = self.daemon.cli("status", "--calendar", *args, now=now)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def assert_golden(self, name, text):
        path = os.path.join(GOLDEN, name)
        if os.environ.get("GIO_UPDATE_GOLDEN"):
            os.makedirs(GOLDEN, exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        with open(path, encoding="utf-8") as f:
            self.assertEqual(text, f.read())
        for line in ANSI.sub("", text).splitlines():
            self.assertLessEqual(len(line), 80, line)

    def test_plain_grid(self):
        # Not a terminal: plain, without being told.
        text = self.calendar()
        self.assertNotIn("\x1b[", text)
        self.assert_golden("calendar_plain.txt", text)
        for mark in "#~>F?.":  # done 11, 12; waiting 14; downloading 15; unplanned 16
            self.assertIn(mark, text)
        self.assertIn("2026-11-22T13 failed left=14d18h: gave up after 24h", text)
        # The chart job: a line per chart, each with the day its run archived.
        charts = text[text.index("shop-charts"):]
        self.assertIn("charts: 1=fUn1 2=rEt2", charts)
        for line in ("1", "2"):
            self.assertRegex(charts, r"\n2026-11-15 " + line + r" [?  ]+#\n")
        # NO_COLOR wins over nothing, and a forced colour wins over NO_COLOR.
        self.assertEqual(self.calendar(colour={"NO_COLOR": "1"}), text)
        self.assertIn("\x1b[", self.calendar(colour={"NO_COLOR": "1", "GIO_EXPORTER_COLOR": "1"}))

    def test_colour_grid_of_one_job(self):
        text = self.calendar("--job", "shop-hourly", "--days", "16",
                             colour={"GIO_EXPORTER_COLOR": "1"})
        self.assertIn("\x1b[1;31mF\x1b[0m", text)
        self.assertNotIn("shop-daily", text)
        self.assert_golden("calendar_colour.txt", text)
        # 2026-11-07 before 18:10 Beijing is past the vendor's 15 days: lost.
        self.assertIn("2026-11-07T00 lost left=none", ANSI.sub("", text))

    def test_json_is_the_api_body(self):
        body = json.loads(self.calendar("--json", "--job", "shop-daily", "--days", "3"))
        self.assertEqual(body["generated_at"], AT)
        job = body["jobs"][0]
        self.assertEqual([day["date"] for day in job["days"]], ["2026-11-20", "2026-11-21", "2026-11-22"])
        failed = job["days"][1]["cells"][0]
        self.assertEqual((failed["state"], failed["last_error"], failed["attempts"]),
                         ("failed", "links refused", 3))
        self.assertEqual(job["attention"][0]["slot"], "2026-11-21")
        # Refused, naming why, with exit status 1.
        for args in (["--calendar", "--job", "nope"], ["--calendar", "--days", "0"],
                     ["--days", "3"]):
            result = self.daemon.cli("status", *args)
            self.assertEqual(result.returncode, 1, args)
            self.assertEqual(result.stdout, "", args)
            self.assertNotEqual(result.stderr, "", args)


if __name__ == "__main__":
    unittest.main()
