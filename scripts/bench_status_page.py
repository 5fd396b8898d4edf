#!/usr/bin/env python3
"""The status page benchmark's runs (scripts/bench_status_page.sh prepares the binary and
the parts).

Issue 17: the status page serves ~1 MiB of page to 20 clients polling at once without
slowing downloads measurably. One hourly slot of FILES cached gzip parts (type visit),
served by nginx on loopback behind the fake GrowingIO API (bench_sink.py's servers), is
archived by the daemon (no sink) to the local _SUCCESS, per round:
  alone    nobody asks the daemon anything;
  polled   CLIENTS clients each GET /api/slots and / once per INTERVAL, all on the same
           tick, on keep-alive connections (a browser tab does the same every 5 s: at
           1 s, 20 clients are the load of 100 open tabs).
The state holds JOBS more hourly jobs (besides the one downloading) with DAYS days of
slots each (done, a few failed and lost, files with rows), so /api/slots answers ~1 MiB.
The download is timed from the API call that answers FINISHED to slot_done, both stamps
from the daemon's own log. The pollers run in their own process (not this one's GIL),
started before that API call: the fake answers RUNNING to the first ask, the daemon asks
again poll_every (2 s) later, while the pollers already poll.
"""

import argparse
import datetime as dt
import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_sink  # noqa: E402  (the servers, the clock, the log stamps)
import bench_daemon  # noqa: E402  (the daemon's own schema in a new database)

