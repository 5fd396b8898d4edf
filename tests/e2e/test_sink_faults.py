"""Sinks (issue 15) when things go wrong: a remote down for a while (slots wait in
`uploading`, downloads go on, they land once it is back), a remote refusing writes (a
clear error naming the slot and the sink, nothing done), objects damaged on the remote
(`verify --sink` finds them, `--repair` re-uploads from the local copy or re-fetches),
SIGKILLs while rclone uploads (no duplicates, the remote exact), and credentials of the
remote string that never show: not in the log, `status`, `gaps`, `check-config`,
`verify --sink`, /metrics, the manifests, nor in any rclone child's command line."""

import collections
import json
import os
import random
import re
import time
import unittest
import urllib.request

from harness import (MARKERS, SINK_NAME, ChildWatch, SinkTestCase, hourly_job, partition_rel, sink,
                     wait_for)

JOB = "shop-hourly"


def scrape(url):
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read().decode()


def sample(text, name, **labels):
    """The value of the metric `name` with (at least) `labels`, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, value = line.rsplit(" ", 1)
        if key.split("{")[0] != name:
            continue
        if all(f'{label}="{want}"' in key for label, want in labels.items()):
            return float(value)
    return None


class SinkFaultTest(SinkTestCase):
    def start_sink_daemon(self, remote, backfill="4h", keep_local="2d", scenario=None):
        job = hourly_job(sink=SINK_NAME, backfill=backfill)
        self.start(scenario, jobs=[job], sinks=[sink(remote, keep_local=keep_local)])
        return job, self.expected()

    def counts(self):
        return self.daemon.job_status(JOB)["counts"]

    def wait_uploading(self, count, timeout=60):
        def uploading():
            if not self.daemon.running():
                raise AssertionError(f"the daemon exited with {self.daemon.process.returncode}")
            counts = self.counts()
            return counts if counts.get("uploading", 0) == count else None
        try:
            return wait_for(uploading, timeout, f"{count} uploading slots", interval=0.25)
        except AssertionError as error:
            raise AssertionError(f"{error}{self.context()}") from None

    def wait_upload_failed(self, slots, timeout=60):
        def failed():
            named = {event["slot"] for event in self.daemon.events("upload_failed", job=JOB)}
            return named if named >= set(slots) else None
        try:
            wait_for(failed, timeout, f"upload_failed for every slot of {slots}", interval=0.25)
        except AssertionError as error:
            raise AssertionError(f"{error}{self.context()}") from None
        return self.daemon.events("upload_failed", job=JOB)

    def assert_uploading_gaps(self, slots):
        code, gaps = self.daemon.gaps()
        self.assertEqual(code, 2, gaps)
        listed = {gap["slot"]: gap for gap in gaps["gaps"]}
        for slot in slots:
            self.assertIn(slot, listed, gaps)
            self.assertEqual(listed[slot]["state"], "uploading", listed[slot])
            self.assertTrue(listed[slot].get("last_error"), f"gaps shows no upload error: {listed[slot]}")
        text = self.daemon.cli("gaps")
        for slot in slots:
            self.assertRegex(text.stdout, rf"{re.escape(slot)}.*uploading", text.stdout)
        return listed

    def test_a_remote_down_for_a_while_holds_uploads_not_downloads(self):
        remote = self.start_remote("webdav")
        remote.stop()  # down from the start
        job, slots = self.start_sink_daemon(remote, backfill="6h")
        metrics = self.enable_metrics()
        self.daemon.start()
        # Every slot is downloaded whole while the remote is down, and waits in `uploading`.
        self.wait_uploading(len(slots))
        self.assert_archived(JOB, slots)
        failed = self.wait_upload_failed(slots)
        for event in failed:
            self.assertEqual(event.get("sink"), SINK_NAME, event)
            self.assertTrue(event.get("reason"), event)
            self.assertTrue(event.get("retry_in"), event)
        self.assertEqual(self.daemon.events("slot_done"), [])
        self.assertEqual(self.counts().get("done", 0), 0)
        self.assert_uploading_gaps(slots)
        text = scrape(metrics)
        self.assertEqual(sample(text, "gio_sink_backlog_slots", sink=SINK_NAME), len(slots), text)
        self.assertGreater(sample(text, "gio_sink_backlog_bytes", sink=SINK_NAME) or 0, 0, text)
        self.assertIsNotNone(sample(text, "gio_sink_oldest_backlog_seconds", sink=SINK_NAME), text)
        self.assertGreater(sample(text, "gio_sink_uploads_total", sink=SINK_NAME, result="failed") or 0, 0, text)
        self.assertEqual(sample(text, "gio_exporter_slots", gio_job=JOB, state="uploading"), len(slots), text)

        # Back up: the waiting slots land on their next try (the back-off starts at 30 s).
        remote.start()
        self.wait_done(JOB, len(slots), timeout=120)
        self.assert_landed(remote, job, slots)
        text = scrape(metrics)
        self.assertEqual(sample(text, "gio_sink_backlog_slots", sink=SINK_NAME), 0, text)
        self.assertGreater(sample(text, "gio_sink_uploads_total", sink=SINK_NAME, result="landed") or 0, 0, text)
        self.assertGreater(sample(text, "gio_sink_uploaded_bytes_total", sink=SINK_NAME) or 0, 0, text)
        self.stop_daemon(within=10)
        self.assertEqual(self.daemon.gaps()[0], 0)
        # Each slot was downloaded once: waiting for the remote re-fetched nothing.
        downloads = self.server.stats()["downloads_completed"]
        self.assertEqual([path for path, n in downloads.items() if n > 1], [], downloads)

    def test_a_refusing_remote_names_the_slot_and_the_sink_and_marks_nothing_done(self):
        remote = self.start_remote("webdav", read_only=True, user="gio", password="refused-pass-not-real-3")
        job, slots = self.start_sink_daemon(remote)
        self.daemon.start()
        failed = self.wait_upload_failed(slots)
        self.wait_uploading(len(slots))
        self.assertEqual(self.daemon.events("slot_done"), [])
        self.assertEqual(self.counts().get("done", 0), 0, self.counts())
        self.assertEqual(remote.objects(), {}, "a read-only remote was written to")
        for event in failed:
            self.assertEqual(event.get("sink"), SINK_NAME, event)
            self.assertIn(event["slot"], slots, event)
            self.assertTrue(event.get("reason"), event)
        # The log line is a clear error naming the slot and the sink.
        lines = [line for line in self.daemon.log_text().splitlines() if "event=upload_failed" in line]
        for line in lines:
            self.assertIn(f"sink={SINK_NAME}", line)
            self.assertRegex(line, r"slot=\S+")
        self.assert_uploading_gaps(slots)
        self.stop_daemon(within=10)
        self.assert_no_secret(remote, self.daemon.log_text(), "the daemon's log")
        for command in (["status"], ["gaps"], ["gaps", "--json"], ["status", "--json"]):
            result = self.daemon.cli(*command)
            self.assert_no_secret(remote, result.stdout + result.stderr, " ".join(command))

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
        self.assertEqual(self.counts().get("done", 0), len(slots))
        downloads = dict(self.server.stats()["downloads_completed"])
        repair = self.daemon.cli("verify", "--sink", "--repair")
        self.assertEqual(repair.returncode, 2, repair.stdout + repair.stderr)
        counts = self.counts()
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
        # same names, which must replace the remote's objects (the truth is the last answer).
        job, slots = self.start_sink_daemon(remote, backfill="4h", keep_local="0s",
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
        # Larger parts, so that the kills fall inside transfers.
        job, slots = self.start_sink_daemon(remote, backfill="8h", scenario={"rows": 60000})
        partitions = self.remote_partitions(remote, job, slots)
        hit = 0
        for kill in range(6):
            self.daemon.start()
            watch = ChildWatch(self.daemon.process.pid)
            try:
                wait_for(lambda: self.rclone_running(watch) or self.counts().get("done", 0) == len(slots),
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

    def test_the_remote_s_credentials_never_show(self):
        remote = self.start_remote("webdav", user="gio", password="webdav-pass-not-real-4")
        job, slots = self.start_sink_daemon(remote)
        metrics = self.enable_metrics()
        self.daemon.start()
        watch = ChildWatch(self.daemon.process.pid)
        try:
            self.wait_done(JOB, len(slots), timeout=90)
            scraped = scrape(metrics)
        finally:
            children = watch.stop()
        self.stop_daemon(within=10)
        self.assert_landed(remote, job, slots)
        rclone_argvs = [argv for argv in children.values() if "rclone" in os.path.basename(argv[0])]
        self.assertTrue(rclone_argvs, f"no rclone child seen: {children}")
        for argv in rclone_argvs:
            self.assert_no_secret(remote, "\0".join(argv), f"an rclone child's command line {argv}")
            self.assertNotIn(remote.url, " ".join(argv), argv)
        self.assertTrue(any(arg.startswith("giosink:") for argv in rclone_argvs for arg in argv), rclone_argvs)

        self.assertIn(f'sink="{SINK_NAME}"', scraped)
        self.assert_no_secret(remote, scraped, "/metrics")
        self.assert_no_secret(remote, self.daemon.log_text(), "the daemon's log")
        for command in (["status"], ["status", "--json"], ["gaps"], ["gaps", "--json"], ["check-config"],
                        ["check-config", "--no-secrets"], ["verify", "--sink"]):
            result = self.daemon.cli(*command)
            self.assertIn(result.returncode, (0, 2), f"{command}: {result.stdout}{result.stderr}")
            self.assert_no_secret(remote, result.stdout + result.stderr, " ".join(command))
        for rel, path in remote.objects().items():
            if rel.endswith("_manifest.json"):
                with open(path, encoding="utf-8") as f:
                    self.assert_no_secret(remote, f.read(), f"the remote manifest {rel}")
        for folder, _, files in os.walk(self.daemon.archive):
            if "_manifest.json" in files:
                with open(os.path.join(folder, "_manifest.json"), encoding="utf-8") as f:
                    self.assert_no_secret(remote, f.read(), f"the local manifest in {folder}")
        # The state database keeps nothing of the remote string either.
        for name in os.listdir(self.run_dir):
            if name.startswith("state.db"):
                with open(os.path.join(self.run_dir, name), "rb") as f:
                    self.assert_no_secret(remote, f.read().decode("latin-1"), name)

    def test_check_config_probes_each_sink(self):
        remote = self.start_remote("webdav", user="gio", password="probe-pass-not-real-5")
        self.start_sink_daemon(remote)
        ok = self.daemon.cli("check-config")
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        remote.stop()
        down = self.daemon.cli("check-config", timeout=120)
        self.assertNotEqual(down.returncode, 0, down.stdout + down.stderr)
        self.assertIn(SINK_NAME, down.stdout + down.stderr)
        self.assert_no_secret(remote, down.stdout + down.stderr, "check-config")
        # --no-secrets does not list the remote: a down remote passes.
        offline = self.daemon.cli("check-config", "--no-secrets")
        self.assertEqual(offline.returncode, 0, offline.stdout + offline.stderr)
        # A remote string that does not parse fails even with --no-secrets, naming the sink.
        self.daemon.edit_config(json.dumps(remote.remote), json.dumps(":no-such-backend,x=1:lake"))
        bad = self.daemon.cli("check-config", "--no-secrets")
        self.assertNotEqual(bad.returncode, 0, bad.stdout + bad.stderr)
        self.assertIn(SINK_NAME, bad.stdout + bad.stderr)


if __name__ == "__main__":
    unittest.main()
