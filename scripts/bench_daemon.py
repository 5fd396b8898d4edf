#!/usr/bin/env python3
"""Scale and idle cost of the daemon itself (no downloads: the API address refuses).

scale: JOBS hourly jobs with a 15-day window (JOBS x 360 slots planned at start) over a
  state database that already holds ROWS archived slots from before the window
  (inserted with sqlite3 into a database the daemon created). Measures the start-up
  planning time (from the "gio-exporter starting" line to the first event=catch_up
  line, both timestamped by the daemon; catch_up lines are written once every job is
  planned), the process's time from exec to that line, its peak RSS (VmHWM) a few
  seconds later, and the median wall time of `status` and `gaps` (text and --json).
idle: JOBS jobs configured with nothing due for the next hour and more; the daemon runs
  for SECONDS: CPU time (every thread's /proc/PID/task/*/schedstat) and context switches
  (a wake-up each, from /proc/PID/status; also per thread) over that time, after a few
  seconds to settle. Then the pickup: a `backfill` run while the daemon sleeps, from the
  command's end to the daemon's event=queue_changed line (both wall clock), 3 rounds.

Usage: scripts/bench_daemon.py scale --bin BIN [--jobs 200] [--rows 1000000] [--json OUT]
       scripts/bench_daemon.py idle --bin BIN [--jobs 50] [--seconds 60] [--json OUT]
"""

import argparse
import datetime as dt
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

UTC = dt.timezone.utc
BEIJING = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 22, 10, 10, tzinfo=UTC)
TOKEN = "bench-token"
STAMP = re.compile(r"^ts=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z")  # logfmt: ts= first


