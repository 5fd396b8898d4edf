"""backfill and retry: slots put back in the queue of a running daemon (shared SQLite),
--dry-run changing nothing, --force fetching a done slot again byte for byte, a slot
given up on coming back with retry, and the slots the vendor no longer has refused."""

import datetime as dt
import json
import os
import unittest

from harness import E2ETestCase, hourly_job, slot_name, slot_start, wait_for

# How long the daemon may take to notice queued work: it re-reads the queue at least
# every 60 s today (a ~2 s data_version poll is on its way).
PICKUP = 90
JOB = "shop-hourly"


class BackfillTest(E2ETestCase):
    def slot_state(self, slot):
        code, gaps = self.daemon.gaps(JOB)
        for gap in gaps["gaps"]:
            if gap["slot"] == slot:
                return gap
        return None

    def rows(self):
        """Every row of the job as the CLI sees it: status counts plus gaps. seconds_left
        is left out: each process starts its clock from GIO_EXPORTER_NOW to the whole
        second, so two commands may differ by one."""
        code, gaps = self.daemon.gaps(JOB)
        for gap in gaps["gaps"]:
            gap.pop("seconds_left")
        return self.daemon.job_status(JOB)["counts"], (code, gaps)

    def cli_ok(self, *args, now=None):
        result = self.daemon.cli(*args, now=now)
        self.assertEqual(result.returncode, 0, f"{args} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result.stdout

    def lines(self, output):
        """{slot: what} of a backfill/retry output."""
        found = {}
        for line in output.splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[0] == JOB:
                found[parts[1]] = parts[2]
        return found

    def test_backfill_and_retry_while_the_daemon_runs(self):
        # One slot answers ERROR until the test lets it finish: with give_up_after 2s it
        # is failed soon after its first asks.
        server, daemon = self.start(jobs=[hourly_job(backfill="5h", give_up_after="2s")])
        slots = self.expected()
        self.assertGreaterEqual(len(slots), 2)
        broken, good = slots[-1], slots[0]
        server.scenario({"slots": {broken: {"status": "ERROR"}}})
        daemon.start()
        self.wait_done(JOB, len(slots) - 1, timeout=PICKUP)
        wait_for(lambda: (self.slot_state(broken) or {}).get("state") == "failed", PICKUP,
                 f"{broken} failed")
        self.assert_archived(JOB, [s for s in slots if s != broken])

        # Older slots, outside the job's 5h window, never planned: backfill fetches them.
        older = [slot_name(slot_start(slots[0]) - dt.timedelta(hours=h), "hour") for h in (3, 2, 1)]
        # Past the vendor's 15 days: refused, never queued.
        ancient = slot_name(slot_start(slots[0]) - dt.timedelta(days=16), "hour")

        # --dry-run: the same report, and nothing changes.
        before = self.rows()
        out = self.cli_ok("backfill", "--job", JOB, "--from", older[0], "--to", good, "--dry-run")
        report = self.lines(out)
        self.assertEqual([report[s] for s in older], ["queued (not planned before)"] * 3, out)
        self.assertEqual(report[good], "skipped: done (use --force to fetch it again)", out)
        self.assertIn("3 queued", out)
        self.assertIn("dry run: nothing changed", out)
        out = self.cli_ok("backfill", "--job", JOB, "--from", good, "--to", good, "--force", "--dry-run")
        self.assertEqual(self.lines(out)[good], "queued (was done; --force)", out)
        out = self.cli_ok("retry", "--job", JOB, "--failed", "--dry-run")
        self.assertTrue(self.lines(out)[broken].startswith("queued (was failed"), out)
        self.assertEqual(self.rows(), before)
        for data_type in self.truth(JOB, good):
            self.assertTrue(os.path.exists(os.path.join(self.partition(JOB, data_type, good), "_SUCCESS")))

        # Refusals: a slot past retention, a done slot without --force.
        out = self.cli_ok("backfill", "--job", JOB, "--from", ancient, "--to", ancient)
        self.assertTrue(self.lines(out)[ancient].startswith("skipped: lost (the vendor's 15-day retention"), out)
        out = self.cli_ok("retry", "--job", JOB, "--slot", good)
        self.assertEqual(self.lines(out)[good], "skipped: done (use backfill --force to fetch it again)", out)
        self.assertEqual(self.rows(), before)

        # Now for real, while the daemon runs: the failed slot (the vendor has it now),
        # the never-planned older slots, and a done slot fetched again with --force.
        server.scenario({"slots": {broken: {"status": "FINISHED"}}})
        downloads_before = server.stats()["downloads_completed"]
        out = self.cli_ok("retry", "--job", JOB, "--failed")
        self.assertTrue(self.lines(out)[broken].startswith("queued (was failed"), out)
        gap = self.slot_state(broken)  # None: already done again
        if gap is None:
            pass
        elif gap["state"] == "pending":
            self.assertEqual(gap["attempts"], 0, gap)
            self.assertIn("gave up", gap["last_error"])  # kept until the next answer
        else:
            # The running daemon picked the slot up between the two commands (it looks
            # for queued work every 2 s): one attempt since the reset, never the old count.
            self.assertIn(gap["state"], ("waiting", "downloading"), gap)
            self.assertEqual(gap["attempts"], 1, gap)
        out = self.cli_ok("backfill", "--job", JOB, "--from", older[0], "--to", older[-1])
        self.assertEqual(self.lines(out), {s: "queued (not planned before)" for s in older}, out)
        out = self.cli_ok("backfill", "--job", JOB, "--from", good, "--to", good, "--force")
        self.assertEqual(self.lines(out), {good: "queued (was done; --force)"}, out)
        # Readers stop trusting the partitions being fetched again at once.
        for data_type in self.truth(JOB, good):
            self.assertFalse(os.path.exists(os.path.join(self.partition(JOB, data_type, good), "_SUCCESS")))

        everything = older + slots
        self.wait_done(JOB, len(everything), timeout=PICKUP)
        self.assertTrue(daemon.running())
        self.assert_archived(JOB, everything)
        # The --force slot was downloaded again (every file), the others not twice.
        after = server.stats()["downloads_completed"]
        again = {path: n for path, n in after.items() if path.split("/")[4] == good}
        self.assertTrue(again, after)
        for path, n in again.items():
            self.assertEqual(n, downloads_before.get(path, 0) + 1, path)
        for other in slots:
            if other not in (good, broken):
                for path, n in after.items():
                    if path.split("/")[4] == other:
                        self.assertEqual(n, 1, path)
        self.assertEqual(daemon.gaps(JOB)[0], 0)
        self.stop_daemon()

    def test_usage_and_config_errors_exit_1(self):
        server, daemon = self.start()
        slot = self.expected()[0]
        cases = [
            ("backfill", "--job", "nope", "--from", slot, "--to", slot),
            ("backfill", "--job", JOB, "--from", "2026-11-22", "--to", "2026-11-22"),  # a day, hourly job
            ("backfill", "--job", JOB, "--from", "2026-11-22T05", "--to", "2026-11-22T04"),
            ("backfill", "--job", JOB, "--from", slot),
            ("retry", "--job", JOB),
            ("retry", "--job", JOB, "--slot", slot, "--failed"),
            ("retry", "--job", JOB, "--slot", "2026-11-22T25"),
            ("retry", "--failed"),
        ]
        for args in cases:
            result = daemon.cli(*args)
            self.assertEqual(result.returncode, 1, f"{args}: {result.stdout}{result.stderr}")
            self.assertTrue(result.stderr.strip(), args)
        result = daemon.cli("backfill", "--job", JOB, "--from", "2026-11-22", "--to", "2026-11-22")
        self.assertIn("is not a slot of job shop-hourly", result.stderr)

    def test_retry_of_a_slot_the_daemon_gave_up_on(self):
        # run --once: the slot is failed (give_up_after 1s, an hour later), then retried
        # by name and archived by the next pass; attempts start again from 0.
        slot = "2026-11-22T14"
        server, daemon = self.start({"slots": {slot: {"status": "NOT_EXISTS"}}},
                                    jobs=[hourly_job(give_up_after="1s", backfill="6h")])
        self.assertIn(slot, self.expected())
        self.assert_run_once()
        later = server.now() + dt.timedelta(hours=1)
        failing = daemon.run_once(now=later)  # it fails the slot: exit status 3
        self.assertEqual(failing.returncode, 3, failing.stdout + failing.stderr)
        gap = {g["slot"]: g for g in daemon.gaps(JOB, now=later)[1]["gaps"]}[slot]
        self.assertEqual(gap["state"], "failed", gap)

        server.scenario({"slots": {slot: {"status": "FINISHED"}}})
        out = self.cli_ok("retry", "--job", JOB, "--slot", slot, "--dry-run", now=later)
        self.assertIn("1 queued", out)
        self.assertEqual({g["slot"]: g for g in daemon.gaps(JOB, now=later)[1]["gaps"]}[slot]["state"], "failed")
        out = self.cli_ok("retry", "--job", JOB, "--slot", slot, now=later)
        self.assertTrue(self.lines(out)[slot].startswith("queued (was failed: gave up"), out)
        # The pass runs; it may fail a slot planned at the later clock (give_up_after
        # 1 s; exit status 3), never the retried one.
        failed_before = len(daemon.events("slot_failed", slot=slot))
        rerun = daemon.run_once(now=later)
        self.assertIn(rerun.returncode, (0, 3), rerun.stdout + rerun.stderr)
        self.assertEqual(len(daemon.events("slot_failed", slot=slot)), failed_before)
        self.assertNotIn(slot, {g["slot"] for g in daemon.gaps(JOB, now=later)[1]["gaps"]})
        self.assert_archived(JOB, [slot])
        # A second retry leaves the archived slot alone. (Slots planned at the later
        # clock may have failed meanwhile, give_up_after being 1 s: those it may queue.)
        out = self.cli_ok("retry", "--job", JOB, "--failed", now=later)
        self.assertNotIn(slot, self.lines(out), out)

    def test_status_counts_slots_at_risk(self):
        # Three days and a bit after the oldest slots, with the server silent, slots
        # within 72 h of the vendor's 15 days are at risk; done ones never are.
        server, daemon = self.start(jobs=[hourly_job(backfill="5h")])
        slots = self.expected()
        self.assert_run_once()
        status = daemon.job_status(JOB)
        self.assertEqual(status["at_risk"], 0, status)
        # Put them back in the queue, then look from 12 days + 2 hours after the oldest.
        self.cli_ok("backfill", "--job", JOB, "--from", slots[0], "--to", slots[-1], "--force")
        when = slot_start(slots[0]) + dt.timedelta(days=12, hours=1, minutes=30)
        result = daemon.cli("status", "--json", now=when)
        status = {j["job"]: j for j in json.loads(result.stdout)["jobs"]}[JOB]
        # Slots starting before now - 15d + 72h = oldest + 1h30m: the first two.
        self.assertEqual(status["at_risk"], 2, status)
        text = daemon.cli("status", now=when).stdout
        self.assertIn("at_risk=2", text)


if __name__ == "__main__":
    unittest.main()
