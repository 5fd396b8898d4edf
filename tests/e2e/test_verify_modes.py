"""Size verification and `verify` (issue 14, item 8): a size-verified job never archives
a body that came without Content-Length and was cut off or corrupted (the gzip check
decides then), and `verify` inflates gzip parts whatever the job's mode, says what it
checked, and finds a corrupt part of the right size."""

import hashlib
import json
import os
import unittest

from harness import E2ETestCase, hourly_job

JOB = "shop-hourly"
ONE_PART = {"visit": 1, "page": 0, "custom_event": 0, "action": 0}


class VerifyModesTest(E2ETestCase):
    def test_size_mode_without_content_length_rejects_cut_and_corrupt_bodies(self):
        # Each file: first cut half-way (the connection closes), then corrupted, then good;
        # none of them announces its length.
        server, daemon = self.start(
            {"parts": ONE_PART, "rows": 5000,
             "slot_defaults": {"no_content_length": True, "truncate_downloads": 1, "corrupt_downloads": 1}},
            jobs=[hourly_job(backfill="3h", verify="size")])
        slots = self.expected()
        self.assertGreaterEqual(len(slots), 1)
        self.assert_run_once()
        log = daemon.log_text()
        self.assertIn("ends early", log, self.context())
        self.assertIn("no Content-Length, so the gzip stream was checked", log)
        self.assertIn("not a valid gzip stream", log)
        # Only the good third download of each file was archived.
        self.assert_archived(JOB, slots)
        faults = server.stats()["download_faults"]
        self.assertTrue(faults)
        for path, dealt in faults.items():
            self.assertEqual(dealt, {"truncate": 1, "corrupt": 1}, path)

    def test_verify_inflates_parts_of_a_size_verified_job(self):
        # A size-verified job trusts Content-Length: a corrupt body of the right length is
        # archived, with its own sha256 in the manifest. Only inflating it shows the damage.
        server, daemon = self.start(
            {"parts": ONE_PART, "rows": 5000, "slot_defaults": {"corrupt_downloads": 1}},
            jobs=[hourly_job(backfill="3h", verify="size")])
        slots = self.expected()
        self.assert_run_once()
        self.assertEqual(daemon.job_status(JOB)["counts"].get("done", 0), len(slots))
        # A size-only job counts no rows, and its manifests and `status` say so.
        for slot in slots:
            with open(os.path.join(self.partition(JOB, "visit", slot), "_manifest.json"), encoding="utf-8") as f:
                manifest = json.load(f)
            self.assertEqual((manifest["rows"], manifest["rows_note"]), (None, "not counted: verify is size"))
            self.assertTrue(all("rows" not in entry and "columns" not in entry for entry in manifest["files"]))
        self.assertFalse(daemon.job_status(JOB)["rows_counted"])
        self.assertIn("rows: not counted (verify: size)", daemon.cli("status").stdout)

        result = daemon.cli("verify")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn(f"verify: {JOB}: {len(slots)} done slot(s), checked size, sha256 and the gzip stream to its end",
                      result.stdout)
        for slot in slots:
            self.assertIn(f"{JOB} {slot} damaged: visit/", result.stdout)
        self.assertIn("not a valid gzip stream", result.stdout)
        self.assertIn(f"{len(slots)} damaged slot(s)", result.stdout)

        # The cheap check, asked for, sees nothing wrong, and says what it did not read.
        result = daemon.cli("verify", "--mode", "size")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"verify: {JOB}: {len(slots)} done slot(s), checked size and sha256 (--mode size)",
                      result.stdout)
        self.assertIn("0 damaged slot(s)", result.stdout)

        # --repair fetches it again; the second download is good, and verify is clean.
        result = daemon.cli("verify", "--repair")
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assert_run_once()
        self.assert_archived(JOB, slots)
        result = daemon.cli("verify")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_verify_reports_a_part_corrupted_on_disk_with_a_matching_manifest(self):
        # Damage that keeps size and sha256 consistent (the manifest rewritten to match):
        # only the gzip check can see it.
        server, daemon = self.start({"parts": ONE_PART, "rows": 5000},
                                    jobs=[hourly_job(backfill="3h", verify="size")])
        slots = self.expected()
        self.assert_run_once()
        folder = self.partition(JOB, "visit", slots[0])
        name = next(n for n in sorted(os.listdir(folder)) if not n.startswith("_"))
        path = os.path.join(folder, name)
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 2)
            f.write(bytes(b ^ 0xA5 for b in f.read(16)))
        manifest_path = os.path.join(folder, "_manifest.json")
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        for entry in manifest["files"]:
            if entry["name"] == name:
                entry["sha256"] = digest
        with open(manifest_path, "w", encoding="utf-8") as f:
            json.dump(manifest, f)

        result = daemon.cli("verify", "--job", JOB)
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertIn(f"{JOB} {slots[0]} damaged: visit/{name}: not a valid gzip stream", result.stdout)
        self.assertIn("checked size, sha256 and the gzip stream to its end", result.stdout)


if __name__ == "__main__":
    unittest.main()
