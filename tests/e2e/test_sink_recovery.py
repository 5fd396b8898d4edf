"""Sinks (issue 15) recovering the remote: objects damaged behind the daemon's back are
found by `verify --sink` (job, slot, type and object named) and `--repair` makes the
remote exact again, re-uploading from the local copy while it exists (nothing fetched
again) or re-fetching from the vendor (keep_local 0s; the re-fetched answer's other
bytes replace the remote's); and SIGKILLs while rclone uploads leave no duplicate and
no _SUCCESS on a partition that is not whole, and the remote exact in the end."""

import collections
import os
import random
import time
import unittest

from harness import MARKERS, ChildWatch, SinkTestCase, partition_rel, wait_for

JOB = "shop-hourly"


class SinkRecoveryTest(SinkTestCase):
    def damage(self, remote, job, slots):
        """Damages one object of three partitions: a part flipped (same size), a part one
        byte short, a _SUCCESS removed. Returns [(slot, data type, object)]."""
        first, last = slots[0], slots[-1]
        types = sorted(t for t, files in self.job_types(job, first).items() if files)
        damaged = []
        for slot, data_type, how in ((first, types[0], "flip"), (last, types[1], "truncate"),
                                     (last, types[2], "remove")):
            partition = partition_rel(JOB, data_type, slot)
            names = sorted(os.path.basename(rel) for rel in remote.objects()
                           if os.path.dirname(rel) == partition and os.path.basename(rel) not in MARKERS)
            name = "_SUCCESS" if how == "remove" else names[0]
            remote.corrupt(os.path.join(partition, name), how)
            damaged.append((slot, data_type, name))
        return damaged

    def assert_verify_sink_finds(self, damaged):
        result = self.daemon.cli("verify", "--sink")
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 2, output)
        for slot, data_type, name in damaged:
            lines = [line for line in output.splitlines() if name in line and data_type in line]
            self.assertTrue(any(slot in line and JOB in line for line in lines),
                            f"verify --sink does not name {JOB} {slot} {data_type} {name}:\n{output}")
        return output

    def test_objects_damaged_on_the_remote_are_found_and_re_uploaded(self):
        # sftp: rclone has MD5 there, so a same-size flip is seen too.
        remote = self.start_remote("sftp")
        job, slots = self.start_sink_daemon(remote, backfill="4h")
        self.assertGreaterEqual(len(slots), 2)
        self.daemon.start()
        self.wait_done(JOB, len(slots), timeout=90)
        self.stop_daemon(within=10)
        self.assert_landed(remote, job, slots)
        clean = self.daemon.cli("verify", "--sink")
        self.assertEqual(clean.returncode, 0, clean.stdout + clean.stderr)

        damaged = self.damage(remote, job, slots)
        self.assert_verify_sink_finds(damaged)
        # Only reading: the remote and the states are untouched by verify --sink.
        self.assertEqual(self.sink_counts().get("done", 0), len(slots))
        downloads = dict(self.server.stats()["downloads_completed"])
        repair = self.daemon.cli("verify", "--sink", "--repair")
        self.assertEqual(repair.returncode, 2, repair.stdout + repair.stderr)
        counts = self.sink_counts()
        self.assertEqual(counts.get("uploading", 0), len({slot for slot, _, _ in damaged}), counts)
        self.daemon.start()
        self.wait_done(JOB, len(slots), timeout=90)
        self.stop_daemon(within=10)
        self.assert_landed(remote, job, slots)
        again = self.daemon.cli("verify", "--sink")
        self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
        # Re-uploaded from the local copy: nothing was fetched again from the vendor.
        self.assertEqual(self.server.stats()["downloads_completed"], downloads)

    def test_damage_without_a_local_copy_is_re_fetched_within_retention(self):
        remote = self.start_remote("local")
        # Every FINISHED answer is a re-run export: the re-fetch gets other bytes under the
        # same names, which must replace the remote's objects (the truth is the last answer;
        # one answer per slot, so all types: per-type asks would each re-run the export).
        job, slots = self.start_sink_daemon(remote, backfill="4h", keep_local="0s", data_types="all",
                                            scenario={"slot_defaults": {"rerun_every": 1}})
        self.daemon.start()
        self.wait_done(JOB, len(slots), timeout=90)
        self.stop_daemon(within=10)
        self.assert_landed(remote, job, slots)
        damaged = self.damage(remote, job, slots)
        self.assert_verify_sink_finds(damaged)
        before = sum(self.server.stats()["downloads_completed"].values())
        answered = {slot: self.truth(JOB, slot) for slot in slots}
        repair = self.daemon.cli("verify", "--sink", "--repair")
        self.assertEqual(repair.returncode, 2, repair.stdout + repair.stderr)
        self.daemon.start()
        self.wait_done(JOB, len(slots), timeout=90)
        self.stop_daemon(within=10)
        self.assert_landed(remote, job, slots)
        self.assertGreater(sum(self.server.stats()["downloads_completed"].values()), before,
                           "the local copy was gone, yet nothing was fetched again")
        self.assertNotEqual({slot: self.truth(JOB, slot) for slot in slots}, answered,
                            "the re-fetch got the same answer: the test would not see stale objects")
        again = self.daemon.cli("verify", "--sink")
        self.assertEqual(again.returncode, 0, again.stdout + again.stderr)

    def test_sigkills_while_rclone_uploads_leave_an_exact_remote(self):
        rng = random.Random(15)
        remote = self.start_remote("webdav")
        # Larger parts (about 2 MiB, stored rows: quick to make), so that the kills fall
        # inside transfers.
        job, slots = self.start_sink_daemon(remote, backfill="5h",
                                            scenario={"rows": 60000, "slot_defaults": {"uniform_size": True}})
        partitions = self.remote_partitions(remote, job, slots)
        hit = 0
        for kill in range(6):
            self.daemon.start()
            watch = ChildWatch(self.daemon.process.pid)
            try:
                wait_for(lambda: self.rclone_running(watch) or self.sink_counts().get("done", 0) == len(slots),
                         60, "an rclone child", interval=0.01)
                time.sleep(rng.uniform(0, 0.3))  # the random moment of the kill is the point
                hit += self.rclone_running(watch)
            finally:
                watch.stop()
            self.daemon.kill()
            self.assert_remote_sound(remote, partitions, f"after kill {kill + 1}")
        self.assertGreater(hit, 0, "no kill fell while rclone ran")
        self.daemon.start()
        self.wait_done(JOB, len(slots), timeout=120)
        self.stop_daemon(within=10)
        self.assert_landed(remote, job, slots)
        done = collections.Counter(event["slot"] for event in self.daemon.events("slot_done", job=JOB))
        self.assertEqual({slot for slot, n in done.items() if n > 1}, set(), done)
        self.assertEqual(self.daemon.cli("verify", "--sink").returncode, 0)

    @staticmethod
    def rclone_running(watch):
        """Whether an rclone child of the watched daemon runs now."""
        return any("rclone" in os.path.basename(watch.seen.get(pid, [""])[0]) for pid in watch.descendants())


if __name__ == "__main__":
    unittest.main()
