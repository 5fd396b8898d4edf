"""Hourly against daily: an hourly and a daily raw job of one project through one Beijing
date whose daily export holds late events for some hours (fake-growingio's late_rows).
`reconcile` reports the exact late rows per hour, its exit status follows the tolerance,
and the daemon logs event=reconcile_mismatch and exposes gio_reconcile_late_rows."""

import json
import unittest

from harness import Daemon, E2ETestCase, FakeServer, free_port, hourly_job, wait_for

# Beijing 2026-11-23 03:10: every hour of 2026-11-22 is ready (the last, 23:00, at
# 01:00 with the vendor's extra time), and so is the day (3 h after midnight).
NOW = "2026-11-22T19:10:00Z"
DATE = "2026-11-22"
ROWS = 3  # records per hour in each hourly file and per hour in the daily file
LATE = {"3": 2, "7": 1}  # the day's extra records of visit, by Beijing hour


def jobs(**hourly):
    return [hourly_job(data_types=["visit"], backfill="28h", **hourly),
            {"name": "shop-daily", "project": "shop", "kind": "raw", "granularity": "day",
             "data_types": ["visit"], "ready_after": "3h", "poll_every": "1s",
             "give_up_after": "24h", "backfill": "2d", "link_expire": "60m"}]


class ReconcileTest(E2ETestCase):
    def start_pair(self, **hourly):
        self.server = FakeServer(self.aux_dir, {"rows": ROWS, "parts": {"visit": 1}, "late_rows": {"visit": LATE}},
                                 now=NOW)
        self.daemon = Daemon(self.run_dir, self.aux_dir, self.server, jobs(**hourly))
        return self.server, self.daemon

    def reconcile(self, *args):
        result = self.daemon.cli("reconcile", *args)
        self.assertIn(result.returncode, (0, 1, 2), result.stdout + result.stderr)
        return result

    def test_late_rows_per_hour_exit_codes_event_and_metric(self):
        server, daemon = self.start_pair()
        self.assert_run_once()
        self.assertEqual(daemon.job_status("shop-daily")["counts"].get("done"), 1, self.context())

        # The day has 24 * 3 + 3 records, its 24 hours 72: 4% late, beyond 0.5%.
        result = self.reconcile("--json")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        answer = json.loads(result.stdout)
        self.assertEqual(answer["mismatches"], 1)
        [pair] = answer["pairs"]
        self.assertEqual((pair["job"], pair["daily_job"], pair["automatic"]),
                         ("shop-hourly", "shop-daily", True))
        self.assertEqual(pair["tolerance_percent"], 0.5)
        [row] = pair["dates"]
        self.assertEqual((row["date"], row["type"], row["hourly_rows"], row["daily_rows"],
                          row["difference"], row["verdict"]),
                         (DATE, "visit", 24 * ROWS, 24 * ROWS + 3, 3, "mismatch"))
        self.assertEqual(row["difference_percent"], 4.0)
        self.assertEqual([(h["hour"], h["hourly_rows"], h["daily_rows"], h["difference"])
                          for h in row["hours"]],
                         [(3, ROWS, ROWS + 2, 2), (7, ROWS, ROWS + 1, 1)])

        text = self.reconcile("--job", "shop-daily", "--from", DATE, "--to", DATE)
        self.assertEqual(text.returncode, 2)
        self.assertIn("shop-hourly against shop-daily (tolerance 0.5%)", text.stdout)
        self.assertRegex(text.stdout, r"2026-11-22\s+visit\s+72\s+75\s+\+3\s+mismatch\s+03:\+2 07:\+1")
        # Another range has nothing to say.
        self.assertEqual(self.reconcile("--from", "2026-11-23").returncode, 0)
        self.assertEqual(self.reconcile("--from", "22-11-2026").returncode, 1)

        [event] = daemon.events("reconcile_mismatch")
        self.assertEqual({key: event[key] for key in (
            "job", "daily_job", "date", "type", "hourly_rows", "daily_rows", "late_rows",
            "short_hours")},
            {"job": "shop-hourly", "daily_job": "shop-daily", "date": DATE, "type": "visit",
             "hourly_rows": "72", "daily_rows": "75", "late_rows": "3",
             "short_hours": "03:2,07:1"})

        # Within a 5% tolerance the same numbers are a match (the verdict is taken under
        # the tolerance configured now).
        daemon.edit_config("give_up_after: 24h, backfill: 28h",
                           "give_up_after: 24h, backfill: 28h, reconcile_tolerance: 5%")
        within = self.reconcile("--json")
        self.assertEqual(within.returncode, 0, within.stdout + within.stderr)
        self.assertEqual(json.loads(within.stdout)["pairs"][0]["dates"][0]["verdict"], "match")

        # The metrics, read from the stored comparison by a running daemon.
        url = self.enable_metrics()
        daemon.start()
        scrape = wait_for(lambda: self.scrape(url), 30, "a /metrics answer")
        self.assertIn('gio_reconcile_late_rows{gio_job="shop-hourly",type="visit"} 3', scrape)
        self.assertIn('gio_reconcile_last_date_timestamp_seconds{gio_job="shop-hourly",'
                      'type="visit"} 1795276800', scrape)
        self.assertIn('gio_reconcile_tolerance_percent{gio_job="shop-hourly"} 5', scrape)
        # The date was compared once: a start does not compare it again.
        self.stop_daemon()
        self.assertEqual(len(daemon.events("reconcile_mismatch")), 1)

    def test_refetch_asks_again_for_the_short_hours_once(self):
        server, daemon = self.start_pair(on_reconcile_mismatch="refetch")
        self.assert_run_once()
        [refetch] = daemon.events("reconcile_refetch")
        self.assertEqual((refetch["job"], refetch["date"], refetch["queued"]),
                         ("shop-hourly", DATE, "2"))
        self.assertEqual(refetch["slots"], "2026-11-22T03,2026-11-22T07")
        asks = server.stats()["api_calls_per_type"]
        # The next pass fetches the two hours again; the vendor's hours are unchanged, so
        # the date is compared again, still short, and not asked for a second time.
        self.assert_run_once()
        asks_after = server.stats()["api_calls_per_type"]
        for hour in ("03", "07"):
            key = f"hour/{DATE}T{hour}/visit"
            self.assertEqual(asks_after[key], asks[key] + 1)
        self.assertEqual(asks_after[f"hour/{DATE}T04/visit"], asks[f"hour/{DATE}T04/visit"])
        self.assertEqual(len(daemon.events("reconcile_mismatch")), 2)
        self.assertEqual(len(daemon.events("reconcile_refetch")), 1)
        self.assertEqual(self.reconcile().returncode, 2)


if __name__ == "__main__":
    unittest.main()
