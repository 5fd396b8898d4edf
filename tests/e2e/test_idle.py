"""Idle means idle (issue 18, item 4): the daemon does not poll the state database for
other processes' commands; it is woken as they commit (inotify on the database's
directory), so a `backfill` or `retry` run while it sleeps is acted on at once."""

import datetime as dt
import time
import unittest

from harness import E2ETestCase, hourly_job, parse_logfmt, slot_name, slot_start, wait_for

JOB = "shop-hourly"


class IdleTest(E2ETestCase):
    def queue_changes(self):
        """(wall time, fields) of each event=queue_changed line of the running daemon."""
        found = []
        for line in self.daemon.log_text().splitlines():
            if "event=queue_changed" in line:
                fields = dict(parse_logfmt(line))
                stamp = dt.datetime.strptime(fields["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
                found.append((stamp.replace(tzinfo=dt.timezone.utc).timestamp(), fields))
        return found

    def test_a_command_wakes_the_sleeping_daemon_at_once(self):
        server, daemon = self.start(jobs=[hourly_job(backfill="4h")])
        slots = self.expected()
        daemon.start()
        self.wait_done(JOB, len(slots))
        # Watched, not polled: the 2 s poll is only the fallback, and says so.
        self.assertEqual(daemon.events("queue_watch"), [], self.context())
        self.assertEqual(self.queue_changes(), [], self.context())

        # Nothing is due now: the daemon sleeps until the next slot's readiness, far more
        # than a second away, and only another process's commit can wake it sooner.
        older = slot_name(slot_start(slots[0]) - dt.timedelta(hours=1), "hour")
        result = daemon.cli("backfill", "--job", JOB, "--from", older, "--to", older)
        ended = time.time()
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        changes = wait_for(self.queue_changes, 10, "event=queue_changed", interval=0.05)
        stamp, fields = changes[0]
        self.assertEqual((fields["slots"], fields["first"]), ("1", older), fields)
        # The event itself woke it: well inside the second (a poll would come up to 2 s
        # late, and none runs: see queue_watch above).
        self.assertLess(stamp - ended, 1.0, self.context())
        self.wait_done(JOB, len(slots) + 1, timeout=30)
        self.assert_archived(JOB, [older] + slots)
        self.assertEqual(len(self.queue_changes()), 1, self.context())
        self.stop_daemon()


if __name__ == "__main__":
    unittest.main()
