"""Retention awareness and the once-only events: slot_at_risk at 72 h and 24 h before the
vendor drops a slot, slot_lost after, NOT_EXISTS quiet within its grace and warned about
once after it, catch_up on start. The daemon's clock is moved with GIO_EXPORTER_NOW;
nothing sleeps."""

import datetime as dt
import json
import unittest

from harness import E2ETestCase, hourly_job, slot_start

RETENTION = dt.timedelta(days=15)


class RetentionTest(E2ETestCase):
    def run_at(self, now, exit_status=0):
        """run --once at `now`; exit_status 3 when slots fail or are lost in that pass."""
        result = self.daemon.run_once(timeout=60, now=now)
        self.assertEqual(result.returncode, exit_status,
                         f"run --once at {now} exited {result.returncode}:\n{result.stderr}")

    def job_status(self, now):
        result = self.daemon.cli("status", "--json", now=now)
        self.assertEqual(result.returncode, 0, result.stderr)
        return next(job for job in json.loads(result.stdout)["jobs"]
                    if job["job"] == "shop-hourly")

    def test_warns_at_72h_and_at_24h_once_each_then_marks_lost(self):
        server, daemon = self.start(jobs=[hourly_job(give_up_after="15d")])
        slots = self.expected()
        never = slots[1]
        server.scenario({"slots": {never: {"status": "NOT_EXISTS"}}})
        lost_at = slot_start(never) + RETENTION

        self.assert_run_once()
        self.assert_archived("shop-hourly", [s for s in slots if s != never])
        self.assertEqual(daemon.events("slot_at_risk"), [])

        # 61 h 30 min before loss: one warning, naming the time left; a later pass
        # inside the same band says nothing more.
        self.run_at(lost_at - dt.timedelta(hours=61, minutes=30))
        self.run_at(lost_at - dt.timedelta(hours=59))
        warnings = daemon.events("slot_at_risk", slot=never)
        self.assertEqual(len(warnings), 1, f"{warnings}{self.context()}")
        self.assertEqual(warnings[0]["left"], "61h")
        self.assertEqual(warnings[0]["lost_at"], lost_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.assertEqual(warnings[0]["state"], "waiting")
        self.assertEqual(self.job_status(lost_at - dt.timedelta(hours=59))["at_risk"], 1)
        self.assertEqual(self.job_status(lost_at - dt.timedelta(hours=73))["at_risk"], 0)

        # 9 h 30 min before loss: the 24 h warning, once.
        self.run_at(lost_at - dt.timedelta(hours=9, minutes=30))
        self.run_at(lost_at - dt.timedelta(hours=8))
        warnings = daemon.events("slot_at_risk", slot=never)
        self.assertEqual([w["left"] for w in warnings], ["61h", "9h"], self.context())

        # Past the retention: lost, with an error line, and counted as lost; the pass
        # that marked it says so in its exit status.
        self.run_at(lost_at + dt.timedelta(minutes=1), exit_status=3)
        lost = daemon.events("slot_lost", slot=never)
        self.assertEqual(len(lost), 1, self.context())
        self.assertIn("retention passed", lost[0]["reason"])
        status = self.job_status(lost_at + dt.timedelta(minutes=2))
        self.assertEqual(status["counts"]["lost"], 1)
        self.assertEqual(status["at_risk"], 0)
        # Done slots are never at risk, and never lost.
        self.assertEqual({w["slot"] for w in daemon.events("slot_at_risk")}, {never})
        self.assertEqual({e["slot"] for e in daemon.events("slot_lost")}, {never})

    def test_not_exists_is_quiet_within_its_grace_then_warned_once_then_failed(self):
        server, daemon = self.start(jobs=[hourly_job(give_up_after="6h", backfill="12h")])
        slots = self.expected()
        late = slots[-1]  # ready 30 min ago: inside the default 2 h grace
        server.scenario({"slots": {late: {"status": "NOT_EXISTS"}}})
        now = server.now()

        self.assert_run_once()
        self.assertEqual(daemon.events("slot_not_exists"), [], self.context())
        code, gaps = daemon.gaps()
        self.assertEqual([(g["slot"], g["state"]) for g in gaps["gaps"]], [(late, "waiting")])

        self.run_at(now + dt.timedelta(hours=2))
        self.run_at(now + dt.timedelta(hours=3))
        anomalies = daemon.events("slot_not_exists", slot=late)
        self.assertEqual(len(anomalies), 1, self.context())
        self.assertIn("NOT_EXISTS", anomalies[0]["reason"])

        # Past give_up_after (6 h from when it was planned): failed, with the reason.
        later = now + dt.timedelta(hours=7)
        self.run_at(later, exit_status=3)
        code, gaps = daemon.gaps(now=later)
        by_slot = {g["slot"]: g for g in gaps["gaps"]}
        self.assertEqual(by_slot[late]["state"], "failed", gaps)
        self.assertIn("gave up after 6h", by_slot[late]["last_error"])
        self.assertIn("NOT_EXISTS", by_slot[late]["last_error"])
        failed = daemon.events("slot_failed", slot=late)
        self.assertEqual(len(failed), 1, self.context())
        # Polled at every pass, but slot_waiting said once.
        self.assertEqual(len(daemon.events("slot_waiting", slot=late)), 1, self.context())

    def test_catch_up_names_the_slots_missed_while_down(self):
        server, daemon = self.start()
        slots = self.expected()
        self.assert_run_once()
        self.assertEqual(daemon.events("catch_up"),
                         [{"event": "catch_up", "job": "shop-hourly", "slots": str(len(slots)),
                           "first": slots[0], "last": slots[-1]}])
        # Three hours later: the three hours that became ready meanwhile.
        later = server.now() + dt.timedelta(hours=3)
        self.run_at(later)
        catch_up = daemon.events("catch_up")[1:]
        self.assertEqual(len(catch_up), 1, self.context())
        self.assertEqual(catch_up[0]["slots"], "3")
        self.assertEqual(slot_start(catch_up[0]["first"]), slot_start(slots[-1]) + dt.timedelta(hours=1))


if __name__ == "__main__":
    unittest.main()
