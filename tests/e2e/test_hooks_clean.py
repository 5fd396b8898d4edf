"""Hooks run clean (issue 14, item 5): a hook sees only its documented GIO_* variables and
PATH, HOME and LANG, inherits no descriptor of the daemon (every one the daemon opens is
close-on-exec), dies with the daemon's stop (its whole process group, children included,
so the metrics port is free for the next start), and its output reaches the log escaped
and bounded."""

import http.client
import json
import os
import signal
import socket
import sys
import time
import unittest
import urllib.error
import urllib.request

from harness import TOKEN, E2ETestCase, hourly_job, wait_for

# What a hook may see: the documented GIO_* variables (man 5 gio-exporter.yaml), PATH,
# HOME and LANG; PWD is the shell's own (/bin/sh sets it), not the daemon's.
HOOK_VARIABLES = {"GIO_EVENT", "GIO_JOB", "GIO_SLOT", "GIO_SLOT_START", "GIO_LOST_AT", "GIO_FILES",
                  "GIO_BYTES", "GIO_ARCHIVE_DIR", "GIO_REASON", "GIO_STATE", "GIO_SECONDS_LEFT"}
ALLOWED = HOOK_VARIABLES | {"PATH", "HOME", "LANG", "PWD"}
O_CLOEXEC = 0o2000000

# Writes what the hook process has: its environment and its open descriptors (with what
# each names), as JSON, to argv[1]/<slot>.json.
PROBE = r'''
import json, os, sys
fds = {}
listing = os.listdir("/proc/self/fd")
for fd in listing:
    try:
        fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        pass  # the descriptor of the listing itself, closed already
with open(os.path.join(sys.argv[1], os.environ.get("GIO_SLOT", "none") + ".json"), "w") as f:
    json.dump({"env": dict(os.environ), "fds": fds}, f)
'''

# Prints a forged log line between newlines, control and invalid bytes, then 1 MB.
NOISY = r'''
import os, sys
out = sys.stdout.buffer
out.write(b"hello from the hook\nts=2026-11-22T00:00:00Z level=error msg=forged event=forged_line\n")
out.write(b"\x1b[31mred\x1b[0m \xff\xfe bell\x07\r\n")
out.write(b"x" * (1 << 20))
out.flush()
sys.stderr.write("to stderr too\n")
sys.stderr.flush()
open(sys.argv[1] + "/" + os.environ["GIO_SLOT"], "w").close()
'''
NOISY_BYTES = 85 + 23 + (1 << 20) + 14  # every byte it writes
LOGGED_BYTES = 4096  # what reaches the log of them


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status
    except (urllib.error.URLError, OSError):
        return None


