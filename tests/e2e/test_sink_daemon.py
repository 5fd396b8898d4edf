"""Sinks in the daemon (issue 15): a job with a sink lands every slot on an rclone remote,
byte for byte under the archive's layout, and a slot is done only then; keep_local: 0s
removes the local copy once landed; a remote that cannot be reached leaves the slots
`uploading` (upload_failed events, gaps lists them) while downloads go on, and they land
once the remote works (here after a reload that points the sink at a working one).

Real rclone (Debian's), a `:local:` remote in the test's folder, and for the unreachable
remote a `:webdav,...:` one aimed at a closed loopback port."""

import collections
import json
import os
import shutil
import signal
import socket
import unittest

from harness import MARKERS, E2ETestCase, hourly_job, partition_rel, sha256_file, wait_for

SINK = "lake"


def closed_port():
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(shutil.which("rclone"), "rclone is not installed (apt-get install rclone)")
class SinkDaemonTest(E2ETestCase):
    def start_with_sink(self, remote, keep_local="2d", backfill="6h", scenario=None):
        server, daemon = self.start(scenario, jobs=[hourly_job(backfill=backfill, sink=SINK)])
        daemon.edit_config("jobs:\n", self.sinks_yaml(remote, keep_local) + "jobs:\n")
        return server, daemon

    @staticmethod
    def sinks_yaml(remote, keep_local):
        return f"sinks:\n  - {{name: {SINK}, rclone_remote: {json.dumps(remote)}, keep_local: {keep_local}}}\n"

    def remote_dir(self):
        path = os.path.join(self.base, "remote")
        os.makedirs(path, exist_ok=True)
        return path

    def assert_landed(self, remote, slots):
        """Every partition of every slot is on the remote as the server served it: the
        parts byte for byte, the manifest naming them with the checksum it checked, and
        _SUCCESS (empty); nothing else."""
        for slot in slots:
            for data_type, want in self.truth("shop-hourly", slot).items():
                path = os.path.join(remote, partition_rel("shop-hourly", data_type, slot))
                where = f"remote {slot} {data_type} ({path})"
                self.assertTrue(os.path.isdir(path), f"missing {where}{self.context()}")
                entries = set(os.listdir(path))
                self.assertTrue(set(MARKERS) <= entries, f"{where}: {sorted(entries)}")
                self.assertEqual(os.path.getsize(os.path.join(path, "_SUCCESS")), 0)
                parts = {name: (os.path.getsize(os.path.join(path, name)),
                                sha256_file(os.path.join(path, name)))
                         for name in entries - set(MARKERS)}
                self.assertEqual(collections.Counter(parts.values()),
                                 collections.Counter((f["bytes"], f["sha256"]) for f in want), where)
                with open(os.path.join(path, "_manifest.json"), encoding="utf-8") as f:
                    manifest = json.load(f)
                listed = {entry["name"]: (entry["bytes"], entry["sha256"]) for entry in manifest["files"]}
                self.assertEqual(listed, parts, where)
                self.assertIn(manifest.get("remote_checksum"), ("md5", "sha1", "none"), where)

    def test_lands_every_slot_and_only_then_it_is_done(self):
        remote = self.remote_dir()
        server, daemon = self.start_with_sink(":local:" + remote)
        slots = self.expected()
        self.assertGreater(len(slots), 2)  # more than one sink's worth of uploads at once
        self.assert_run_once()

        counts = daemon.job_status("shop-hourly")["counts"]
        self.assertEqual(counts["done"], len(slots), self.context())
        self.assertEqual(counts["uploading"], 0)
        self.assert_landed(remote, slots)
        # keep_local 2d: the local archive keeps its copy, whole.
        self.assert_archived("shop-hourly", slots)

        downloaded = {e["slot"] for e in daemon.events("slot_downloaded", sink=SINK)}
        done = daemon.events("slot_done", sink=SINK)
        self.assertEqual(downloaded, set(slots))
        self.assertEqual({e["slot"] for e in done}, set(slots))
        for event in done:
            self.assertIn(event["checksum"], ("md5", "sha1", "none"), event)
        # The remote string is the sink's secret: only its name reaches the log.
        self.assertNotIn(remote, daemon.log_text())
        self.assertEqual(daemon.gaps()[0], 0)

        # A second pass finds nothing to do: no upload, no download.
        before = server.stats()["downloads_started"]
        self.assert_run_once()
        self.assertEqual(server.stats()["downloads_started"], before)
        self.assertEqual(len(daemon.events("slot_done", sink=SINK)), len(slots))

    def remote_and_local(self, remote, slot, data_type="visit"):
        """(remote part names -> sha256, local part names -> sha256) of one partition."""
        def parts(path):
            names = set(os.listdir(path)) if os.path.isdir(path) else set()
            return {name: sha256_file(os.path.join(path, name)) for name in names - set(MARKERS)}, names
        there, remote_names = parts(os.path.join(remote, partition_rel("shop-hourly", data_type, slot)))
        here, _ = parts(self.partition("shop-hourly", data_type, slot))
        return there, remote_names, here

    def test_parts_reach_the_remote_while_their_slot_downloads(self):
        # Overlap: each part is copied to the remote once it is archived, not once the
        # whole slot is; a later part that cannot be fetched holds the slot back, and the
        # parts before it are already on the remote, with no _SUCCESS or manifest.
        remote = self.remote_dir()
        server, daemon = self.start_with_sink(":local:" + remote, backfill="3h",
                                              scenario={"parts": {"visit": 3}})
        slots = self.expected()
        slot = slots[0]
        broken = {"slots": {slot: {"broken_parts": {"visit": [2]}, "broken_answers": 1000}}}
        server.scenario(broken)
        daemon.run_once()
        self.assertNotIn(slot, {e["slot"] for e in daemon.events("slot_downloaded", sink=SINK)},
                         self.context())
        there, names, here = self.remote_and_local(remote, slot)
        self.assertEqual(len(here), 2, self.context())
        self.assertEqual(there, here, self.context())
        self.assertFalse(set(MARKERS) & names, names)

        # Once the part can be fetched, the slot lands whole (the landing copies only
        # what the pre-uploads did not).
        server.scenario({"slots": {slot: {"broken_answers": 0}}})
        self.assert_run_once()
        self.assertEqual(daemon.job_status("shop-hourly")["counts"]["done"], len(slots), self.context())
        self.assert_landed(remote, slots)

        # A re-fetch (verify --sink --repair with the local copy not whole) rewrites parts:
        # the remote's _SUCCESS of that partition goes before the first part is copied
        # again, and stays away while the slot cannot be fetched whole.
        path = os.path.join(remote, partition_rel("shop-hourly", "visit", slot))
        local = self.partition("shop-hourly", "visit", slot)
        first, _, last = sorted(self.remote_and_local(remote, slot)[2])
        os.remove(os.path.join(path, first))
        os.remove(os.path.join(local, first))
        os.remove(os.path.join(local, last))
        answers = server.stats()["api_calls"][f"hour/{slot}"]
        server.scenario({"slots": {slot: {"broken_parts": {"visit": [2]}, "broken_answers": answers + 1000}}})
        repair = daemon.cli("verify", "--sink", "--repair")
        self.assertEqual(repair.returncode, 2, repair.stdout + repair.stderr)
        self.assertIn("_SUCCESS", os.listdir(path))
        daemon.run_once()
        there, names, here = self.remote_and_local(remote, slot)
        self.assertNotIn("_SUCCESS", names, self.context())
        self.assertIn(first, there, self.context())
        self.assertEqual(there[first], here[first])
        self.assertNotIn(last, here)

    def test_keep_local_zero_removes_the_local_copy_once_landed(self):
        remote = self.remote_dir()
        server, daemon = self.start_with_sink(":local:" + remote, keep_local="0s")
        slots = self.expected()
        self.assert_run_once()
        self.assertEqual(daemon.job_status("shop-hourly")["counts"]["done"], len(slots), self.context())
        self.assert_landed(remote, slots)
        for slot in slots:
            for data_type in self.truth("shop-hourly", slot):
                self.assertFalse(os.path.exists(self.partition("shop-hourly", data_type, slot)),
                                 f"local copy of {slot} {data_type} still there{self.context()}")
        pruned = daemon.events("local_pruned", sink=SINK)
        self.assertEqual({e["slot"] for e in pruned}, set(slots))
        self.assertTrue(all(int(e["bytes"]) > 0 for e in pruned), pruned)
        # Local verify does not count the pruned partitions as missing.
        verify = daemon.cli("verify")
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)
        self.assertIn("keep_local", verify.stdout)
        # Nor does the next pass fetch them again.
        before = server.stats()["downloads_started"]
        self.assert_run_once()
        self.assertEqual(server.stats()["downloads_started"], before)

    def test_unreachable_remote_waits_then_lands_after_a_reload(self):
        remote = self.remote_dir()
        down = f":webdav,url='http://127.0.0.1:{closed_port()}':"
        server, daemon = self.start_with_sink(down)
        slots = self.expected()
        daemon.start()

        # Downloads go on: every slot is archived locally and waits as uploading.
        def all_uploading():
            counts = daemon.job_status("shop-hourly")["counts"]
            return counts["uploading"] == len(slots) and counts
        wait_for(all_uploading, 60, "every slot uploading")
        # Each slot's first landing fails (the last slot downloaded is tried last: its
        # error is only there once it has been).
        wait_for(lambda: {e["slot"] for e in daemon.events("upload_failed", sink=SINK)} == set(slots),
                 60, "event=upload_failed for every slot")
        self.assert_archived("shop-hourly", slots)
        failed = daemon.events("upload_failed", sink=SINK)
        self.assertTrue(all(e["retry_in"].endswith("s") and e["reason"] for e in failed), failed)
        self.assertNotIn(down, daemon.log_text(), "the remote string reached the log")
        self.assertNotIn("url='", daemon.log_text())
        self.assertEqual(daemon.events("slot_done"), [])

        # An uploading slot is a gap, with the upload's error; never at risk or lost.
        def failed_uploads():  # the error is recorded a moment after its event line
            code, gaps = daemon.gaps()
            uploading = [g for g in gaps["gaps"] if g["state"] == "uploading"]
            return (code, uploading) if all(g["last_error"] for g in uploading) else None
        code, uploading = wait_for(failed_uploads, 30, "every uploading gap with its error")
        self.assertEqual(code, 2)
        self.assertEqual({g["slot"] for g in uploading}, set(slots))
        self.assertTrue(all(g["last_error"] for g in uploading), uploading)
        self.assertEqual(daemon.job_status("shop-hourly")["at_risk"], 0)

        # The sink pointed at a working remote: a reload lands the backlog at once.
        daemon.edit_config(json.dumps(down), json.dumps(":local:" + remote))
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.events("reloaded"), 20, "event=reloaded")
        self.assertIn("shop-hourly.sink", daemon.events("reloaded")[-1]["changed"])
        self.wait_done("shop-hourly", len(slots), timeout=60)
        self.stop_daemon()
        self.assert_landed(remote, slots)
        self.assertEqual(daemon.gaps()[0], 0)


if __name__ == "__main__":
    unittest.main()
