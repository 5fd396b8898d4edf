"""The daemon as a service: systemd's notification protocol (a NOTIFY_SOCKET this test
binds plays systemd), /metrics agreeing with `status --json` and passing promtool,
/healthz, journald-style and JSON log lines, per-job hooks, and a token read from a
systemd credential."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from harness import E2ETestCase, flow, hourly_job, wait_for


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples_of(text):
    """{'name{labels}': value} for every sample line of a /metrics answer."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            samples[name_labels] = float(value)
    return samples


JOB_COUNTERS = ("gio_exporter_slot_failures_total", "gio_exporter_slots_lost_total",
                "gio_exporter_retries_total", "gio_exporter_archived_files_total",
                "gio_exporter_archived_bytes_total")
RELOAD_OK = "gio_exporter_config_last_reload_successful"
RELOAD_AT = "gio_exporter_config_last_reload_success_timestamp_seconds"


class ServiceTest(E2ETestCase):
    def enable_metrics(self):
        port = free_port()
        self.daemon.edit_config('metrics: {listen: ""}', f"metrics: {{listen: 127.0.0.1:{port}}}")
        return f"http://127.0.0.1:{port}"

    def test_notify_protocol_ready_after_health_then_watchdog_reload_stop(self):
        self.start()
        base = self.enable_metrics()
        folder = tempfile.mkdtemp(prefix="gio-notify-")
        self.addCleanup(shutil.rmtree, folder, True)
        path = os.path.join(folder, "notify")
        systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(systemd.close)
        systemd.bind(path)
        systemd.settimeout(20)
        self.daemon.start(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "500000"})

        messages = []

        def receive_until(needle):
            while True:
                text = systemd.recv(4096).decode()
                messages.append(text)
                if needle in text.split("\n"):
                    return text

        ready = receive_until("READY=1")
        # The listener was up before READY=1: asked right away, it answers healthy.
        status, body = get(base + "/healthz")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["status"], "ok")
        self.assertTrue(any(m.startswith("STATUS=") and "slots waiting" in m for m in messages),
                        messages)
        self.assertNotIn("WATCHDOG=1", "\n".join(messages[:-1] + [ready]))
        receive_until("WATCHDOG=1")
        receive_until("WATCHDOG=1")

        self.daemon.signal(signal.SIGHUP)
        reloading = receive_until("RELOADING=1")
        self.assertRegex(reloading, r"MONOTONIC_USEC=\d+")
        receive_until("READY=1")

        self.daemon.signal(signal.SIGTERM)
        receive_until("STOPPING=1")
        self.assertEqual(self.daemon.process.wait(10), 0)

    def test_metrics_agree_with_status_and_pass_promtool(self):
        server, daemon = self.start(jobs=[hourly_job(), hourly_job("blog-hourly", backfill="3h")])
        base = self.enable_metrics()
        slots = self.expected()
        daemon.start()
        self.wait_done("shop-hourly", len(slots))
        self.wait_done("blog-hourly", len(self.expected(hourly_job("blog-hourly", backfill="3h"))))

        status, text = get(base + "/metrics")
        self.assertEqual(status, 200)
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name_labels, value = line.rsplit(" ", 1)
                samples[name_labels] = float(value)
        for job in daemon.status()["jobs"]:
            for state, count in job["counts"].items():
                key = f'gio_exporter_slots{{gio_job="{job["job"]}",state="{state}"}}'
                self.assertEqual(samples.get(key), count, f"{key}\n{text}")
            self.assertEqual(samples.get(f'gio_exporter_slots_at_risk{{gio_job="{job["job"]}"}}'),
                             job["at_risk"])
        archived = sum(1 for _, _, files in os.walk(daemon.archive)
                       for name in files if name.endswith(".gz"))
        counted = sum(v for k, v in samples.items() if k.startswith("gio_exporter_archived_files_total"))
        self.assertEqual(counted, archived)
        asked = sum(v for k, v in samples.items()
                    if k.startswith("gio_exporter_api_requests_total") and 'code="200"' in k)
        self.assertGreaterEqual(asked, len(slots))
        self.assertIn('gio_exporter_build_info{version="', text)
        self.assertNotIn("test-token", text)

        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                               text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        status, body = get(base + "/healthz")
        self.assertEqual((status, json.loads(body)["database"]), (200, "writable"))
        self.assertEqual(get(base + "/nope")[0], 404)
        self.stop_daemon()

    def test_every_counter_is_there_at_zero_from_the_start_and_after_a_reload(self):
        # Every slot answers NOT_EXISTS: the daemon asks and waits, and nothing that a
        # counter counts (a failure, a lost slot, a retry, a file) happens.
        server, daemon = self.start({"slot_defaults": {"status": "NOT_EXISTS"}},
                                    jobs=[hourly_job(), hourly_job("blog-hourly", backfill="3h")])
        base = self.enable_metrics()
        daemon.start()
        def answering():
            try:
                return get(base + "/metrics")[0] == 200
            except urllib.error.URLError:
                return False  # not bound yet
        wait_for(answering, 20, "/metrics")
        status, text = get(base + "/metrics")
        samples = samples_of(text)
        for job in ("shop-hourly", "blog-hourly"):
            for counter in JOB_COUNTERS:
                self.assertEqual(samples.get(f'{counter}{{gio_job="{job}"}}'), 0, f"{counter} {job}\n{text}")
        self.assertEqual(samples.get("gio_exporter_download_bytes_total"), 0, text)
        self.assertEqual(samples.get("gio_exporter_download_seconds_total"), 0, text)
        # Token auth: no signed codes, so no series that could never move.
        self.assertNotIn("gio_exporter_auth_refreshes_total{", text)

        # The start counts as the first successful load (the daemon's clock starts at
        # the server's now).
        self.assertEqual(samples.get(RELOAD_OK), 1, text)
        started_at = samples.get(RELOAD_AT)
        self.assertIsNotNone(started_at, text)
        self.assertLess(abs(started_at - server.now().timestamp()), 60, text)

        # process_*: the client libraries' names, read from /proc at each scrape.
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                     "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                     "process_start_time_seconds"):
            self.assertIn(name, samples, text)
        self.assertIn("# TYPE process_cpu_seconds_total counter", text)
        self.assertGreaterEqual(samples["process_cpu_seconds_total"], 0)
        self.assertGreater(samples["process_resident_memory_bytes"], 1 << 20)
        self.assertGreaterEqual(samples["process_virtual_memory_bytes"],
                                samples["process_resident_memory_bytes"])
        self.assertGreater(samples["process_open_fds"], 3)
        self.assertLessEqual(samples["process_open_fds"], samples["process_max_fds"])
        # Real time, not the daemon's clock: the process started a moment ago.
        self.assertLess(abs(samples["process_start_time_seconds"] - time.time()), 30, text)
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                               text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

        # A job added by a reload has its counters at once.
        with open(daemon.config, "a", encoding="utf-8") as f:
            f.write(f"  - {flow(hourly_job('web-hourly', backfill='2h'))}\n")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.events("reloaded"), 20, "event=reloaded")
        samples = samples_of(get(base + "/metrics")[1])
        for counter in JOB_COUNTERS:
            self.assertEqual(samples.get(f'{counter}{{gio_job="web-hourly"}}'), 0, counter)
        self.assertEqual(samples.get(RELOAD_OK), 1)
        reloaded_at = samples.get(RELOAD_AT)
        self.assertGreaterEqual(reloaded_at, started_at)

        # A refused reload: 0, and the last success's time stays.
        daemon.edit_config("jobs:", "jobs:\n  - {name: broken}")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.events("reload_failed"), 20, "event=reload_failed")
        samples = samples_of(get(base + "/metrics")[1])
        self.assertEqual((samples.get(RELOAD_OK), samples.get(RELOAD_AT)), (0, reloaded_at))

        # Fixed: 1 again.
        daemon.edit_config("jobs:\n  - {name: broken}", "jobs:")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: len(daemon.events("reloaded")) >= 2, 20, "a second event=reloaded")
        samples = samples_of(get(base + "/metrics")[1])
        self.assertEqual(samples.get(RELOAD_OK), 1)
        self.assertGreaterEqual(samples.get(RELOAD_AT), reloaded_at)
        # Still nothing counted: nothing failed, nothing was lost.
        for job in ("shop-hourly", "blog-hourly", "web-hourly"):
            self.assertEqual(samples.get(f'gio_exporter_slot_failures_total{{gio_job="{job}"}}'), 0)
            self.assertEqual(samples.get(f'gio_exporter_slots_lost_total{{gio_job="{job}"}}'), 0)
        self.stop_daemon()

    def test_journal_priorities_and_json_lines(self):
        server, daemon = self.start()
        out_path = os.path.join(daemon.aux_dir, "journal.log")
        with open(out_path, "wb") as out:
            st = os.fstat(out.fileno())
            env = {**daemon.env(), "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
            subprocess.run([daemon.binary, "-c", daemon.config, "run", "--once"], cwd=daemon.aux_dir,
                           env=env, stdout=out, stderr=out, timeout=60, check=True)
        with open(out_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^<[2-7]>\S", line)  # a priority, and no timestamp
        # Still logfmt after the priority: level and msg, then the event's fields.
        self.assertTrue(any(re.match(r"^<6>level=info msg=.* event=slot_done ", line) for line in lines), lines)
        self.assertTrue(any(line.startswith("<7>") for line in lines), "debug lines are <7>")

        # JSON: one object per line; event fields become keys.
        self.daemon.edit_config("log: {level: debug}", "log: {level: info, format: json}")
        later = server.now()
        result = daemon.cli("run", "--once", now=later)
        self.assertEqual(result.returncode, 0, result.stderr)
        records = [json.loads(line) for line in result.stderr.splitlines()]
        self.assertTrue(records)
        self.assertTrue(all(r["ts"].endswith("Z") and r["level"] and r["msg"] for r in records))
        self.assertFalse(any(r["level"] == "debug" for r in records))

    def test_hooks_run_with_the_slot_in_their_environment_and_never_block(self):
        out = os.path.join(self.base, "hooks.txt")
        done = f'echo "$GIO_EVENT $GIO_JOB $GIO_SLOT $GIO_FILES $GIO_LOST_AT" >> {out}'
        slow = "sleep 30"
        server, daemon = self.start(
            {"slots": {"2026-11-22T14": {"status": "ERROR", "error_polls": 100}}},
            jobs=[hourly_job(on_slot_done=done, give_up_after="1s",
                             on_slot_failed="echo failing; exit 3"),
                  hourly_job("blog-hourly", backfill="3h", on_slot_done=slow, hook_timeout="1s")])
        slots = self.expected()
        started = time.monotonic()
        daemon.start()
        self.wait_done("shop-hourly", len(slots) - 1)
        wait_for(lambda: len(daemon.events("hook_failed")) >= 2, 30, "two failed hooks")
        self.stop_daemon()

        with open(out, encoding="utf-8") as f:
            lines = sorted(f.read().splitlines())
        self.assertEqual([line.split()[:3] for line in lines],
                         [["slot_done", "shop-hourly", s] for s in slots if s != "2026-11-22T14"])
        self.assertTrue(all(int(line.split()[3]) > 0 for line in lines), lines)
        failed = daemon.events("hook_failed")
        reasons = {(f["hook"], f["job"]): f["reason"] for f in failed}
        self.assertEqual(reasons[("slot_failed", "shop-hourly")], "exit status 3")
        self.assertIn("killed after 1s", reasons[("slot_done", "blog-hourly")])
        # The 30 s sleeper held nothing up: everything finished long before it would have.
        self.assertLess(time.monotonic() - started, 25)

    def test_token_from_a_systemd_credential(self):
        server, daemon = self.start()
        self.daemon.edit_config("auth: {token_env: GIO_TEST_TOKEN}", "auth: {token_credential: gio-token}")
        credentials = os.path.join(self.base, "credentials")
        os.makedirs(credentials)
        with open(os.path.join(credentials, "gio-token"), "w", encoding="utf-8") as f:
            f.write("test-token\n")
        env = {**daemon.env(), "CREDENTIALS_DIRECTORY": credentials}
        env.pop("GIO_TEST_TOKEN")
        result = subprocess.run([daemon.binary, "-c", daemon.config, "run", "--once"],
                                cwd=daemon.aux_dir, env=env, capture_output=True, text=True,
                                timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assert_archived("shop-hourly", self.expected())
        self.assertNotIn("test-token", result.stdout + result.stderr)


if __name__ == "__main__":
    unittest.main()
