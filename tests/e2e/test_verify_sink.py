"""verify --sink: the remote copies of a sink job's done slots checked against what the
slots archived (every object, its size and checksum, _manifest.json, _SUCCESS), each
difference printed with job, slot, type and object (exit 2); --repair queues an upload
again from a whole local copy, a fetch from the vendor otherwise. check-config validates
each sink. The remote (rclone's local backend) is filled here by hand, as a landing
would leave it, so this tests the command alone."""

import hashlib
import json
import os
import shutil
import sqlite3
import unittest

from harness import E2ETestCase, hourly_job

JOB = "shop-hourly"
# A fake credential in the remote string: it must appear in no output.
SECRET = "s3cr3t-TOKEN-4711"


def md5_file(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


@unittest.skipUnless(shutil.which("rclone"), "rclone is not installed (apt-get install rclone)")
class VerifySinkTest(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.remote = os.path.join(self.base, "remote")

    def archive_then_add_sink(self, remote=None):
        """Archives the slots locally (no sink yet), lands them by hand, then gives the
        job the sink."""
        self.start(jobs=[hourly_job(backfill="5h")])
        self.slots = self.expected()
        self.assertGreaterEqual(len(self.slots), 3)
        self.assert_run_once()
        self.land_by_hand()
        remote = remote or f":local,description='{SECRET}':{self.remote}"
        with open(self.daemon.config, "a", encoding="utf-8") as f:
            f.write(f"sinks:\n  - {{name: lake, rclone_remote: {json.dumps(remote)}}}\n")
        self.daemon.edit_config(f"{{name: {JOB},", f"{{name: {JOB}, sink: lake,")

    def land_by_hand(self):
        """The archive copied to the remote with each manifest as Sink::land writes it
        (the checksum checked and each part's MD5)."""
        shutil.copytree(os.path.join(self.daemon.archive, JOB), os.path.join(self.remote, JOB))
        for folder, _, names in os.walk(self.remote):
            if "_manifest.json" not in names:
                continue
            path = os.path.join(folder, "_manifest.json")
            with open(path, encoding="utf-8") as f:
                manifest = json.load(f)
            manifest["remote_checksum"] = "md5"
            for entry in manifest["files"]:
                entry["remote_hash"] = md5_file(os.path.join(folder, entry["name"]))
            with open(path, "w", encoding="utf-8") as f:
                json.dump(manifest, f, indent=2)

    def remote_parts(self, slot):
        """(type, path) of every remote part of `slot`, sorted."""
        parts = []
        for data_type in sorted(self.truth(JOB, slot)):
            folder = os.path.join(self.remote, os.path.relpath(self.partition(JOB, data_type, slot),
                                                               self.daemon.archive))
            for name in sorted(os.listdir(folder)):
                if not name.startswith("_"):
                    parts.append((data_type, os.path.join(folder, name)))
        return parts

    def state_of(self, slot):
        with sqlite3.connect(os.path.join(self.run_dir, "state.db")) as db:
            return db.execute("SELECT state FROM slots WHERE job = ? AND slot = ?", (JOB, slot)).fetchone()[0]

    def verify(self, *args):
        result = self.daemon.cli("verify", "--sink", *args)
        self.assertNotIn(SECRET, result.stdout + result.stderr)
        return result

    def test_a_landed_remote_verifies_and_differences_are_named(self):
        self.archive_then_add_sink()
        result = self.verify()
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"verify --sink: {len(self.slots)} done slot(s)", result.stdout)
        self.assertIn("0 slot(s) differ on the remote", result.stdout)

        # A part deleted, another corrupted in place (same size: only the checksum can
        # tell), a stale object, a _SUCCESS gone.
        (gone_type, gone), (bad_type, bad) = self.remote_parts(self.slots[0])[0], self.remote_parts(self.slots[1])[0]
        os.remove(gone)
        with open(bad, "r+b") as f:
            byte = f.read(1)
            f.seek(0)
            f.write(bytes([byte[0] ^ 0xFF]))
        stale_folder = os.path.dirname(gone)
        with open(os.path.join(stale_folder, "old-answer.csv.gz"), "wb") as f:
            f.write(b"stale")
        os.remove(os.path.join(os.path.dirname(bad), "_SUCCESS"))

        result = self.verify("--job", JOB)
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        first, second = self.slots[0], self.slots[1]
        self.assertIn(f"{JOB} {first} sink lake: {gone_type}/{os.path.basename(gone)}: missing", result.stdout)
        self.assertIn(f"{JOB} {first} sink lake: {gone_type}/old-answer.csv.gz: not in the manifest", result.stdout)
        self.assertIn(f"{JOB} {second} sink lake: {bad_type}/{os.path.basename(bad)}: md5 differs", result.stdout)
        self.assertIn(f"{JOB} {second} sink lake: {bad_type}/_SUCCESS: no _SUCCESS", result.stdout)
        self.assertIn("2 slot(s) differ on the remote", result.stdout)
        # A range leaves the others out.
        result = self.verify("--from", self.slots[2], "--to", self.slots[2])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(self.state_of(first), "done")

        # --repair: the local copies are whole, so both go back to uploading.
        result = self.verify("--repair")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn(f"{JOB} {first} queued for upload from the local copy", result.stdout)
        self.assertIn(f"{JOB} {second} queued for upload from the local copy", result.stdout)
        self.assertEqual(self.state_of(first), "uploading")
        self.assertEqual(self.state_of(second), "uploading")
        self.assertEqual(self.state_of(self.slots[2]), "done")

    def test_repair_fetches_again_when_the_local_copy_is_gone(self):
        self.archive_then_add_sink()
        slot = self.slots[0]
        data_type, part = self.remote_parts(slot)[0]
        os.remove(part)
        local = self.partition(JOB, data_type, slot)
        os.remove(os.path.join(local, os.path.basename(part)))  # the local copy is not whole
        result = self.verify("--repair")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn(f"{JOB} {slot} queued", result.stdout)
        self.assertNotIn("queued for upload", result.stdout)
        self.assertEqual(self.state_of(slot), "pending")

    def test_an_unreachable_remote_is_an_error_naming_the_sink(self):
        self.archive_then_add_sink(remote=f":webdav,url='http://127.0.0.1:1',user='{SECRET}':")
        result = self.verify()
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("sink lake", result.stderr)
        self.assertIn("connection refused", result.stderr)

    def test_a_remote_path_that_does_not_exist_is_an_error_not_every_slot_missing(self):
        """A mistyped remote (or a bucket not created) lists as "not found", as an empty
        partition does: --repair must not queue every done slot again."""
        self.archive_then_add_sink(remote=f":local,description='{SECRET}':{self.remote}-typo")
        result = self.verify("--repair")
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("sink lake: the remote path does not exist", result.stderr)
        self.assertNotIn("queued", result.stdout)
        for slot in self.slots:
            self.assertEqual(self.state_of(slot), "done")

    def test_check_config_validates_each_sink(self):
        self.archive_then_add_sink()
        result = self.daemon.cli("check-config")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

        with open(self.daemon.config, "a", encoding="utf-8") as f:
            f.write(f"  - {{name: odd, rclone_remote: \":nosuchbackend,key='{SECRET}':x\"}}\n"
                    f"  - {{name: down, rclone_remote: \":webdav,url='http://127.0.0.1:1',user='{SECRET}':\"}}\n")
        result = self.daemon.cli("check-config")
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn('sink odd: rclone v', result.stderr)
        self.assertIn('has no backend "nosuchbackend"', result.stderr)
        self.assertIn("sink down: cannot list the remote", result.stderr)
        self.assertNotIn(SECRET, result.stdout + result.stderr)
        # Without secrets nothing is listed: the down remote passes, the odd one does not.
        result = self.daemon.cli("check-config", "--no-secrets")
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("sink odd", result.stderr)
        self.assertNotIn("sink down", result.stderr)


if __name__ == "__main__":
    unittest.main()
