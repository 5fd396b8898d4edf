"""End-to-end harness: the real gio-exporter binary against scripts/fake-growingio.

Every test gets its own temp folder with two halves:
  run/  what the daemon owns: config.yaml, the state database, archive/
  aux/  what the harness owns: the server's data and port file, scenario, logs
so "nothing outside the archive" can be checked on run/ alone.

Environment: GIO_EXPORTER_BIN (the binary), GIO_SOURCE_DIR (the repo root);
GIO_E2E_KEEP=1 keeps the temp folders and prints where they are.
"""

import collections
import csv
import datetime as dt
import glob
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

SOURCE_DIR = os.environ.get("GIO_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
FAKE_SERVER = os.path.join(SOURCE_DIR, "scripts", "fake-growingio")

# Ten minutes past the hour, so the backfill window's edge (now - backfill) and the
# next slot's readiness (xx:40) stay far away while a test runs in real time.
NOW = "2026-11-22T10:10:00Z"
TOKEN = "test-token"
AI = "2a1b4018cd954ec2bcc69da5138bdb96"
BEIJING = dt.timezone(dt.timedelta(hours=8))
UTC = dt.timezone.utc
MARKERS = ("_SUCCESS", "_manifest.json")
# The archive's identity file, at its root (the state database records its id).
ARCHIVE_IDENTITY = ".gio-exporter-archive"
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY")
SLOT_STATES = ("pending", "waiting", "downloading", "uploading", "done", "failed", "lost")


def binary():
    path = os.environ.get("GIO_EXPORTER_BIN") or os.path.join(SOURCE_DIR, "build", "gio-exporter")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest(f"no gio-exporter binary at {path} (set GIO_EXPORTER_BIN)")
    return path


def parse_utc(text):
    return dt.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


def parse_duration(text):
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return dt.timedelta(seconds=sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", text)))


# --- slots -------------------------------------------------------------------


def slot_name(start_utc, kind):
    return start_utc.astimezone(BEIJING).strftime("%Y-%m-%dT%H" if kind == "hour" else "%Y-%m-%d")


def slot_start(name):
    fmt = "%Y-%m-%dT%H" if "T" in name else "%Y-%m-%d"
    return dt.datetime.strptime(name, fmt).replace(tzinfo=BEIJING).astimezone(UTC)


def expected_slots(now, backfill, ready_after, kind="hour"):
    """Slots with start >= now - backfill whose readiness has passed, oldest first.
    Hours 23-01 (Beijing) get the vendor's extra 20 minutes, as the daemon does."""
    step = dt.timedelta(hours=1) if kind == "hour" else dt.timedelta(days=1)
    window = now - parse_duration(backfill)
    bj = window.astimezone(BEIJING)
    if kind == "hour":
        start = bj.replace(minute=0, second=0, microsecond=0)
    else:
        start = bj.replace(hour=0, minute=0, second=0, microsecond=0)
    start = start.astimezone(UTC)
    if start < window:
        start += step
    slots = []
    while True:
        ready = start + step + parse_duration(ready_after)
        if kind == "hour" and start.astimezone(BEIJING).hour in (23, 0, 1):
            ready += dt.timedelta(minutes=20)
        if ready > now:
            return slots
        slots.append(slot_name(start, kind))
        start += step


def partition_rel(job, data_type, slot):
    start = slot_start(slot).astimezone(BEIJING)
    rel = os.path.join(job, data_type, "dt=" + start.strftime("%Y-%m-%d"))
    if "T" in slot:
        rel = os.path.join(rel, "hour=" + start.strftime("%H"))
    return rel


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wait_for(predicate, timeout, what, interval=0.1, error=AssertionError):
    """Polls predicate() until it returns a truthy value; fails with `what` and the
    last value seen after timeout seconds, raising `error` (cdp.py raises its own)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


# --- the fake server -----------------------------------------------------------


class FakeServer:
    def __init__(self, aux_dir, scenario=None, now=NOW):
        self.aux_dir = aux_dir
        self.port_file = os.path.join(aux_dir, "fake.port")
        scenario_file = os.path.join(aux_dir, "scenario.json")
        with open(scenario_file, "w", encoding="utf-8") as f:
            json.dump(scenario or {}, f, ensure_ascii=False)
        self.log_path = os.path.join(aux_dir, "fake-growingio.log")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, FAKE_SERVER, "--port", "0", "--port-file", self.port_file,
             "--scenario", scenario_file, "--now", now, "--data-dir", os.path.join(aux_dir, "fake-data")],
            stdout=self.log, stderr=subprocess.STDOUT)
        port = wait_for(self._read_port, 15, "the fake server's port file")
        self.base = f"http://127.0.0.1:{port}"

    def _read_port(self):
        if self.process.poll() is not None:
            raise AssertionError(f"fake-growingio exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            with open(self.port_file) as f:
                return int(f.read().strip())
        except (FileNotFoundError, ValueError):
            return None

    def request(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        method = "GET" if body is None else "POST"
        with urllib.request.urlopen(urllib.request.Request(self.base + path, data=data, method=method),
                                    timeout=30) as answer:
            return json.load(answer)

    def stats(self):
        return self.request("/_control/stats")

    def files(self, kind, slot):
        return self.request(f"/_control/files?type={kind}&slot={slot}")

    def slots(self, kind, first, last):
        """[{slot, servable, ready, status}] for the slots first..last (inclusive)."""
        return self.request(f"/_control/slots?type={kind}&from={first}&to={last}")

    def ask(self, kind, slot, expire=5):
        """Asks the export API for one slot as a client would: (HTTP status, JSON answer or None).
        It counts like any client's ask (polls, faults)."""
        export_date = slot_start(slot).astimezone(BEIJING).strftime("%Y%m%d%H" if kind == "hour" else "%Y%m%d")
        request = urllib.request.Request(f"{self.base}/v2/insights/{kind}/{AI}/{export_date}.json?expire={expire}",
                                         headers={"Authorization": TOKEN})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, None

    def scenario(self, update):
        return self.request("/_control/scenario", update)

    def expire_links(self):
        return self.request("/_control/expire-links", {})

    def now(self):
        return parse_utc(self.request("/_control/now")["now"])

    def log_tail(self, lines=30):
        return tail(self.log_path, lines)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def tail(path, lines):
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-lines:]).decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