def refused_port():
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(work, jobs, backfill, ready_after="40m", name="config.yaml"):
    lines = [
        "state_db: state.db",
        "archive_dir: archive",
        f'http: {{api_base: "http://127.0.0.1:{refused_port()}", timeout: 5s}}',
        'metrics: {listen: ""}',
        "log: {level: info}",
        "projects:",
        "  - {name: shop, ai: 2a1b4018cd954ec2bcc69da5138bdb96, project_uid: nxog09md, "
        "auth: {token_env: GIO_BENCH_TOKEN}}",
        "jobs:",
    ]
    for i in range(jobs):
        lines.append(f"  - {{name: bench-{i:03d}, project: shop, kind: raw, granularity: hour, "
                     f"data_types: all, backfill: {backfill}, ready_after: {ready_after}}}")
    path = os.path.join(work, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def env(now):
    result = dict(os.environ)
    result.pop("JOURNAL_STREAM", None)
    result["GIO_BENCH_TOKEN"] = TOKEN
    result["GIO_EXPORTER_NOW"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return result


def cli(binary, config, *args, now=NOW, check=True):
    result = subprocess.run([binary, "-c", config, *args], env=env(now), cwd=os.path.dirname(config),
                            capture_output=True, text=True)
    if check and result.returncode not in (0, 2):
        raise SystemExit(f"{' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def create_schema(binary, work, db_path):
    """The daemon's own schema in a new database: read-only commands no longer create one,
    so a pass of one job of one hour runs first (its one ask is refused at once), and the
    slot it planned is removed: the measured start plans from scratch."""
    seed = write_config(work, 1, "1h", name="seed.yaml")
    cli(binary, seed, "run", "--once", check=False)
    db = sqlite3.connect(db_path)
    try:
        with db:
            db.execute("DELETE FROM slots")  # no files rows: its ask was refused
    finally:
        db.close()


def fill_history(db_path, jobs, rows):
    """rows done slots spread over the jobs, all older than the 15-day window."""
    per_job = rows // jobs
    window_start = NOW - dt.timedelta(days=15)
    first = (window_start - dt.timedelta(hours=per_job + 1)).replace(minute=0, second=0)
    stamp = int(window_start.timestamp())
    hours = []
    for h in range(per_job):
        start = first + dt.timedelta(hours=h)
        hours.append((start.astimezone(BEIJING).strftime("%Y-%m-%dT%H"), int(start.timestamp())))
    db = sqlite3.connect(db_path)
    try:
        db.execute("PRAGMA synchronous = OFF")  # a benchmark fixture, not the daemon's data
        with db:
            for i in range(jobs):
                job = f"bench-{i:03d}"
                db.executemany(
                    "INSERT INTO slots (job, slot, start, state, attempts, next_at, api_status, "
                    "last_error, created_at, updated_at, done_at, notices) "
                    "VALUES (?, ?, ?, 'done', 1, ?, 'FINISHED', '', ?, ?, ?, 0)",
                    ((job, name, start, start + 3600 * 2, start + 3600, start + 7200, start + 7200)
                     for name, start in hours))
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        count = db.execute("SELECT count(*) FROM slots").fetchone()[0]
    finally:
        db.close()
    os.sync()  # the fixture's pages on disk first, so the daemon's first fsync is its own
    return count


def read_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.split(":", 1) for line in f if ":" in line)


def kib(status, key):
    return int(status[key].split()[0])


def cpu_ms(pid):
    """CPU time of every thread of pid: schedstat's nanoseconds when the kernel keeps them
    (utime+stime count whole 10 ms ticks, too coarse for an idle minute), else ticks."""
    total_ns = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total_ns += int(f.read().split()[0])
        return total_ns / 1e6
    except (FileNotFoundError, IndexError, ValueError):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def wait_for_lines(log_path, pattern, count, timeout, process):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the daemon exited with {process.returncode}:\n{tail(log_path)}")
        with open(log_path, encoding="utf-8", errors="replace") as f:
            lines = [line for line in f if pattern in line]
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {count} '{pattern}' lines:\n{tail(log_path)}")


def tail(path, lines=20):
    with open(path, encoding="utf-8", errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def stamp_of(line):
    match = STAMP.match(line)
    if not match:
        raise SystemExit(f"no timestamp on: {line}")
    return dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S.%f")


def timed(binary, config, args, repeat):
    walls = []
    for _ in range(repeat):
        started = time.monotonic()
        cli(binary, config, *args)
        walls.append(time.monotonic() - started)
    return statistics.median(walls)


def scale(args, work):
    config = write_config(work, args.jobs, "15d")
    db_path = os.path.join(work, "state.db")
    create_schema(args.bin, work, db_path)
    historical = fill_history(db_path, args.jobs, args.rows)
    log_path = os.path.join(work, "daemon.log")
    with open(log_path, "wb") as log:
        started = time.time()
        process = subprocess.Popen([args.bin, "-c", config, "run"], env=env(NOW), cwd=work,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        first = wait_for_lines(log_path, "gio-exporter starting", 1, 60, process)[0]
        caught_up = wait_for_lines(log_path, "event=catch_up", args.jobs, 120, process)
        planned = sum(int(re.search(r"slots=(\d+)", line).group(1)) for line in caught_up)
        planning = (stamp_of(caught_up[0]) - stamp_of(first)).total_seconds()
        exec_to_planned = (stamp_of(caught_up[0]) -
                           dt.datetime.fromtimestamp(started, UTC).replace(tzinfo=None)).total_seconds()
        time.sleep(args.settle)
        status = read_status(process.pid)
        peak_rss = kib(status, "VmHWM")
    finally:
        process.terminate()
        process.wait(30)
    rows = sqlite3.connect(db_path).execute("SELECT count(*) FROM slots").fetchone()[0]
    gaps_lines = cli(args.bin, config, "gaps").stdout.count("\n")
    return {
        "jobs": args.jobs,
        "historical_rows": historical,
        "planned_slots": planned,
        "rows_after": rows,
        "planning_s": planning,
        "exec_to_planned_s": exec_to_planned,
        "peak_rss_mib": peak_rss / 1024,
        "status_s": timed(args.bin, config, ["status"], args.repeat),
        "status_json_s": timed(args.bin, config, ["status", "--json"], args.repeat),
        "gaps_s": timed(args.bin, config, ["gaps"], args.repeat),
        "gaps_json_s": timed(args.bin, config, ["gaps", "--json"], args.repeat),
        "gaps_lines": gaps_lines,
    }


def thread_switches(pid):
    """{thread name and id: its context switches} of every thread of pid."""
    found = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            status = read_status(f"{pid}/task/{task}")
        except FileNotFoundError:
            continue
        name = f"{status['Name'].strip()}/{task}"
        found[name] = sum(int(status[key]) for key in ("voluntary_ctxt_switches",
                                                       "nonvoluntary_ctxt_switches"))
    return found


def pickup_latency(binary, config, log_path, process, hours_back):
    """Seconds from the end of a `backfill` of one slot to the daemon's queue_changed line
    for it (negative when the line came first: the daemon saw the commit as it was made,
    before the CLI process had ended)."""
    with open(log_path, encoding="utf-8", errors="replace") as f:
        seen = sum(1 for line in f if "event=queue_changed" in line)
    slot = (NOW - dt.timedelta(hours=hours_back)).astimezone(BEIJING).strftime("%Y-%m-%dT%H")
    cli(binary, config, "backfill", "--job", "bench-000", "--from", slot, "--to", slot)
    ended = time.time()
    line = wait_for_lines(log_path, "event=queue_changed", seen + 1, 30, process)[seen]
    picked = stamp_of(line).replace(tzinfo=UTC).timestamp()
    return picked - ended


def idle(args, work):
    # A one-hour window at ten past the hour: the next slot is ready in 90 minutes, so
    # nothing is planned or due while it runs.
    config = write_config(work, args.jobs, "1h")
    log_path = os.path.join(work, "daemon.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen([args.bin, "-c", config, "run"], env=env(NOW), cwd=work,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_lines(log_path, "gio-exporter starting", 1, 60, process)
        time.sleep(args.settle)
        before_cpu = cpu_ms(process.pid)
        before = read_status(process.pid)
        before_threads = thread_switches(process.pid)
        started = time.monotonic()
        time.sleep(args.seconds)
        after_cpu = cpu_ms(process.pid)
        after = read_status(process.pid)
        after_threads = thread_switches(process.pid)
        elapsed = time.monotonic() - started
        if process.poll() is not None:
            raise SystemExit(f"the daemon exited:\n{tail(log_path)}")
        rss = kib(after, "VmHWM")
        # Slots a few days back, one per round; each round starts with the daemon asleep
        # again (its refused ask is retried seconds later: waited out first).
        pickups = []
        for hours_back in (72, 96, 120):
            pickups.append(pickup_latency(args.bin, config, log_path, process, hours_back))
            time.sleep(args.settle)
    finally:
        process.terminate()
        process.wait(30)
    switches = sum(int(after[key]) - int(before[key])
                   for key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"))
    cpu = after_cpu - before_cpu
    per_minute = 60 / elapsed
    with open(log_path, encoding="utf-8", errors="replace") as f:
        log_lines = sum(1 for _ in f)
    threads = {name: (after_threads.get(name, 0) - count) * per_minute
               for name, count in before_threads.items()}
    return {
        "jobs": args.jobs,
        "seconds": elapsed,
        "cpu_ms_per_minute": cpu * per_minute,
        "wakeups_per_minute": switches * per_minute,
        "wakeups_per_minute_by_thread": threads,
        "pickup_s": pickups,
        "pickup_max_s": max(0.0, max(pickups)),
        "peak_rss_mib": rss / 1024,
        "log_lines": log_lines,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["scale", "idle"])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--settle", type=float, default=3)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", help="write the figures here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    args.bin = os.path.abspath(args.bin)
    if args.jobs is None:
        args.jobs = 200 if args.mode == "scale" else 50
    work = tempfile.mkdtemp(prefix=f"gio-bench-{args.mode}-")
    try:
        figures = scale(args, work) if args.mode == "scale" else idle(args, work)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.mode == "scale":
        print(f"scale: {figures['jobs']} jobs, {figures['planned_slots']} slots planned at start over "
              f"{figures['historical_rows']} historical rows ({figures['rows_after']} after)")
        print(f"  planning {figures['planning_s'] * 1000:.0f} ms (exec to planned "
              f"{figures['exec_to_planned_s'] * 1000:.0f} ms), peak RSS {figures['peak_rss_mib']:.1f} MiB")
        print(f"  status {figures['status_s'] * 1000:.0f} ms (--json {figures['status_json_s'] * 1000:.0f}), "
              f"gaps {figures['gaps_s'] * 1000:.0f} ms (--json {figures['gaps_json_s'] * 1000:.0f}; "
              f"{figures['gaps_lines']} lines), medians")
    else:
        print(f"idle: {figures['jobs']} jobs, nothing due, {figures['seconds']:.0f} s: "
              f"{figures['cpu_ms_per_minute']:.1f} ms CPU and {figures['wakeups_per_minute']:.0f} "
              f"context switches per minute, peak RSS {figures['peak_rss_mib']:.1f} MiB")
        by_thread = ", ".join(f"{name} {count:.1f}" for name, count in
                              sorted(figures["wakeups_per_minute_by_thread"].items()))
        print(f"  per thread (switches per minute): {by_thread}")
        print(f"  pickup of a backfill run while idle: "
              f"{', '.join('%.0f ms' % (s * 1000) for s in figures['pickup_s'])} "
              f"(max {figures['pickup_max_s'] * 1000:.0f} ms, negatives counted as 0; target <= 1 s)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
