"""End-to-end harness: the real gio-exporter binary against scripts/fake-growingio.

Every test gets its own temp folder with two halves:
  run/  what the daemon owns: config.yaml, the state database, archive/
  aux/  what the harness owns: the server's data and port file, scenario, logs
so "nothing outside the archive" can be checked on run/ alone.

Environment: GIO_EXPORTER_BIN (the binary), GIO_SOURCE_DIR (the repo root);
GIO_E2E_KEEP=1 keeps the temp folders and prints where they are.
"""

import collections
import datetime as dt
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
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


def wait_for(predicate, timeout, what, interval=0.1):
    """Polls predicate() until it returns a truthy value; fails with `what` and the
    last value seen after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
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
                 api_requests_per_second=None):
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
        """daemon_options: http_timeout, api_requests_per_second (see Daemon)."""
        self.server = FakeServer(self.aux_dir, scenario)
        self.daemon = Daemon(self.run_dir, self.aux_dir, self.server, jobs or [hourly_job()],
                             parallel_downloads, **daemon_options)
        return self.server, self.daemon

    def expected(self, job=None):
        job = job or self.daemon.jobs[0]
        return expected_slots(self.server.now(), job["backfill"], job["ready_after"], job["granularity"])

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
        return on_disk

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
