"""verify: the archive re-read against its manifests; damage reported (exit 2) and,
with --repair, queued again and restored byte for byte by the next run while the
vendor still has the slot."""

import datetime as dt
import os
import unittest

from harness import E2ETestCase, hourly_job, slot_start, wait_for

JOB = "shop-hourly"


class VerifyTest(E2ETestCase):
    def verify(self, *args, now=None):
        return self.daemon.cli("verify", *args, now=now)

    def data_file(self, slot):
        """(data type, path) of the first data file of a slot."""
        for data_type, files in sorted(self.truth(JOB, slot).items()):
            folder = self.partition(JOB, data_type, slot)
            for name in sorted(os.listdir(folder)):
                if not name.startswith("_"):
                    return data_type, os.path.join(folder, name)
        self.fail(f"no data file in {slot}")

    def state_of(self, slot, now=None):
        for gap in self.daemon.gaps(JOB, now=now)[1]["gaps"]:
            if gap["slot"] == slot:
                return gap["state"]
        return "done"

    def test_deleted_and_corrupted_files_are_found_and_repaired(self):
        server, daemon = self.start(jobs=[hourly_job(backfill="5h")])
        slots = self.expected()
        self.assertGreaterEqual(len(slots), 3)
        self.assert_run_once()
        self.assert_archived(JOB, slots)

        result = self.verify()
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"verify: {len(slots)} done slot(s)", result.stdout)
        self.assertIn("0 damaged slot(s)", result.stdout)

        # One file deleted, another overwritten with the same number of bytes (the
        # daemon's resume logic keeps parts by size: only the sha256 can tell).
        deleted_type, deleted = self.data_file(slots[0])
        os.remove(deleted)
        corrupt_type, corrupt = self.data_file(slots[1])
        with open(corrupt, "r+b") as f:
            f.seek(os.path.getsize(corrupt) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))

        result = self.verify("--job", JOB)
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn(f"{JOB} {slots[0]} damaged: {deleted_type}/{os.path.basename(deleted)}: missing",
                      result.stdout)
        self.assertIn(f"{JOB} {slots[1]} damaged: {corrupt_type}/{os.path.basename(corrupt)}: sha256 ",
                      result.stdout)
        self.assertNotIn(slots[2], result.stdout)
        self.assertIn("2 damaged slot(s)", result.stdout)
        # A range leaves the other slots out.
        result = self.verify("--job", JOB, "--from", slots[2], "--to", slots[2])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        # Without --repair nothing changes.
        self.assertEqual(self.state_of(slots[0]), "done")

        result = self.verify("--repair")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn(f"{JOB} {slots[0]} queued", result.stdout)
        self.assertIn(f"{JOB} {slots[1]} queued", result.stdout)
        self.assertEqual(self.state_of(slots[0]), "pending")
        self.assertEqual(self.state_of(slots[1]), "pending")
        self.assertEqual(self.state_of(slots[2]), "done")
        for slot, data_type in ((slots[0], deleted_type), (slots[1], corrupt_type)):
            self.assertFalse(os.path.exists(os.path.join(self.partition(JOB, data_type, slot), "_SUCCESS")))

        downloads_before = server.stats()["downloads_completed"]
        self.assert_run_once()
        self.assert_archived(JOB, slots)
        result = self.verify()
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        # Only the damaged files were fetched again.
        after = server.stats()["downloads_completed"]
        fetched = {path for path, n in after.items() if n > downloads_before.get(path, 0)}
        self.assertEqual({p.split("/")[4] for p in fetched}, {slots[0], slots[1]}, fetched)
        self.assertEqual(len(fetched), 2, fetched)

    def test_repair_while_the_daemon_runs(self):
        server, daemon = self.start(jobs=[hourly_job(backfill="5h")])
        slots = self.expected()
        daemon.start()
        self.wait_done(JOB, len(slots), timeout=90)
        data_type, path = self.data_file(slots[-1])
        os.remove(path)
        result = self.verify("--repair")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn(f"{JOB} {slots[-1]} queued", result.stdout)
        # The daemon holds the archive's staging lock; verify never needed it.
        self.assertTrue(daemon.running())
        wait_for(lambda: os.path.exists(path) and self.state_of(slots[-1]) == "done", 90,
                 f"{path} restored")
        self.assert_archived(JOB, slots)
        self.assertEqual(self.verify().returncode, 0)
        self.stop_daemon()

    def test_damage_past_retention_is_reported_not_repairable(self):
        server, daemon = self.start(jobs=[hourly_job(backfill="5h")])
        slots = self.expected()
        self.assert_run_once()
        data_type, path = self.data_file(slots[0])
        os.remove(path)
        # 15 days and an hour after the oldest slot started: the vendor has dropped it;
        # the newest slot is still inside retention, and intact.
        later = slot_start(slots[0]) + dt.timedelta(days=15, hours=1)
        self.assertLess(later, slot_start(slots[-1]) + dt.timedelta(days=15))
        result = self.verify("--repair", now=later)
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn(f"{JOB} {slots[0]} not repairable: the vendor's 15-day retention passed",
                      result.stdout)
        self.assertEqual(self.state_of(slots[0], now=later), "done")
        # The whole partition disappearing is damage too.
        for name in os.listdir(self.partition(JOB, data_type, slots[0])):
            os.remove(os.path.join(self.partition(JOB, data_type, slots[0]), name))
        os.rmdir(self.partition(JOB, data_type, slots[0]))
        result = self.verify(now=later)
        self.assertEqual(result.returncode, 2)
        self.assertIn(f"{JOB} {slots[0]} damaged: {data_type}/(partition): partition folder missing",
                      result.stdout)

    def test_bad_options_exit_1(self):
        server, daemon = self.start()
        for args in (("--job", "nope"), ("--from", "2026-11-22T03"),
                     ("--job", JOB, "--from", "2026-11-22", "--to", "2026-11-22"),
                     ("--job", JOB, "--from", "2026-11-22T05", "--to", "2026-11-22T04"),
                     ("--force",)):
            result = self.verify(*args)
            self.assertEqual(result.returncode, 1, f"{args}: {result.stdout}{result.stderr}")


if __name__ == "__main__":
    unittest.main()