def alive(pid):
    """True while `pid` runs (a zombie waiting for its reaper counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def open_without_cloexec(pid):
    """{fd: target} of every descriptor above 2 of `pid` that is not close-on-exec."""
    leaks = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if int(fd) <= 2:
            continue
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="utf-8") as f:
                flags = int(next(line for line in f if line.startswith("flags:")).split()[1], 8)
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except (FileNotFoundError, StopIteration):
            continue  # closed while we looked
        if not flags & O_CLOEXEC:
            leaks[fd] = target
    return leaks


class HooksCleanTest(E2ETestCase):
    def script(self, name, text):
        path = os.path.join(self.base, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def enable_metrics(self):
        port = free_port()
        self.daemon.edit_config('metrics: {listen: ""}', f"metrics: {{listen: 127.0.0.1:{port}}}")
        return port

    def kill_later(self, pid_file):
        """Cleanup: the process groups of whatever pids `pid_file` lists are killed (a
        leak must not outlive the test, however it failed)."""
        def kill():
            if os.path.exists(pid_file):
                with open(pid_file, encoding="utf-8") as f:
                    for pid in f.read().split():
                        try:
                            group = os.getpgid(int(pid))
                            if group != os.getpgid(0):  # hooks have groups of their own
                                os.killpg(group, signal.SIGKILL)
                        except (ProcessLookupError, ValueError):
                            pass
        self.addCleanup(kill)

    def test_a_hook_sees_only_its_variables_and_no_descriptor_of_the_daemon(self):
        out = os.path.join(self.base, "probe")
        os.makedirs(out)
        probe = self.script("probe.py", PROBE)
        self.start(jobs=[hourly_job(on_slot_done=f"{sys.executable} {probe} {out}")])
        port = self.enable_metrics()
        credentials = os.path.join(self.base, "credentials")
        os.makedirs(credentials)
        secrets = {"GIO_SHOP_KEY": "private-key-secret-value", "CREDENTIALS_DIRECTORY": credentials,
                   "NOTIFY_SOCKET": os.path.join(self.base, "no-systemd-here"),
                   "GIO_REASON": "the daemon's own, not the slot's", "SOME_OTHER": "other",
                   "LANG": "C.UTF-8", "HOME": self.base}
        self.daemon.start(env=secrets)
        slots = self.expected()
        self.wait_done("shop-hourly", len(slots))
        wait_for(lambda: len(os.listdir(out)) >= len(slots), 30, "every slot's hook to report")

        for name in sorted(os.listdir(out)):
            with open(os.path.join(out, name), encoding="utf-8") as f:
                seen = json.load(f)
            env = seen["env"]
            self.assertLessEqual(set(env), ALLOWED, f"{name}: {sorted(set(env) - ALLOWED)}")
            self.assertEqual(env["GIO_EVENT"], "slot_done")
            self.assertEqual(env["GIO_JOB"], "shop-hourly")
            self.assertEqual(env["LANG"], "C.UTF-8")
            self.assertEqual(env["HOME"], self.base)
            self.assertEqual(env["PATH"], os.environ["PATH"])
            self.assertNotIn("GIO_REASON", env)  # slot_done has none; the daemon's is not passed
            for value in env.values():
                self.assertNotIn(TOKEN, value)
                self.assertNotIn("private-key-secret-value", value)
            # 0 from /dev/null, 1 and 2 the pipe the daemon reads; nothing else but the
            # listing's own descriptor (which readlink could not read any more).
            fds = seen["fds"]
            self.assertEqual(sorted(fds), ["0", "1", "2"], f"{name}: {fds}")
            self.assertEqual(fds["0"], "/dev/null")
            self.assertTrue(fds["1"].startswith("pipe:") and fds["1"] == fds["2"], fds)

        # The class: every descriptor the daemon holds is close-on-exec, a kept-alive
        # metrics connection and the HTTP client's pooled connections included.
        scraper = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        self.addCleanup(scraper.close)
        scraper.request("GET", "/metrics")
        self.assertEqual(scraper.getresponse().read()[:1], b"#")
        time.sleep(0.2)
        kinds = {os.readlink(f"/proc/{self.daemon.process.pid}/fd/{fd}").split(":")[0]
                 for fd in os.listdir(f"/proc/{self.daemon.process.pid}/fd")}
        self.assertIn("socket", kinds)
        self.assertEqual(open_without_cloexec(self.daemon.process.pid), {})
        self.stop_daemon()

    def test_stop_ends_every_hook_with_its_children_and_frees_the_port(self):
        pids = os.path.join(self.base, "pids")
        self.kill_later(pids)
        # A hook still running, with a child that ignores SIGTERM, and one whose shell has
        # ended but left a child behind: all of them end with the daemon.
        stubborn = f'(trap "" TERM; exec sleep 1000) & echo $! >> {pids}; sleep 1000'
        left = f"sleep 1000 >/dev/null 2>&1 & echo $! >> {pids}"
        self.start(jobs=[hourly_job(backfill="3h", on_slot_done=stubborn, hook_timeout="5m"),
                         hourly_job("blog-hourly", backfill="3h", on_slot_done=left,
                                    hook_timeout="5m")])
        port = self.enable_metrics()
        hooks = sum(len(self.expected(job)) for job in self.daemon.jobs)
        self.assertLessEqual(hooks, 4)  # all of them run at once
        self.daemon.start()
        wait_for(lambda: healthz(port) == 200, 10, "the first daemon's /healthz")

        def started():
            with open(pids, encoding="utf-8") as f:
                return len(f.read().split()) >= hooks or None
        wait_for(lambda: os.path.exists(pids) and started(), 30, "hooks to start their children")
        with open(pids, encoding="utf-8") as f:
            children = [int(pid) for pid in f.read().split()]
        self.assertTrue(all(alive(pid) for pid in children))

        took = self.stop_daemon(within=15)
        self.assertLess(took, 10)  # the SIGTERM grace, then SIGKILL
        wait_for(lambda: not any(alive(pid) for pid in children), 3,
                 "every hook's children to end with the daemon")
        events = self.daemon.events("hooks_ended")
        self.assertEqual(len(events), 1, self.context())

        # Nothing holds the metrics port: a new daemon on the same config starts.
        self.daemon.start()
        wait_for(lambda: healthz(port) == 200 or not self.daemon.running(), 10,
                 "the second daemon's /healthz")
        self.assertTrue(self.daemon.running(), self.context())
        self.assertNotIn("in use", self.daemon.log_tail())
        self.stop_daemon(within=15)

    def test_hook_output_is_logged_escaped_and_bounded(self):
        noisy = self.script("noisy.py", NOISY)
        ran = os.path.join(self.base, "ran")
        os.makedirs(ran)
        self.start(jobs=[hourly_job(backfill="3h", on_slot_done=f"{sys.executable} {noisy} {ran}")])
        port = self.enable_metrics()
        self.daemon.start()
        slots = self.expected()
        self.wait_done("shop-hourly", len(slots))
        wait_for(lambda: len(os.listdir(ran)) >= len(slots), 30, "every hook to run")
        # Their output is logged once each has ended (or, without the fix, already was).
        wait_for(lambda: len(self.daemon.events("hook_output")) >= len(slots)
                 or self.daemon.events("forged_line"), 30, "every hook's output in the log")
        self.assertEqual(healthz(port), 200)
        self.stop_daemon()

        text = self.daemon.log_text()
        # No line of the hook's reached the log as a line of its own.
        self.assertEqual(self.daemon.events("forged_line"), [])
        self.assertFalse(any(line.startswith(("ts=2026-11-22T00:00:00Z", "hello", "x" * 10,
                                              "to stderr"))
                             for line in text.splitlines()), text[-3000:])
        self.assertNotIn("\x1b", text)
        self.assertNotIn("\x07", text)
        self.assertLess(len(text), 200_000)  # the hooks printed 1 MB each
        outputs = self.daemon.events("hook_output")
        self.assertEqual(sorted(event["slot"] for event in outputs), sorted(slots))
        for event in outputs:
            self.assertEqual(event["hook"], "slot_done")
            output = event["output"]
            self.assertTrue(output.startswith("hello from the hook\nts=2026-11-22T00:00:00Z "
                                              "level=error msg=forged event=forged_line\n"),
                            output[:200])
            self.assertIn("\x1b[31mred", output)  # in the field, escaped in the line
            self.assertIn("\ufffd\ufffd bell\x07\r\n", output)  # invalid bytes replaced
            self.assertLessEqual(len(output.encode()), LOGGED_BYTES + 4)  # 2 bytes became 2 U+FFFD
            self.assertEqual(int(event["bytes"]), NOISY_BYTES)  # counted whole
            self.assertEqual(int(event["dropped"]), NOISY_BYTES - LOGGED_BYTES)
        self.assertEqual(self.daemon.events("hook_failed"), [])


if __name__ == "__main__":
    unittest.main()