NOW = dt.datetime.strptime(bench_sink.NOW, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
BEIJING = dt.timezone(dt.timedelta(hours=8))
PATHS = ("/api/slots", "/")


def write_config(run_dir, servers, port, jobs):
    lines = [
        "state_db: state.db",
        "archive_dir: archive",
        f'http: {{api_base: "http://127.0.0.1:{servers.api_port}", timeout: 60s}}',
        "limits: {api_requests_per_second: 2, parallel_downloads: 4}",
        f'metrics: {{listen: "127.0.0.1:{port}"}}',
        "log: {level: debug}",
        "projects:",
        f"  - {{name: shop, ai: {bench_sink.AI}, project_uid: nxog09md, auth: {{token_env: GIO_BENCH_TOKEN}}}}",
        "jobs:",
        "  - {name: bench, project: shop, kind: raw, granularity: hour, data_types: [visit], "
        "ready_after: 40m, poll_every: 2s, backfill: 2h, verify: gzip}",
    ]
    # the seeded jobs: every slot of their backfill is in the state already, so the daemon
    # asks nothing for them; they are there to be shown
    for i in range(jobs):
        lines.append(f"  - {{name: shop-{i:02d}-hourly, project: shop, kind: raw, granularity: hour, "
                     "data_types: [visit, page], ready_after: 40m, backfill: 2h}")
    path = os.path.join(run_dir, "config.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def seed_state(binary, work, jobs, days):
    """A state database with the daemon's schema and `days` days of hourly slots of each
    seeded job up to the last ready hour (mostly done, with files; some failed, some lost).
    Returns (its path, slots, files)."""
    seed_dir = os.path.join(work, "seed")
    os.makedirs(seed_dir)
    db_path = os.path.join(seed_dir, "state.db")
    bench_daemon.create_schema(binary, seed_dir, db_path)
    last = NOW.replace(minute=0, second=0) - dt.timedelta(hours=1)  # ready 40 min after its hour ended
    first = (last.astimezone(BEIJING) - dt.timedelta(days=days - 1)).replace(hour=0)
    rng = random.Random(17)
    slots, files = [], []
    for i in range(jobs):
        job = f"shop-{i:02d}-hourly"
        start = first
        while start <= last:
            name = start.astimezone(BEIJING).strftime("%Y-%m-%dT%H")
            t = int(start.timestamp())
            roll = rng.random()
            if roll < 0.01:
                slots.append((job, name, t, "failed", 5, t + 7200, "ERROR", "export failed: HTTP 502 after 5 attempts",
                              t + 3000, t + 9000, None))
            elif roll < 0.015:
                slots.append((job, name, t, "lost", 3, t + 7200, "", "past the API's retention", t + 3000, t + 9000,
                              None))
            else:
                slots.append((job, name, t, "done", 1, t + 7200, "FINISHED", "", t + 3000, t + 6000, t + 6000))
                for data_type in ("visit", "page"):
                    for part in range(2):
                        files.append((job, name, data_type, f"{data_type}-{part:05d}.csv.gz",
                                      rng.randrange(1 << 20, 64 << 20), "%064x" % rng.getrandbits(256), t + 6000,
                                      rng.randrange(10000, 900000)))
            start += dt.timedelta(hours=1)
    db = sqlite3.connect(db_path)
    try:
        db.execute("PRAGMA synchronous = OFF")  # a benchmark fixture, not the daemon's data
        with db:
            db.executemany("INSERT INTO slots (job, slot, start, state, attempts, next_at, api_status, last_error, "
                           "created_at, updated_at, done_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", slots)
            db.executemany("INSERT INTO files (job, slot, data_type, name, bytes, sha256, archived_at, rows) "
                           "VALUES (?,?,?,?,?,?,?,?)", files)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return db_path, len(slots), len(files)


def fetch(port, path):
    """(status, body) of one GET on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def daemon_run(args, run_dir, servers, seed_db, pollers):
    """Runs the daemon until its slot is done, with `pollers` clients polling the page or
    none: {seconds (FINISHED answer to slot_done), rss_mib, cpu_s, page_bytes, polls}."""
    port = bench_sink.free_port()
    config = write_config(run_dir, servers, port, args.jobs)
    # the seeded state and the archive it describes (its identity file), moved here
    shutil.copy(seed_db, os.path.join(run_dir, "state.db"))
    shutil.copytree(os.path.join(os.path.dirname(seed_db), "archive"), os.path.join(run_dir, "archive"))
    db = sqlite3.connect(os.path.join(run_dir, "state.db"))
    try:
        with db:
            db.execute("UPDATE kv SET value = ? WHERE key = 'archive/path'", (os.path.join(run_dir, "archive"),))
    finally:
        db.close()
    env = dict(os.environ, GIO_BENCH_TOKEN=bench_sink.TOKEN, GIO_EXPORTER_NOW=bench_sink.NOW)
    env.pop("JOURNAL_STREAM", None)
    log_path = os.path.join(run_dir, "daemon.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen([args.bin, "-c", config, "run"], env=env, cwd=run_dir, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
    poller = None
    result = {}
    try:
        bench_sink.wait_port(port, process, "the daemon's listener")
        if pollers:  # (alone, nobody asks: not even this once)
            began = time.monotonic()
            status, body = fetch(port, args.paths[0])
            result["first_ms"] = (time.monotonic() - began) * 1000  # built anew: nothing cached yet
            if status != 200:
                raise SystemExit(f"GET {args.paths[0]}: HTTP {status}: {body[:300]!r}")
            result["page_bytes"] = len(body)
            poller = subprocess.Popen([sys.executable, os.path.abspath(__file__), "poll", "--port", str(port),
                                       "--clients", str(pollers), "--interval", str(args.interval),
                                       "--paths", ",".join(args.paths)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        done, lines = bench_sink.wait_slot_done(process, log_path, 900, ("event=slot_done", "job=bench "),
                                                ("event=slot_failed", "link_rejected"))
        result["rss_mib"] = bench_sink.peak_rss_mib(process.pid)
        result["cpu_s"] = bench_sink.cpu_seconds(process.pid)[0]
        if poller:
            out, _ = poller.communicate("stop\n", timeout=120)
            poller = None
            result["polls"] = json.loads(out)
    finally:
        if poller:
            poller.kill()
            poller.wait()
        process.terminate()
        process.wait(60)
    # the last ask before slot_done is the one answered FINISHED (the first got RUNNING)
    asked = [line for line in lines[:lines.index(done)] if "api call" in line][-1]
    result["seconds"] = (bench_sink.stamp_of(done) - bench_sink.stamp_of(asked)).total_seconds()
    return result


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def poll_main(args):
    """The pollers: `clients` threads, each on its own keep-alive connection, GET every path
    once per interval, all on the same tick (a late client skips the ticks it missed).
    Runs until a line (or EOF) on stdin; prints {path: [latencies]}, errors, bytes as JSON."""
    stop = threading.Event()
    start = time.monotonic() + 0.05
    latencies = {path: [] for path in args.paths.split(",")}
    errors = []
    received = [0]
    sizes = {}
    lock = threading.Lock()

    def client():
        connection = None
        tick = start
        while not stop.is_set():
            delay = tick - time.monotonic()
            if delay > 0 and stop.wait(delay):
                break
            for path in latencies:
                began = time.monotonic()
                try:
                    if connection is None:
                        connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
                    connection.request("GET", path)
                    response = connection.getresponse()
                    body = response.read()
                    if response.status != 200:
                        raise OSError(f"HTTP {response.status}")
                    if response.will_close:
                        connection.close()
                        connection = None
                except (OSError, http.client.HTTPException) as error:
                    with lock:
                        errors.append(f"{path}: {error}")
                    if connection:
                        connection.close()
                    connection = None
                    continue
                elapsed = time.monotonic() - began
                with lock:
                    latencies[path].append(elapsed)
                    received[0] += len(body)
                    sizes[path] = len(body)
            now = time.monotonic()
            tick += args.interval
            if tick < now:  # late: the next tick still on the shared grid
                tick += ((now - tick) // args.interval + 1) * args.interval
        if connection:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    sys.stdin.readline()
    stopped = time.monotonic()
    stop.set()
    for thread in threads:
        thread.join(60)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    json.dump({"latencies": latencies, "errors": errors[:20], "error_count": len(errors), "bytes": received[0],
               "sizes": sizes, "seconds": stopped - start, "cpu_s": usage.ru_utime + usage.ru_stime}, sys.stdout)


def measure(args, work, seed_db):
    runs = []
    for r in range(args.rounds):
        run = {}
        # every other round the polled run goes first, so that neither meets the page
        # cache and the writeback the other left behind more often
        order = (0, args.clients) if r % 2 == 0 else (args.clients, 0)
        for pollers in order:
            what = "polled" if pollers else "alone"
            print(f"round {r + 1}: {what} ...", file=sys.stderr)
            os.sync()
            run_dir = os.path.join(work, f"{what}-{r}")
            os.makedirs(os.path.join(run_dir, "servers"))
            # servers of its own: the fake counts its answers per slot, and each run's
            # first ask is to get RUNNING (the pollers are polling when FINISHED comes)
            servers = bench_sink.Servers(os.path.join(run_dir, "servers"), args.cache, args.files, webdav=False,
                                         slot_defaults={"running_polls": 1})
            try:
                run[what] = daemon_run(args, run_dir, servers, seed_db, pollers)
            finally:
                servers.stop()
            args.mib = servers.bytes / (1 << 20)
            if not args.keep:
                shutil.rmtree(os.path.join(work, f"{what}-{r}"), ignore_errors=True)
        runs.append(run)
    return runs


def report(args, runs, slots, files, mib):
    alone = [run["alone"] for run in runs]
    polled = [run["polled"] for run in runs]
    median = lambda items, key: statistics.median(item[key] for item in items)
    # the ratio within each round (its two runs back to back, under the same load from
    # the rest of the machine), then the median of the rounds'
    ratio = statistics.median(run["polled"]["seconds"] / run["alone"]["seconds"] for run in runs)
    latencies = {path: [x for run in polled for x in run["polls"]["latencies"][path]] for path in args.paths}
    requests = sum(len(values) for values in latencies.values())
    errors = sum(run["polls"]["error_count"] for run in polled)
    figures = {
        "files": args.files, "mib": mib, "rounds": args.rounds, "clients": args.clients, "interval_s": args.interval,
        "jobs": args.jobs + 1, "slots": slots, "files_rows": files, "page_bytes": polled[0]["page_bytes"],
        "alone_s": median(alone, "seconds"), "polled_s": median(polled, "seconds"), "ratio": ratio,
        "alone_rss_mib": max(run["rss_mib"] for run in alone), "polled_rss_mib": max(run["rss_mib"] for run in polled),
        "first_ms": median(polled, "first_ms"), "alone_cpu_s": median(alone, "cpu_s"),
        "polled_cpu_s": median(polled, "cpu_s"), "sizes": polled[0]["polls"]["sizes"], "requests": requests,
        "errors": errors, "pollers_cpu_s": median([run["polls"] for run in polled], "cpu_s"),
        "requests_per_round": statistics.median(sum(len(v) for v in run["polls"]["latencies"].values())
                                                for run in polled),
        "latency_ms": {path: {"median": statistics.median(values) * 1000, "p95": percentile(values, 0.95) * 1000}
                       for path, values in latencies.items() if values},
        "cores": os.cpu_count(), "load": open("/proc/loadavg").read().split()[0],
        "runs": [{what: {k: v for k, v in run[what].items() if k != "polls"} for what in run} for run in runs],
    }
    print(f"\nstatus page benchmark: one slot of {args.files} x {mib / args.files:.0f} MiB from nginx on loopback, "
          f"{figures['cores']} cores (load {figures['load']} at the end), medians of {args.rounds} round(s)")
    size = figures["page_bytes"]
    print(f"state: {figures['jobs']} jobs, {slots} seeded slots ({args.jobs} hourly jobs x {args.days} days), "
          f"{files} files; {args.paths[0]} answers {size} bytes ({size / (1 << 20):.2f} MiB), "
          f"the first time (nothing cached) in {figures['first_ms']:.0f} ms (median)")
    print(f"pollers: {args.clients} clients, each GET {' and '.join(args.paths)} every {args.interval:g} s "
          f"on the same tick, keep-alive")
    print("%-36s %8s %9s %9s %8s" % ("download", "wall s", "ratio", "RSS MiB", "CPU s"))
    print("%-36s %8.2f %9s %9.1f %8.2f" % ("alone", figures["alone_s"], "", figures["alone_rss_mib"],
                                           figures["alone_cpu_s"]))
    print("%-36s %8.2f %9s %9.1f %8.2f" % (f"with {args.clients} pollers", figures["polled_s"],
                                           "%.3f x" % ratio, figures["polled_rss_mib"], figures["polled_cpu_s"]))
    for path, latency in figures["latency_ms"].items():
        size = polled[0]["polls"]["sizes"].get(path, 0)
        print(f"  {path} ({size / 1024:.0f} KiB): {len(latencies[path])} requests, median {latency['median']:.1f} ms, "
              f"p95 {latency['p95']:.1f} ms")
    print(f"  requests answered: {requests} ({figures['requests_per_round']:.0f} per round), errors: {errors}; "
          f"the pollers' own CPU: {figures['pollers_cpu_s']:.2f} s per run (median)")
    if errors:
        print("  first errors: " + "; ".join(polled[0]["polls"]["errors"][:5]))
    for r, run in enumerate(runs):
        print(f"round {r + 1}: alone {run['alone']['seconds']:.2f} s (CPU {run['alone']['cpu_s']:.2f} s), "
              f"polled {run['polled']['seconds']:.2f} s (CPU {run['polled']['cpu_s']:.2f} s): "
              f"{run['polled']['seconds'] / run['alone']['seconds']:.3f} x")
    passed = ratio <= 1.05 and errors == 0
    print("target download with pollers <= 1.05 x alone, no failed request: %s" % ("PASS" if passed else "FAIL"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return passed


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "poll":
        parser = argparse.ArgumentParser(description="the pollers (run by the benchmark)")
        parser.add_argument("poll")
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--clients", type=int, required=True)
        parser.add_argument("--interval", type=float, required=True)
        parser.add_argument("--paths", required=True)
        poll_main(parser.parse_args())
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--cache", required=True, help="the folder of part-NNNNN.csv.gz files")
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=12, help="seeded hourly jobs")
    parser.add_argument("--days", type=int, default=15, help="days of slots per seeded job")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between a client's polls")
    parser.add_argument("--paths", default=",".join(PATHS), help="what each client GETs, comma-separated; "
                        "the first must answer 200 before the run")
    parser.add_argument("--json")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    args.bin = os.path.abspath(args.bin)
    args.cache = os.path.abspath(args.cache)
    args.paths = args.paths.split(",")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = tempfile.mkdtemp(prefix="gio-bench-page-")
    try:
        seed_db, slots, files = seed_state(args.bin, work, args.jobs, args.days)
        runs = measure(args, work, seed_db)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if report(args, runs, slots, files, args.mib) else 1)


if __name__ == "__main__":
    main()