# --- the daemon ----------------------------------------------------------------


def hourly_job(name="shop-hourly", **overrides):
    job = {"name": name, "project": "shop", "kind": "raw", "granularity": "hour", "data_types": "all",
           "ready_after": "40m", "poll_every": "1s", "give_up_after": "24h", "backfill": "6h",
           "link_expire": "60m"}
    job.update(overrides)
    return job


def flow(mapping):
    """A YAML flow mapping; strings that are not plain words are quoted."""
    def scalar(value):
        if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
            return json.dumps(value)
        return value
    return "{" + ", ".join(f"{key}: {scalar(value)}" for key, value in mapping.items()) + "}"


class Daemon:
    def __init__(self, run_dir, aux_dir, server, jobs, parallel_downloads=4, http_timeout="5s",
                 api_requests_per_second=None, sinks=None):
        self.binary = binary()
        self.run_dir = run_dir
        self.aux_dir = aux_dir
        self.server = server
        self.jobs = jobs
        self.config = os.path.join(run_dir, "config.yaml")
        self.archive = os.path.join(run_dir, "archive")
        self.process = None
        self.log_path = None
        self.starts = 0
        # Variables every command of this daemon gets on top of the harness's (e.g. https_proxy).
        self.extra_env = {}
        lines = [
            "state_db: state.db",
            "archive_dir: archive",
            f'http: {{api_base: "{server.base}", timeout: {http_timeout}}}',
            f"limits: {{parallel_downloads: {parallel_downloads}"
            + (f", api_requests_per_second: {api_requests_per_second}" if api_requests_per_second else "")
            + "}",
            'metrics: {listen: ""}',
            "log: {level: debug}",
            "projects:",
            f"  - {{name: shop, ai: {AI}, project_uid: nxog09md, auth: {{token_env: GIO_TEST_TOKEN}}}}",
        ] + (["sinks:"] + [f"  - {flow(sink)}" for sink in sinks] if sinks else []) + [
            "jobs:",
        ] + [f"  - {flow(job)}" for job in jobs]
        with open(self.config, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    def edit_config(self, old, new):
        """Replaces `old` (which must be there) with `new` in the config file."""
        with open(self.config, encoding="utf-8") as f:
            text = f.read()
        if old not in text:
            raise AssertionError(f"{old!r} is not in {self.config}:\n{text}")
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(text.replace(old, new))

    def env(self, now=None):
        env = dict(os.environ)
        env.pop("GIO_EXPORTER_CONFIG", None)
        # The fake server is on loopback: a proxy of the machine running the tests must not
        # come between (test_proxy.py sets its own through extra_env).
        for name in PROXY_VARIABLES:
            env.pop(name, None)
        env.update(self.extra_env)
        env["GIO_TEST_TOKEN"] = TOKEN
        # Each process starts its clock where the server's clock is now, so the two
        # agree however long the test has run and however often the daemon restarts;
        # `now` (a UTC datetime) starts it elsewhere, e.g. after a simulated outage.
        env["GIO_EXPORTER_NOW"] = (now or self.server.now()).strftime("%Y-%m-%dT%H:%M:%SZ")
        return env

    def cli(self, *args, timeout=60, config=None, now=None):
        return subprocess.run([self.binary, "-c", config or self.config, *args], cwd=self.aux_dir,
                              env=self.env(now), capture_output=True, text=True, timeout=timeout)

    def run_once(self, timeout=120, now=None):
        result = self.cli("run", "--once", timeout=timeout, now=now)
        with open(os.path.join(self.aux_dir, "run-once.log"), "a", encoding="utf-8") as f:
            f.write(result.stdout + result.stderr)
        return result

    def start(self, env=None, preexec_fn=None):
        """`run` in the background; `env` adds variables (NOTIFY_SOCKET, ...), `preexec_fn`
        runs in the child before exec (resource limits)."""
        assert self.process is None or self.process.poll() is not None, "daemon already running"
        self.starts += 1
        self.log_path = os.path.join(self.aux_dir, f"daemon-{self.starts}.log")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([self.binary, "-c", self.config, "run"], cwd=self.aux_dir,
                                            env={**self.env(), **(env or {})}, stdout=log,
                                            stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
        return self.process

    def running(self):
        return self.process is not None and self.process.poll() is None

    def catches(self, signum):
        """Whether the running daemon has its handler for `signum` installed (the
        process's SigCgt mask in /proc): until then the signal's default action, for
        SIGTERM and SIGHUP death by the signal, is what a sender would get."""
        try:
            with open(f"/proc/{self.process.pid}/status", encoding="ascii") as f:
                caught = next(line for line in f if line.startswith("SigCgt:"))
        except (OSError, StopIteration):
            return False
        return bool(int(caught.split()[1], 16) >> (signum - 1) & 1)

    def signal(self, signum, within=30):
        """Sends `signum` once the daemon catches it: a daemon started a moment ago (a
        slow start under AddressSanitizer) may not have reached its handlers yet."""
        wait_for(lambda: self.catches(signum) or not self.running(), within,
                 f"the daemon to catch signal {signum}", interval=0.02)
        self.process.send_signal(signum)

    def terminate(self, timeout=5):
        """SIGTERM; returns (exit code, seconds taken), or (None, timeout) when it did not stop."""
        self.signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None, timeout
        return code, time.monotonic() - started

    def kill(self):
        if self.running():
            self.process.kill()
        if self.process is not None:
            self.process.wait()

    def wait_for_database(self):
        """A daemon just started may not have made its database yet, and the read-only
        commands refuse a missing one: gives a running daemon a moment to create it."""
        db = os.path.join(self.run_dir, "state.db")
        if self.running() and not os.path.exists(db):
            wait_for(lambda: os.path.exists(db), 10, f"the daemon to create {db}", interval=0.05)

    def status(self):
        self.wait_for_database()
        result = self.cli("status", "--json")
        if result.returncode != 0:
            raise AssertionError(f"status --json exited {result.returncode}: {result.stderr}")
        return json.loads(result.stdout)

    def job_status(self, job):
        for entry in self.status()["jobs"]:
            if entry["job"] == job:
                return entry
        raise AssertionError(f"status --json has no job {job}")

    def gaps(self, job=None, now=None):
        self.wait_for_database()
        args = ["gaps", "--json"] + (["--job", job] if job else [])
        result = self.cli(*args, now=now)
        if result.returncode not in (0, 2):
            raise AssertionError(f"gaps --json exited {result.returncode}: {result.stderr}")
        return result.returncode, json.loads(result.stdout)

    def log_text(self):
        """Everything every run of the daemon logged: each `run`, then every `run --once`."""
        paths = sorted(glob.glob(os.path.join(self.aux_dir, "daemon-*.log")),
                       key=lambda path: int(re.search(r"daemon-(\d+)\.log$", path).group(1)))
        paths.append(os.path.join(self.aux_dir, "run-once.log"))
        text = ""
        for path in paths:
            if os.path.exists(path):
                with open(path, encoding="utf-8", errors="replace") as f:
                    text += f.read()
        return text

    def events(self, name, **match):
        """The `event=NAME key=value ...` lines of every run, as dicts of the fields from
        `event=` on (ts, level and msg left out), filtered by `match`. Every line is
        parsed as logfmt; one that does not parse fails the test."""
        found = []
        for line in self.log_text().splitlines():
            if f"event={name}" not in line:
                continue
            pairs = parse_logfmt(line)
            keys = [key for key, _ in pairs]
            if ("event", name) not in pairs:
                continue
            fields = dict(pairs[keys.index("event"):])
            if all(fields.get(key) == value for key, value in match.items()):
                found.append(fields)
        return found

    def log_tail(self, lines=40):
        text = tail(os.path.join(self.aux_dir, "run-once.log"), lines)
        if self.log_path:
            text += tail(self.log_path, lines)
        return text


LOGFMT_PAIR = re.compile(r'([^\s="]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?:\s+|$)')
LOGFMT_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def parse_logfmt(line):
    """One logfmt line (after journald's `<N>` prefix, if any) as a list of (key, value)
    pairs, in order, values unquoted and unescaped. Raises ValueError for a line that is
    not logfmt from start to end."""
    text = re.sub(r"^<[0-7]>", "", line.rstrip("\n"))
    pairs, position = [], 0
    while position < len(text):
        match = LOGFMT_PAIR.match(text, position)
        if not match:
            raise ValueError(f"not logfmt at column {position}: {line!r}")
        key, value = match.group(1), match.group(2)
        if value.startswith('"'):
            value = re.sub(r'\\u([0-9a-f]{4})|\\(.)',
                           lambda m: chr(int(m.group(1), 16)) if m.group(1) else LOGFMT_ESCAPES[m.group(2)],
                           value[1:-1])
        pairs.append((key, value))
        position = match.end()
    return pairs


# --- the test case base ----------------------------------------------------------


class E2ETestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.base = tempfile.mkdtemp(prefix=f"gio-e2e-{self._testMethodName}-")
        self.run_dir = os.path.join(self.base, "run")
        self.aux_dir = os.path.join(self.base, "aux")
        os.makedirs(self.run_dir)
        os.makedirs(self.aux_dir)
        self.server = None
        self.daemon = None
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        if self.daemon is not None:
            self.daemon.kill()
        if self.server is not None:
            self.server.stop()
        if os.environ.get("GIO_E2E_KEEP"):
            print(f"\nkept {self.base}", file=sys.stderr)
        else:
            shutil.rmtree(self.base, ignore_errors=True)

    def start(self, scenario=None, jobs=None, parallel_downloads=4, **daemon_options):
        """daemon_options: http_timeout, api_requests_per_second, sinks (see Daemon)."""
        self.server = FakeServer(self.aux_dir, scenario)
        self.daemon = Daemon(self.run_dir, self.aux_dir, self.server, jobs or [hourly_job()],
                             parallel_downloads, **daemon_options)
        return self.server, self.daemon

    def expected(self, job=None):
        job = job or self.daemon.jobs[0]
        return expected_slots(self.server.now(), job["backfill"], job["ready_after"], job["granularity"])

    def use_signed_codes(self, daemon, client_id, private_key, requests_per_second=None):
        """Switches the daemon's account from a token to signed-code auth (before it
        starts); the fake server's scenario must name the same client_id and key."""
        key_file = os.path.join(self.aux_dir, "shop.key")
        with open(key_file, "w", encoding="utf-8") as f:
            f.write(private_key + "\n")
        with open(daemon.config, encoding="utf-8") as f:
            config = f.read()
        signed = f'auth: {{client_id: {client_id}, private_key_file: "{key_file}"}}'
        config = config.replace("auth: {token_env: GIO_TEST_TOKEN}", signed)
        if requests_per_second:
            config = config.replace("limits: {", f"limits: {{api_requests_per_second: {requests_per_second}, ")
        self.assertIn(signed, config)
        with open(daemon.config, "w", encoding="utf-8") as f:
            f.write(config)

    def cached_auth_code(self, account="shop"):
        """The signed OAuth code the daemon cached in its state database, or None."""
        with sqlite3.connect(os.path.join(self.run_dir, "state.db")) as db:
            row = db.execute("SELECT value FROM kv WHERE key = ?", (f"auth_code/{account}",)).fetchone()
        return None if row is None else json.loads(row[0])["code"]

    def enable_metrics(self):
        """Gives the daemon a metrics listener on a free loopback port (from its next
        start); returns the URL of its /metrics."""
        port = free_port()
        self.daemon.edit_config('metrics: {listen: ""}', f"metrics: {{listen: 127.0.0.1:{port}}}")
        return f"http://127.0.0.1:{port}/metrics"

    @staticmethod
    def scrape(url):
        """The text `url` answers, or None while nothing answers there (for wait_for)."""
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.read().decode()
        except OSError:
            return None

    def context(self):
        return f"\n--- daemon log ---\n{self.daemon.log_tail()}\n--- server log ---\n{self.server.log_tail(10)}"

    def assert_run_once(self, timeout=120, now=None, code=0):
        """run --once, expected to exit `code` (3: slots failed or were lost in the pass)."""
        result = self.daemon.run_once(timeout, now=now)
        self.assertEqual(result.returncode, code, f"run --once exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def wait_done(self, job, count, timeout=60):
        """Polls `status --json` until `count` slots of `job` are done."""
        def done():
            if self.daemon.process is not None and not self.daemon.running():
                raise AssertionError(f"the daemon exited with {self.daemon.process.returncode}")
            counts = self.daemon.job_status(job)["counts"]
            return counts if counts.get("done", 0) >= count else None
        try:
            return wait_for(done, timeout, f"{count} done slots of {job}", interval=0.25)
        except AssertionError as error:
            raise AssertionError(f"{error}{self.context()}") from None

    def stop_daemon(self, within=5):
        code, took = self.daemon.terminate(within)
        self.assertEqual(code, 0, f"daemon did not exit 0 within {within}s after SIGTERM{self.context()}")
        return took

    # --- archive checks ------------------------------------------------------

    def partition(self, job, data_type, slot):
        return os.path.join(self.daemon.archive, partition_rel(job, data_type, slot))

    def truth(self, job, slot):
        kind = "hour" if "T" in slot else "day"
        return self.server.files(kind, slot)

    def assert_partition_complete(self, job, slot, data_type, want):
        path = self.partition(job, data_type, slot)
        where = f"{job} {slot} {data_type} ({path})"
        self.assertTrue(os.path.isdir(path), f"missing partition {where}{self.context()}")
        entries = os.listdir(path)
        for marker in MARKERS:
            self.assertIn(marker, entries, f"no {marker} in {where}")
        self.assertEqual(os.path.getsize(os.path.join(path, "_SUCCESS")), 0, f"_SUCCESS not empty in {where}")
        on_disk = {}
        for name in entries:
            full = os.path.join(path, name)
            self.assertTrue(os.path.isfile(full) and not os.path.islink(full), f"{name} in {where} is not a plain file")
            if name not in MARKERS:
                on_disk[name] = (os.path.getsize(full), sha256_file(full))
        self.assertEqual(collections.Counter(on_disk.values()),
                         collections.Counter((f["bytes"], f["sha256"]) for f in want),
                         f"data files of {where} differ from the server's")
        with open(os.path.join(path, "_manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        listed = {entry["name"]: (entry["bytes"], entry["sha256"]) for entry in manifest["files"]}
        self.assertEqual(listed, on_disk, f"_manifest.json of {where} does not describe its files")
        self.assert_rows_counted(path, manifest, where)
        return on_disk

    def assert_rows_counted(self, path, manifest, where):
        """Each counted file's rows and columns are what Python's csv module reads in the
        vendor's dialect; the total is their sum, or null with a note when one is not
        counted."""
        for entry in manifest["files"]:
            if "rows" not in entry:
                continue
            with gzip.open(os.path.join(path, entry["name"])) as f:
                text = f.read().decode("latin-1")  # bytes as they are, whatever the encoding
            records = [r for r in csv.reader(io.StringIO(text, newline=""), escapechar="\\",
                                             doublequote=False) if r]
            header = [name.encode("latin-1").decode("utf-8", "replace") for name in records[0]] if records else []
            self.assertEqual((entry["rows"], entry["columns"]), (max(0, len(records) - 1), header),
                             f"rows of {entry['name']} in {where}")
        counted = [entry.get("rows") for entry in manifest["files"]]
        if all(rows is not None for rows in counted):
            self.assertEqual(manifest["rows"], sum(counted), f"total rows of {where}")
        else:
            self.assertIsNone(manifest["rows"], where)
            self.assertTrue(manifest["rows_note"].startswith("not counted"), where)

    def assert_archived(self, job, slots):
        """Every data type of every slot is a complete, byte-exact partition."""
        for slot in slots:
            for data_type, want in self.truth(job, slot).items():
                self.assert_partition_complete(job, slot, data_type, want)

    def assert_nothing_partial(self, job, slots):
        """After a stop at any instant: every file visible in a partition is one of the
        server's files for that partition, whole; a partition with _SUCCESS is complete."""
        for slot in slots:
            for data_type, want in self.truth(job, slot).items():
                path = self.partition(job, data_type, slot)
                if not os.path.isdir(path):
                    continue
                if os.path.exists(os.path.join(path, "_SUCCESS")):
                    self.assert_partition_complete(job, slot, data_type, want)
                    continue
                good = {(f["bytes"], f["sha256"]) for f in want}
                for name in os.listdir(path):
                    full = os.path.join(path, name)
                    if name in MARKERS:
                        continue
                    self.assertIn((os.path.getsize(full), sha256_file(full)), good,
                                  f"partial or foreign file {full}")

    def assert_no_strays(self, slots_by_job, allow_staging_files=False):
        """Nothing in run/ but the config, the state database and the archive; nothing
        in the archive but partitions of the given slots and the staging area."""
        allowed_top = {"config.yaml", "archive"}
        for name in os.listdir(self.run_dir):
            if name in allowed_top or re.fullmatch(r"state\.db(-wal|-shm|-journal)?", name):
                continue
            self.fail(f"unexpected {name} in the daemon's folder")
        partitions = {os.path.join(self.daemon.archive, partition_rel(job, data_type, slot))
                      for job, slots in slots_by_job.items() for slot in slots
                      for data_type in self.truth(job, slot)}
        staging = os.path.join(self.daemon.archive, ".staging")
        for folder, dirs, files in os.walk(self.daemon.archive):
            if folder == staging or folder.startswith(staging + os.sep):
                if files and not allow_staging_files:
                    self.fail(f"staging files left behind: {files}")
                continue
            if folder == self.daemon.archive:
                files = [name for name in files if name != ARCHIVE_IDENTITY]
            for name in files:
                self.assertIn(folder, partitions, f"stray file {os.path.join(folder, name)}")
            if folder in partitions:
                self.assertEqual(dirs, [], f"folders inside partition {folder}")

    def staging_files(self):
        staging = os.path.join(self.daemon.archive, ".staging")
        return [os.path.relpath(os.path.join(folder, name), staging)
                for folder, _, files in os.walk(staging) for name in files]

    def downloads_of(self, stats_table, slots):
        """{url path: count} of a stats table, for the files of the given slots."""
        wanted = set(slots)
        return {path: n for path, n in stats_table.items() if path.split("/")[4] in wanted}


# --- a faked wall clock (libfaketime) --------------------------------------------


class FakedWallClock:
    """Moves the daemon's wall clock while it runs, through libfaketime (Debian's
    `faketime`): the real system-clock path is what gets tested, not a test-only clock
    source. LD_PRELOAD puts the library into the daemon alone (the server and the CLI
    commands keep the real time); FAKETIME_NO_CACHE makes every reading re-read the
    offset file, so set() takes effect at once; DONT_FAKE_MONOTONIC keeps the steady
    clock real, as it stays in a real jump. The daemon's GIO_EXPORTER_NOW offset is
    taken at its start (offset "+0"), so the offset written later moves it from there."""

    LIBRARY_GLOB = "/usr/lib/*/faketime/libfaketimeMT.so.1"

    def __init__(self, aux_dir):
        found = sorted(glob.glob(self.LIBRARY_GLOB))
        if not found:
            raise unittest.SkipTest("libfaketime is not installed (Debian package faketime)")
        self.path = os.path.join(aux_dir, "faketime.offset")
        # Under AddressSanitizer (scripts/test.sh's second half) the ASan runtime must
        # come first among the libraries, which a preload breaks; libfaketime wraps
        # only the clock calls, which ASan does not, so that check can be switched off.
        asan = os.environ.get("ASAN_OPTIONS", "")
        self.env = {"LD_PRELOAD": found[0], "FAKETIME_TIMESTAMP_FILE": self.path,
                    "FAKETIME_NO_CACHE": "1", "DONT_FAKE_MONOTONIC": "1",
                    "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}
        self.set("+0")

    def set(self, offset):
        """libfaketime's relative offset: "+0", "+3d", "-2h", "+90" (seconds)."""
        with open(self.path + ".tmp", "w", encoding="utf-8") as f:
            f.write(offset + "\n")
        os.replace(self.path + ".tmp", self.path)


# --- sinks (issue 15): real remotes on loopback -----------------------------------

# The folder under each remote's root that a sink's rclone_remote points at: the daemon
# must land under the remote path, never beside it.
REMOTE_PREFIX = "lake"
SINK_NAME = "lake"
# `rclone serve` caches directory listings for 5 minutes: an object damaged behind the
# server's back (Remote.corrupt) would go unseen by every client until then.
SERVE_FRESH = ("--dir-cache-time", "0s")
S3RVER_SKIP = "s3rver is not installed (npm install -g s3rver; CI has no npm registry)"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rclone_path():
    path = shutil.which("rclone")
    if path is None:
        raise unittest.SkipTest("rclone is not installed (Debian package rclone)")
    return path


def rclone_env(home):
    """The harness's own rclone commands get a clean environment, as the daemon gives its
    children: nothing of the machine's (an AWS_CA_BUNDLE, a user's rclone.conf) decides."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
            "RCLONE_CONFIG": os.path.join(home, "no-rclone.conf"),
            "RCLONE_CACHE_DIR": os.path.join(home, "rclone-cache")}


def obscure(text):
    """rclone's reversible obscuring of a password, as on-the-fly backend strings want it."""
    return subprocess.run([rclone_path(), "obscure", text], capture_output=True, text=True,
                          check=True, timeout=30).stdout.strip()


def sink(remote, name=SINK_NAME, keep_local="2d", **more):
    """A `sinks:` entry for Daemon(sinks=[...]) landing on `remote` (a Remote)."""
    return {"name": name, "rclone_remote": remote.remote, "keep_local": keep_local, **more}


def is_listening(port):
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Remote:
    """A remote a sink lands on, served for real. The remote's objects are read from what
    the server stores (its own folder), not through rclone: the server's truth.

    remote: the rclone_remote string the daemon gets (ends in REMOTE_PREFIX)
    objects(): {path relative to REMOTE_PREFIX: file holding the object's bytes}
    secrets: strings of the remote string that must never be shown (credentials)"""

    kind = None

    def __init__(self, folder):
        self.folder = folder
        self.store = os.path.join(folder, "store")
        os.makedirs(self.store, exist_ok=True)
        self.secrets = []
        self.process = None
        self.port = None
        self.starts = 0

    # Served remotes override these.
    def command(self):
        return None

    def object_root(self):
        return os.path.join(self.store, REMOTE_PREFIX)

    def object_name(self, file_name):
        return file_name

    def start(self):
        argv = self.command()
        if argv is None:
            return self
        self.starts += 1
        log = open(os.path.join(self.folder, f"{self.kind}-{self.starts}.log"), "wb")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=rclone_env(self.folder), start_new_session=True)
        log.close()

        def up():
            if self.process.poll() is not None:
                raise AssertionError(f"{self.kind} server exited with {self.process.returncode}:\n{self.log_tail()}")
            return is_listening(self.port)
        wait_for(up, 30, f"the {self.kind} server on port {self.port}", interval=0.05)
        return self

    def stop(self):
        """Ends the server (the remote is down until start())."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def log_tail(self, lines=20):
        return tail(os.path.join(self.folder, f"{self.kind}-{self.starts}.log"), lines)

    def log_text(self):
        text = ""
        for path in sorted(glob.glob(os.path.join(self.folder, f"{self.kind}-*.log"))):
            with open(path, encoding="utf-8", errors="replace") as f:
                text += f.read()
        return text

    def objects(self):
        root = self.object_root()
        found = {}
        for folder, _, files in os.walk(root):
            for name in files:
                key = self.object_name(name)
                if key is not None:
                    found[os.path.relpath(os.path.join(folder, key), root)] = os.path.join(folder, name)
        return found

    def rclone(self, *args, timeout=60):
        """rclone run by the harness against this remote (e.g. "lsjson", "-R", "--hash", "{}"):
        "{}" in an argument stands for the remote string plus a path after it."""
        argv = [rclone_path()] + [arg.replace("{}", self.remote) for arg in args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=rclone_env(self.folder))

    def listing(self, rel=""):
        """What rclone itself lists under REMOTE_PREFIX/rel: {path: {size, hashes}}."""
        result = self.rclone("lsjson", "-R", "--hash", "--files-only", "{}" + ("/" + rel if rel else ""))
        if result.returncode != 0:
            raise AssertionError(f"rclone lsjson of the {self.kind} remote failed: {result.stderr}")
        return {entry["Path"]: {"size": entry["Size"], "hashes": entry.get("Hashes") or {}}
                for entry in json.loads(result.stdout)}

    def checksum(self, rel):
        """The checksum rclone has for the object REMOTE_PREFIX/rel: "md5" when its listing
        carries one, else "sha1", else "none" (the order the daemon checks them in)."""
        folder, name = os.path.split(rel)
        hashes = self.listing(folder)[name]["hashes"]
        return next((kind for kind in ("md5", "sha1") if hashes.get(kind)), "none")

    def corrupt(self, rel, how="flip"):
        """Damages the stored object behind the daemon's back: "flip" (same size, other
        bytes), "truncate" (one byte short) or "remove"."""
        path = self.objects()[rel]
        if how == "remove":
            os.remove(path)
            return
        with open(path, "r+b") as f:
            data = f.read()
            if how == "truncate":
                f.truncate(len(data) - 1)
            else:
                middle = len(data) // 2
                f.seek(middle)
                f.write(bytes(b ^ 0xFF for b in data[middle:middle + 16]))


class LocalRemote(Remote):
    """rclone's local backend (`:local:` on the fly), in a folder of the test's."""
    kind = "local"

    def __init__(self, folder):
        super().__init__(folder)
        self.remote = f":local:{os.path.join(self.store, REMOTE_PREFIX)}"


class WebdavRemote(Remote):
    """`rclone serve webdav` on loopback; read_only refuses every write; user/password
    make the remote string carry a credential (obscured, as rclone wants it)."""
    kind = "webdav"

    def __init__(self, folder, read_only=False, user=None, password=None):
        super().__init__(folder)
        self.port, self.read_only, self.user, self.password = free_port(), read_only, user, password
        self.url = f"http://127.0.0.1:{self.port}"
        options = f"url='{self.url}'"
        if user:
            obscured = obscure(password)
            options += f",user={user},pass={obscured}"
            self.secrets = [password, obscured]
        self.remote = f":webdav,{options}:{REMOTE_PREFIX}"

    def command(self):
        argv = [rclone_path(), "serve", "webdav", self.store, "--addr", f"127.0.0.1:{self.port}", *SERVE_FRESH]
        if self.read_only:
            argv.append("--read-only")
        if self.user:
            argv += ["--user", self.user, "--pass", self.password]
        return argv


class SftpRemote(Remote):
    """`rclone serve sftp` on loopback with a user and password; the remote string carries
    the password obscured (rclone obscure), as an on-the-fly sftp string must."""
    kind = "sftp"

    def __init__(self, folder, user="gio", password="sftp-pass-not-a-real-one-7f3c", read_only=False):
        super().__init__(folder)
        self.port, self.user, self.password, self.read_only = free_port(), user, password, read_only
        obscured = obscure(password)
        self.secrets = [password, obscured]
        self.remote = f":sftp,host=127.0.0.1,port={self.port},user={user},pass={obscured}:{REMOTE_PREFIX}"

    def command(self):
        argv = [rclone_path(), "serve", "sftp", self.store, "--addr", f"127.0.0.1:{self.port}",
                "--user", self.user, "--pass", self.password, *SERVE_FRESH]
        return argv + (["--read-only"] if self.read_only else [])


class S3rverRemote(Remote):
    """An S3-compatible server (s3rver, from npm) through rclone's s3 backend (provider
    Other, path style). The upload cutoff and chunk size are lowered to 5 MiB, rclone's
    smallest chunk, so that parts above 5 MiB are uploaded in several parts (multipart)."""
    kind = "s3rver"
    BUCKET = "gio-bucket"
    SUFFIX = "._S3rver_object"

    def __init__(self, folder):
        if shutil.which("s3rver") is None:
            raise unittest.SkipTest(S3RVER_SKIP)
        super().__init__(folder)
        self.port = free_port()
        # s3rver's fixed credentials: no secret worth hiding here (see WebdavRemote/SftpRemote).
        self.remote = (f":s3,provider=Other,access_key_id=S3RVER,secret_access_key=S3RVER,"
                       f"endpoint='http://127.0.0.1:{self.port}',force_path_style=true,"
                       f"upload_cutoff=5M,chunk_size=5M:{self.BUCKET}/{REMOTE_PREFIX}")

    def command(self):
        return [shutil.which("s3rver"), "--directory", self.store, "--port", str(self.port),
                "--address", "127.0.0.1", "--configure-bucket", self.BUCKET]

    def object_root(self):
        return os.path.join(self.store, self.BUCKET, REMOTE_PREFIX)

    def object_name(self, file_name):
        return file_name[:-len(self.SUFFIX)] if file_name.endswith(self.SUFFIX) else None

    def went_multipart(self, rel):
        """Whether s3rver completed the object REMOTE_PREFIX/rel as a multipart upload (its
        log line of the completion; it cuts long paths on the left and URL-encodes them)."""
        key = f"/{self.BUCKET}/{REMOTE_PREFIX}/{rel}"
        logged = re.findall(r"info\S*: (\S+)\?uploadId=\w+ 200", self.log_text())
        return any(len(path) > 20 and key.endswith(urllib.parse.unquote(path)) for path in logged)

    def corrupt(self, rel, how="flip"):
        # s3rver answers the ETag it stored beside the object; a same-size flip would keep
        # the old MD5, which no real S3 does: replace the object through the API instead.
        if how != "flip":
            return super().corrupt(rel, how)
        with open(self.objects()[rel], "rb") as f:
            data = bytearray(f.read())
        data[len(data) // 2] ^= 0xFF
        result = subprocess.run([rclone_path(), "rcat", f"{self.remote}/{rel}"], input=bytes(data),
                                capture_output=True, timeout=60, env=rclone_env(self.folder))
        if result.returncode != 0:
            raise AssertionError(f"rclone rcat failed: {result.stderr}")


REMOTES = {"local": LocalRemote, "webdav": WebdavRemote, "sftp": SftpRemote, "s3rver": S3rverRemote}
# The types the fake server has files of by default: a job of "all" types lands six more
# partitions a slot, all empty, which most sink tests need not pay for.
FILE_TYPES = ["action", "custom_event", "page", "visit"]


class SinkTestCase(E2ETestCase):
    """E2ETestCase with remotes: start_remote() serves one, stopped in tearDown, and the
    assertions compare the remote with what the fake server served."""

    def start_remote(self, kind, **options):
        rclone_path()
        folder = os.path.join(self.aux_dir, f"remote-{kind}-{len(getattr(self, 'remotes', []))}")
        os.makedirs(folder)
        remote = REMOTES[kind](folder, **options)
        self.remotes = getattr(self, "remotes", []) + [remote]
        self.addCleanup(remote.stop)
        return remote.start()

    def start_sink_daemon(self, remote, backfill="4h", keep_local="2d", scenario=None, data_types=None):
        """The fake server and a daemon (not started) with one hourly job landing on
        `remote` through the sink SINK_NAME: (job, the slots it is to archive)."""
        job = hourly_job(sink=SINK_NAME, backfill=backfill, data_types=data_types or FILE_TYPES)
        self.start(scenario, jobs=[job], sinks=[sink(remote, keep_local=keep_local)])
        return job, self.expected()

    def sink_counts(self, job="shop-hourly"):
        return self.daemon.job_status(job)["counts"]

    def job_types(self, job, slot):
        """{data type: the server's files} of a slot, for the types the job keeps."""
        truth = self.truth(job["name"], slot)
        wanted = job.get("data_types", "all")
        return truth if wanted == "all" else {t: truth[t] for t in wanted}

    def assert_local(self, job, slots):
        """assert_archived for the types the job keeps: the local copy is whole."""
        for slot in slots:
            for data_type, want in self.job_types(job, slot).items():
                self.assert_partition_complete(job["name"], slot, data_type, want)

    def remote_partitions(self, remote, job, slots):
        """{partition path relative to the remote path: the server's files} of every slot."""
        return {partition_rel(job["name"], data_type, slot): files
                for slot in slots for data_type, files in self.job_types(job, slot).items()}

    def remote_manifest(self, remote, partition):
        with open(remote.objects()[os.path.join(partition, "_manifest.json")], encoding="utf-8") as f:
            return json.load(f)

    def assert_landed(self, remote, job, slots, checksum=None, others=()):
        """The remote holds exactly the archive's layout of `slots` (plus the partitions of
        `others`, {relative partition: files}), byte for byte what the server served, each
        partition with its _manifest.json (remote_checksum as rclone reports the backend's
        hash, or `checksum`; each part's remote_hash) and an empty _SUCCESS; nothing else."""
        want = {**self.remote_partitions(remote, job, slots), **dict(others)}
        objects = remote.objects()
        if checksum is None:
            # What rclone has for this backend, read off any part (a type may have none).
            part = next((rel for rel in objects if os.path.basename(rel) not in MARKERS), None)
            checksum = remote.checksum(part) if part else None
        by_partition = collections.defaultdict(dict)
        for rel, path in objects.items():
            folder, name = os.path.split(rel)
            self.assertIn(folder, want, f"stray object {rel} on the {remote.kind} remote{self.context()}")
            by_partition[folder][name] = path
        for partition, files in want.items():
            where = f"{partition} on the {remote.kind} remote"
            found = by_partition.get(partition, {})
            self.assertIn("_SUCCESS", found, f"no _SUCCESS in {where}: {sorted(found)}{self.context()}")
            self.assertEqual(os.path.getsize(found["_SUCCESS"]), 0, f"_SUCCESS not empty in {where}")
            self.assertIn("_manifest.json", found, f"no _manifest.json in {where}")
            parts = {name: (os.path.getsize(path), sha256_file(path))
                     for name, path in found.items() if name not in MARKERS}
            self.assertEqual(collections.Counter(parts.values()),
                             collections.Counter((f["bytes"], f["sha256"]) for f in files),
                             f"the parts of {where} differ from the server's")
            manifest = self.remote_manifest(remote, partition)
            listed = {entry["name"]: (entry["bytes"], entry["sha256"]) for entry in manifest["files"]}
            self.assertEqual(listed, parts, f"the _manifest.json of {where} does not describe its parts")
            expected = manifest.get("remote_checksum")
            # A partition without parts had nothing to check a hash of: "none" is as true.
            allowed = {checksum} | ({"none"} if not parts or checksum is None else set())
            if checksum is None:
                allowed |= {"md5", "sha1"}
            self.assertIn(expected, allowed, f"remote_checksum of {where}")
            for entry in manifest["files"]:
                path = found[entry["name"]]
                if expected == "none":
                    self.assertIn(entry.get("remote_hash", ""), ("", None), f"{where}: {entry}")
                else:
                    with open(path, "rb") as f:
                        digest = hashlib.new(expected, f.read()).hexdigest()
                    self.assertEqual(entry.get("remote_hash"), digest, f"remote_hash of {entry['name']} in {where}")
            local = os.path.join(self.daemon.archive, partition, "_manifest.json")
            if os.path.exists(local):
                with open(local, encoding="utf-8") as f:
                    local_manifest = json.load(f)
                stripped = {key: value for key, value in manifest.items() if key != "remote_checksum"}
                stripped["files"] = [{k: v for k, v in entry.items() if k != "remote_hash"}
                                     for entry in manifest["files"]]
                self.assertEqual(stripped, local_manifest, f"the _manifest.json of {where} is not the local one's")
        return want

    def assert_remote_sound(self, remote, partitions, when):
        """At any instant (after a SIGKILL): nothing on the remote outside the partitions
        `partitions` ({relative partition: files}); a partition with _SUCCESS holds exactly
        the server's parts and a manifest. (Without _SUCCESS a part may be half-written:
        the issue promises readers only that _SUCCESS means whole.)"""
        by_partition = collections.defaultdict(dict)
        for rel, path in remote.objects().items():
            folder, name = os.path.split(rel)
            self.assertIn(folder, partitions, f"{when}: stray object {rel} on the {remote.kind} remote")
            by_partition[folder][name] = path
        for folder, found in by_partition.items():
            if "_SUCCESS" not in found:
                continue
            parts = collections.Counter((os.path.getsize(path), sha256_file(path))
                                        for name, path in found.items() if name not in MARKERS)
            self.assertEqual(parts, collections.Counter((f["bytes"], f["sha256"]) for f in partitions[folder]),
                             f"{when}: {folder} has _SUCCESS on the remote but not exactly the server's parts")
            self.assertIn("_manifest.json", found, f"{when}: {folder} has _SUCCESS but no manifest")

    def assert_no_secret(self, remote, text, where):
        for secret in [remote.remote] + remote.secrets:
            self.assertNotIn(secret, text, f"a secret of the {remote.kind} remote appears in {where}")


class ChildWatch:
    """Records the command line (and environment) of every descendant process of `pid`
    while it runs (polled from /proc in a thread): what `ps` shows of the daemon's rclone
    children."""

    def __init__(self, pid, interval=0.005):
        self.pid, self.interval = pid, interval
        self.seen = {}
        self.environments = {}  # pid: {name: value}, as the child started
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def descendants(self):
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                        parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        found, frontier = set(), {self.pid}
        while frontier:
            frontier = {child for child, parent in parents.items() if parent in frontier} - found
            found |= frontier
        return found

    def run(self):
        while not self.stopping.is_set():
            for pid in self.descendants():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = f.read().split(b"\0")
                except OSError:
                    continue
                argv = [arg.decode("utf-8", "replace") for arg in argv if arg]
                # A pid first seen between fork and exec shows the daemon's own command
                # line: keep the latest.
                if argv and self.seen.get(pid) != argv:
                    self.seen[pid] = argv
                    try:
                        with open(f"/proc/{pid}/environ", "rb") as f:
                            pairs = [item.decode("utf-8", "replace").partition("=")
                                     for item in f.read().split(b"\0") if item]
                        self.environments[pid] = {name: value for name, _, value in pairs}
                    except OSError:
                        pass
            time.sleep(self.interval)

    def stop(self):
        self.stopping.set()
        self.thread.join()
        return self.seen
