"""The torture test's sink variant (issue 15), in a file of its own so that ctest runs it
beside the others: chaos on the download side, 20 SIGKILLs falling in downloads, uploads
and prunes, and a remote that must end up holding exactly what the fake server served.

GIO_TORTURE_SEED=N replays a run with another seed (the seed is printed)."""

import collections
import os
import random
import sys
import time
import unittest

from harness import SINK_NAME, SinkTestCase, hourly_job, sink, wait_for
import test_torture  # a module, not its classes: unittest would run those here too

SINK_KILLS = 20


class SinkTortureTest(SinkTestCase):
    """test_torture.py's chaos on a smaller backlog, each slot landed on a remote (`rclone serve
    webdav`, keep_local 0s: the local copy goes once landed), and 20 SIGKILLs that fall
    in downloads, uploads and prunes alike. At every kill a reader of the remote sees no
    _SUCCESS on a partition that is not whole, and nothing outside the partitions; in the
    end the remote holds exactly what the fake server served, each slot done once."""

    def test_chaos_and_sigkill_with_a_sink(self):
        seed = int(os.environ.get("GIO_TORTURE_SEED", "15"))
        print(f"\ntorture (sink): GIO_TORTURE_SEED={seed}", file=sys.stderr, flush=True)
        rng = random.Random(seed)
        chaos = {"seed": seed, "reset": 0.05, "stall": 0.02, "corrupt": 0.05, "truncate": 0.03,
                 "download_5xx": 0.05, "api_5xx": 0.05, "api_429": 0.03, "error": 0.05,
                 "expired_links": 0.05, "short_links": 0.05, "short_link_seconds": 2,
                 "stall_seconds": 2, "max_run": 2}
        remote = self.start_remote("webdav")
        job = hourly_job(backfill="12h", poll_every="1s", give_up_after="24h", sink=SINK_NAME)
        server, daemon = self.start({"rows": 300, "chaos": chaos}, jobs=[job], parallel_downloads=4,
                                    http_timeout="2s", api_requests_per_second=20,
                                    sinks=[sink(remote, keep_local="0s")])
        slots = self.expected()
        erroring = rng.choice(slots)
        server.scenario({"slots": {erroring: {"status": "ERROR"}}})
        servable = [s for s in slots if s != erroring]
        partitions = self.remote_partitions(remote, job, servable)
        good = {os.path.join(daemon.archive, rel): {(f["bytes"], f["sha256"]) for f in files}
                for rel, files in partitions.items()}

        for kill in range(SINK_KILLS):
            daemon.start()
            time.sleep(rng.uniform(0.2, 1.5))  # the random moment of the kill is the point
            self.assertTrue(daemon.running(), f"the daemon exited by itself before kill {kill + 1}"
                                              f"{self.context()}")
            daemon.kill()
            self.assert_remote_sound(remote, partitions, f"after kill {kill + 1}")
            test_torture.TortureTest.assert_sound_archive(self, good, f"after kill {kill + 1}")
        daemon.start()
        self.wait_done(test_torture.JOB, len(servable), timeout=90)
        # keep_local 0s: every landed partition's local copy goes.
        wait_for(lambda: not [path for path in good if os.path.exists(os.path.join(path, "_SUCCESS"))], 30,
                 "the local copies to be pruned (keep_local 0s)")
        self.stop_daemon(within=10)

        self.assert_landed(remote, job, servable)
        counts = daemon.job_status(test_torture.JOB)["counts"]
        self.assertEqual(counts.get("done", 0), len(servable), counts)
        self.assertEqual(counts.get("uploading", 0), 0, counts)
        done = collections.Counter(event["slot"] for event in daemon.events("slot_done", job=test_torture.JOB))
        self.assertEqual({slot for slot, n in done.items() if n > 1}, set(), done)
        self.assertLessEqual(set(done), set(servable), done)
        code, gaps = daemon.gaps()
        self.assertEqual({g["slot"] for g in gaps["gaps"]}, {erroring}, gaps)
        verified = daemon.cli("verify", "--sink")
        self.assertEqual(verified.returncode, 0, verified.stdout + verified.stderr)


if __name__ == "__main__":
    unittest.main()
