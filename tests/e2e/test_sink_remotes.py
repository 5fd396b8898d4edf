"""Sinks (issue 15) against real remotes on loopback: rclone's local backend, `rclone
serve webdav`, `rclone serve sftp`, and an S3-compatible server (s3rver, from npm; skipped
when it is not installed) through rclone's s3 backend with parts above the upload cutoff
(multipart). Every slot lands byte for byte under the remote path with the archive's
layout, each partition with its _manifest.json (which checksum was checked, each part's
remote hash) and _SUCCESS; the slot is done only then, and `verify --sink` agrees.

The fixtures themselves are checked first (RemoteFixtureTest), without the daemon, so a
failure of the landing tests is the daemon's and not the harness's."""

import hashlib
import os
import time
import unittest

from harness import (FILE_TYPES, MARKERS, REMOTE_PREFIX, SINK_NAME, SinkTestCase, hourly_job, obscure, partition_rel,
                     sink, wait_for)

JOB = "shop-hourly"


class RemoteFixtureTest(SinkTestCase):
    """Each remote fixture serves, stores what rclone copies, lists hashes, and can be
    damaged, stopped and started again."""

    def check_fixture(self, kind, **options):
        remote = self.start_remote(kind, **options)
        source = os.path.join(self.aux_dir, "object.bin")
        with open(source, "wb") as f:
            f.write(os.urandom(70000))
        copied = remote.rclone("copyto", source, "{}/a/b/object.bin")
        self.assertEqual(copied.returncode, 0, copied.stderr)
        self.assertEqual(list(remote.objects()), ["a/b/object.bin"])
        with open(remote.objects()["a/b/object.bin"], "rb") as f, open(source, "rb") as g:
            self.assertEqual(f.read(), g.read())
        listed = remote.listing()
        self.assertEqual(listed["a/b/object.bin"]["size"], 70000)
        checksum = remote.checksum("a/b/object.bin")
        if checksum != "none":
            with open(source, "rb") as f:
                self.assertEqual(listed["a/b/object.bin"]["hashes"][checksum],
                                 hashlib.new(checksum, f.read()).hexdigest())
        remote.corrupt("a/b/object.bin", "truncate")
        self.assertEqual(remote.listing()["a/b/object.bin"]["size"], 69999)
        if remote.command() is not None:
            remote.stop()
            self.assertNotEqual(remote.rclone("lsjson", "{}", "--contimeout", "2s", "--retries", "1",
                                                             "--low-level-retries", "1").returncode, 0)
            remote.start()
        self.assertIn("a/b/object.bin", remote.listing())
        return remote, checksum

    def test_local(self):
        self.assertEqual(self.check_fixture("local")[1], "md5")

    def test_webdav(self):
        self.check_fixture("webdav")

    def test_webdav_read_only_refuses_writes(self):
        remote = self.start_remote("webdav", read_only=True)
        source = os.path.join(self.aux_dir, "object.bin")
        with open(source, "wb") as f:
            f.write(b"x" * 100)
        copied = remote.rclone("copyto", source, "{}/object.bin", "--retries", "1")
        self.assertNotEqual(copied.returncode, 0)
        self.assertEqual(remote.objects(), {})

    def test_webdav_with_a_password(self):
        remote, _ = self.check_fixture("webdav", user="gio", password="dav-pass-not-real-1")
        # rclone obscure draws a new IV each time: the remote carries one obscured form.
        self.assertIn(f"pass={remote.secrets[1]}:", remote.remote)
        self.assertNotIn("dav-pass-not-real-1", remote.remote)

    def test_sftp(self):
        self.check_fixture("sftp")

    def test_s3rver(self):
        remote, checksum = self.check_fixture("s3rver")
        self.assertEqual(checksum, "md5")


