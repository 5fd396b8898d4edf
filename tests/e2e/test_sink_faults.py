"""Sinks (issue 15) when the remote goes wrong: down for a while (slots wait in
`uploading`, downloads go on, they land once it is back), refusing writes (a clear error
naming the slot and the sink, nothing done), and credentials of the remote string that
never show: not in the log, `status`, `gaps`, `check-config`, `verify --sink`, /metrics,
the manifests, nor in any rclone child's command line. check-config probes each sink.
Damaged objects and SIGKILLs during uploads: test_sink_recovery.py."""

import json
import os
import re
import unittest
import urllib.request

from harness import SINK_NAME, TOKEN, ChildWatch, SinkTestCase, wait_for

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
    def wait_uploading(self, count, timeout=60):
        def uploading():
            if not self.daemon.running():
                raise AssertionError(f"the daemon exited with {self.daemon.process.returncode}")
            counts = self.sink_counts()
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
        # The failure's event and its row in the database come a moment apart.
        def recorded():
            gaps = self.daemon.gaps()[1]["gaps"]
            return all(gap.get("last_error") for gap in gaps if gap["slot"] in slots)
        wait_for(recorded, 10, "the upload errors in gaps", interval=0.2)
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
        self.assert_local(job, slots)
        failed = self.wait_upload_failed(slots)
        for event in failed:
            self.assertEqual(event.get("sink"), SINK_NAME, event)
            self.assertTrue(event.get("reason"), event)
            self.assertTrue(event.get("retry_in"), event)
        self.assertEqual(self.daemon.events("slot_done"), [])
        self.assertEqual(self.sink_counts().get("done", 0), 0)
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
        self.assertEqual(self.sink_counts().get("done", 0), 0, self.sink_counts())
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
        # The remote reaches rclone through its environment, which holds nothing else of
        # the daemon's: not the API token, not the test's variables.
        rclone_pids = [pid for pid, argv in children.items()
                       if "rclone" in os.path.basename(argv[0]) and pid in watch.environments]
        self.assertTrue(rclone_pids, "no rclone child's environment read")
        for pid in rclone_pids:
            argv = children[pid]
            environment = watch.environments[pid]
            self.assertNotIn(TOKEN, "\0".join(environment.values()), argv)
            others = sorted(name for name in environment
                            if name not in ("PATH", "HOME", "LANG") and not name.startswith("RCLONE_"))
            self.assertEqual(others, [], f"the daemon's environment leaks into rclone's: {argv}")
            self.assertEqual(environment.get("RCLONE_CONFIG_GIOSINK_REMOTE"), remote.remote)

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

    def test_the_sftp_password_never_shows_on_the_error_paths(self):
        # A read-only sftp server: every landing fails, through rclone's sftp error texts.
        remote = self.start_remote("sftp", read_only=True)
        job, slots = self.start_sink_daemon(remote)
        self.daemon.start()
        watch = ChildWatch(self.daemon.process.pid)
        try:
            self.wait_upload_failed(slots)
        finally:
            children = watch.stop()
        self.stop_daemon(within=10)
        self.assertEqual(remote.objects(), {})
        for argv in children.values():
            self.assert_no_secret(remote, "\0".join(argv), f"a child's command line {argv}")
        self.assert_no_secret(remote, self.daemon.log_text(), "the daemon's log")
        for command in (["status", "--json"], ["gaps", "--json"], ["check-config"], ["verify", "--sink"]):
            result = self.daemon.cli(*command)
            self.assert_no_secret(remote, result.stdout + result.stderr, " ".join(command))

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