class LandingTests:
    """The same landing test for each remote (a mixin: KIND names the remote)."""

    KIND = None
    OPTIONS = {}
    # The types with files (empty partitions cost time, not coverage); the local remote
    # lands "all", so empty partitions are landed too.
    DATA_TYPES = FILE_TYPES

    def land(self, keep_local="2d", scenario=None, until=None, **job_options):
        """Serves the remote, runs the daemon until every slot is done (and `until()`, when
        given, is true), stops it: (remote, job, slots)."""
        remote = self.start_remote(self.KIND, **self.OPTIONS)
        job = hourly_job(sink=SINK_NAME, **{"backfill": "4h", "data_types": self.DATA_TYPES, **job_options})
        server, daemon = self.start(scenario, jobs=[job], sinks=[sink(remote, keep_local=keep_local)])
        slots = self.expected()
        self.assertGreaterEqual(len(slots), 1)
        self.leave_an_earlier_answer(remote, partition_rel(JOB, "visit", slots[0]))
        daemon.start()
        self.wait_done(JOB, len(slots), timeout=90)
        if until is not None:
            wait_for(until, 30, getattr(until, "__doc__", None) or "the daemon")
        self.stop_daemon(within=10)
        return remote, job, slots

    def leave_an_earlier_answer(self, remote, partition):
        """Objects of an earlier answer in a partition's remote folder (as a crash of an
        earlier landing, or another answer's parts, leave them): a part the manifest will
        not list and a _SUCCESS. Landing removes both (assert_landed sees every stray)."""
        stale = os.path.join(self.aux_dir, "stale.csv.gz")
        with open(stale, "wb") as f:
            f.write(b"an earlier answer's part")
        for name in ("visit_20200101000000_9.csv.gz", "_SUCCESS"):
            copied = remote.rclone("copyto", stale, "{}/" + f"{partition}/{name}")
            self.assertEqual(copied.returncode, 0, copied.stderr)

    def assert_slot_events(self, remote, job, slots):
        checksum = {slot: self.remote_checksum_of(remote, job, slot) for slot in slots}
        done = self.daemon.events("slot_done", job=JOB)
        self.assertEqual(sorted(event["slot"] for event in done), sorted(slots), done)
        for event in done:
            self.assertEqual(event.get("sink"), SINK_NAME, event)
            self.assertEqual(event.get("checksum"), checksum[event["slot"]], event)
        downloaded = self.daemon.events("slot_downloaded", job=JOB, sink=SINK_NAME)
        self.assertEqual(sorted(event["slot"] for event in downloaded), sorted(slots), downloaded)
        for event in downloaded:
            truth = self.job_types(job, event["slot"])
            self.assertEqual(int(event["files"]), sum(len(files) for files in truth.values()), event)
            self.assertEqual(int(event["bytes"]), sum(f["bytes"] for files in truth.values() for f in files), event)

    def remote_checksum_of(self, remote, job, slot):
        data_type = next(t for t, files in self.job_types(job, slot).items() if files)
        return self.remote_manifest(remote, partition_rel(JOB, data_type, slot))["remote_checksum"]

    def assert_verify_sink_clean(self):
        result = self.daemon.cli("verify", "--sink")
        self.assertEqual(result.returncode, 0, f"verify --sink: {result.stdout}{result.stderr}")
        return result

    def test_slots_land_byte_for_byte_and_verify(self):
        remote, job, slots = self.land()
        self.assert_landed(remote, job, slots)
        self.assert_slot_events(remote, job, slots)
        counts = self.daemon.job_status(JOB)["counts"]
        self.assertEqual(counts.get("done", 0), len(slots), counts)
        self.assertEqual(counts.get("uploading", 0), 0, counts)
        # keep_local 2d: the local archive is whole too, and both verifies agree.
        self.assert_local(job, slots)
        self.assert_verify_sink_clean()
        local = self.daemon.cli("verify")
        self.assertEqual(local.returncode, 0, local.stdout + local.stderr)
        # A second pass lands nothing again: the remote already holds every slot.
        self.daemon.start()
        time.sleep(2)
        self.stop_daemon(within=10)
        self.assertEqual(len(self.daemon.events("slot_done", job=JOB)), len(slots))
        self.assert_landed(remote, job, slots)


class LocalLandingTest(LandingTests, SinkTestCase):
    KIND = "local"
    DATA_TYPES = "all"

    def test_keep_local_0s_removes_the_local_copy_once_landed(self):
        def pruned():
            """the local partitions to go (keep_local 0s)"""
            slots = self.expected()
            return not [p for p in (self.partition(JOB, t, s) for s in slots for t in self.truth(JOB, s))
                        if os.path.isdir(p) and os.listdir(p)]
        remote, job, slots = self.land(keep_local="0s", until=pruned)
        self.assert_landed(remote, job, slots)
        pruned = self.daemon.events("local_pruned", job=JOB, sink=SINK_NAME)
        self.assertEqual(sorted({event["slot"] for event in pruned}), sorted(slots), pruned)
        # `verify` does not call a pruned partition of a sink job missing.
        local = self.daemon.cli("verify")
        self.assertEqual(local.returncode, 0, local.stdout + local.stderr)
        self.assert_verify_sink_clean()


class WebdavLandingTest(LandingTests, SinkTestCase):
    KIND = "webdav"

    def test_a_named_remote_of_an_rclone_config_file(self):
        # The user's own rclone.conf (rclone_config) names the remote; its password is
        # obscured there, as `rclone config` writes it.
        remote = self.start_remote("webdav", user="gio", password="conf-pass-not-real-2")
        conf = os.path.join(self.aux_dir, "rclone.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(f"[mydav]\ntype = webdav\nurl = {remote.url}\nuser = gio\n"
                    f"pass = {obscure('conf-pass-not-real-2')}\n")
        job = hourly_job(sink=SINK_NAME, backfill="4h", data_types=FILE_TYPES)
        server, daemon = self.start(jobs=[job], sinks=[sink(remote, rclone_remote=f"mydav:{REMOTE_PREFIX}",
                                                            rclone_config=conf)])
        slots = self.expected()
        checked = daemon.cli("check-config")
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        daemon.start()
        self.wait_done(JOB, len(slots), timeout=90)
        self.stop_daemon(within=10)
        self.assert_landed(remote, job, slots)
        self.assert_no_secret(remote, daemon.log_text(), "the daemon's log")


class SftpLandingTest(LandingTests, SinkTestCase):
    KIND = "sftp"


class S3rverLandingTest(LandingTests, SinkTestCase):
    KIND = "s3rver"

    def test_parts_above_the_upload_cutoff_go_multipart(self):
        # Stored (not deflated) fixed-width rows: 160000 rows are about 5.7 MiB a part,
        # above the remote string's upload_cutoff of 5 MiB.
        remote, job, slots = self.land(scenario={"rows": 160000, "slot_defaults": {"uniform_size": True}},
                                       backfill="3h", data_types=["visit"])
        truth = {slot: self.job_types(job, slot) for slot in slots}
        sizes = [f["bytes"] for types in truth.values() for files in types.values() for f in files]
        self.assertTrue(sizes and min(sizes) > 5 << 20, sizes)
        self.assert_landed(remote, job, slots, checksum="md5")
        parts = sorted(rel for rel in remote.objects() if os.path.basename(rel) not in MARKERS)
        self.assertEqual(len(parts), len(sizes))
        self.assertEqual([rel for rel in parts if not remote.went_multipart(rel)], [],
                         f"parts not uploaded in parts (multipart):\n{remote.log_tail(40)}")


if __name__ == "__main__":
    unittest.main()
