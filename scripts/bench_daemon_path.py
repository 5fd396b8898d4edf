#!/usr/bin/env python3
"""The daemon's whole path (issue 18 item 3; scripts/bench_daemon_path.sh prepares the parts).

One hourly slot of FILES cached gzip parts (type visit), served by nginx on loopback
behind the fake GrowingIO API (bench_sink.py's servers), per round, back to back:
  daemon        the real daemon archives the slot: from its API call that answers
                FINISHED to slot_done (download, gzip and sha256 verification, fsync,
                publish, _manifest.json, _SUCCESS, the state), both ends from its log;
  script        what a cron script does with the same links, sequentially: per part
                curl -o into a staging folder, gzip -t, sha256sum, mv into the
                partition; then _SUCCESS;
and with --sink also
  daemon+sink   the same job with issue 15's rclone sink (a WebDAV remote that
                `rclone serve webdav` serves on loopback): to slot_done, which comes
                once the remote _SUCCESS is landed;
  script+copy   the script, then `rclone copy` of its partition to the same remote.
Reports the medians of the walls, the ratios within each round, CPU seconds (user+sys)
beside the walls, and the daemon's peak RSS (VmHWM), with --breakdown also what that
peak is made of (/proc/PID/smaps at the sample with the largest RSS).
"""

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_sink  # noqa: E402  (the servers, the daemon run, the slot_done wait)

# the script of a cron job: $1 = partition folder, then the links
SCRIPT = r'''out=$1; shift; mkdir -p "$out/.staging"
for url in "$@"; do f=$out/.staging/$(basename "${url%%\?*}")
  curl -sf -o "$f" "$url" && gzip -t "$f" && sha256sum "$f" >>"$out/.staging/sha256" &&
    mv "$f" "$out/" || exit 1
done
mv "$out/.staging/sha256" "$out/_sha256" && rmdir "$out/.staging" && touch "$out/_SUCCESS"'''


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv, env=None):
    """Runs argv to the end: (wall seconds, CPU seconds of it and its children)."""
    cpu = children_cpu()
    started = time.monotonic()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, env=env)
    return time.monotonic() - started, children_cpu() - cpu


def mappings(pid):
    """[(header fields, Size KiB, Rss KiB)] of /proc/PID/smaps."""
    result = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(None, 1)[0]
            if not first.endswith(":"):
                result.append([line.split(), 0, 0])
            elif first == "Size:":
                result[-1][1] = int(line.split()[1])
            elif first == "Rss:":
                result[-1][2] = int(line.split()[1])
    return result


def smaps(pid):
    """{what: RSS KiB} of a live process, and its total RSS in KiB. glibc gives each
    thread that allocates an arena: a 64 MiB reservation (HEAP_MAX_SIZE) whose used
    front is rw-p and the rest ---p; a thread's stack is an 8 MiB rw-p mapping."""
    groups, maps = {}, mappings(pid)
    for i, (fields, size, rss) in enumerate(maps):
        path = fields[5] if len(fields) > 5 else ""
        following = maps[i + 1] if i + 1 < len(maps) else None
        if path == "[heap]":
            what = "anon: main arena (brk heap)"
        elif path == "[stack]":
            what = "anon: main thread's stack"
        elif path.startswith("/"):
            what = "file: " + os.path.basename(path).split(".so")[0]
        elif path:
            what = "other: " + path
        elif size == 8192:
            what = "anon: thread stacks"
        elif (fields[1] == "rw-p" and following and len(following[0]) <= 5 and following[0][1] == "---p"
              and size + following[1] == 65536) or size == 65536:
            what = "anon: malloc arenas of threads"
        else:
            what = "anon: other mappings of %s" % ("< 1 MiB" if size < 1024 else "1 MiB or more")
        groups[what] = groups.get(what, 0) + rss
    return groups, sum(groups.values())


def status_kib(pid):
    """{VmRSS, RssAnon, RssFile, ...: KiB} of a live process (/proc/PID/status: cheap)."""
    with open(f"/proc/{pid}/status") as f:
        return {line.split(":")[0]: int(line.split()[1]) for line in f if line.startswith(("VmRSS", "Rss"))}


class Sampler:
    """Samples the daemon's RSS every `interval` seconds, and its smaps (slower to read)
    whenever the RSS is the largest seen so far; keeps that breakdown and the peak of the
    anonymous memory alone (RssAnon: what the daemon allocated, as opposed to the pages of
    its binary and libraries, which VmHWM counts too)."""

    def __init__(self, process, interval=0.01):
        self.peak, self.peak_kib, self.anon_kib, self.stop_flag = {}, 0, 0, threading.Event()
        self.timeline = []  # (seconds since the start, RSS KiB): where the peak comes
        self.threads = 0
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self.run, args=(process, interval), daemon=True)
        self.thread.start()

    def run(self, process, interval):
        while not self.stop_flag.is_set() and process.poll() is None:
            try:
                status = status_kib(process.pid)
                self.anon_kib = max(self.anon_kib, status["RssAnon"])
                self.timeline.append((round(time.monotonic() - self.started, 3), status["VmRSS"]))
                if status["VmRSS"] > self.peak_kib:
                    groups, total = smaps(process.pid)
                    if total > self.peak_kib:
                        self.peak, self.peak_kib = groups, total
                        self.threads = len(os.listdir(f"/proc/{process.pid}/task"))
                        if os.environ.get("BENCH_SMAPS_DUMP"):  # for a closer look: the whole smaps
                            shutil.copyfile(f"/proc/{process.pid}/smaps", os.environ["BENCH_SMAPS_DUMP"])
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(interval)

    def stop(self):
        self.stop_flag.set()
        self.thread.join()


def daemon_round(args, work, servers, name, sink_path):
    cpu, samplers = {}, []

    def watch(process):
        if args.breakdown:
            samplers.append(Sampler(process))

    wall, landing, rss, local_dir, done = bench_sink.daemon_run(
        args.bin, os.path.join(work, name), servers, sink_path, cpu, args.logs, watch)
    for sampler in samplers:
        sampler.stop()
    if sink_path is not None:
        if "sink=lake" not in done:
            raise SystemExit(f"slot_done without sink=lake: this binary has no sinks:\n{done}")
        relative = os.path.relpath(local_dir, os.path.join(work, name, "archive"))
        bench_sink.check_remote(servers, f"{sink_path}/{relative}", local_dir)
    parts = sum(1 for entry in os.listdir(local_dir) if entry.endswith(".gz"))
    if parts != args.files or not os.path.exists(os.path.join(local_dir, "_SUCCESS")):
        raise SystemExit(f"{local_dir}: {parts} parts of {args.files}, or no _SUCCESS")
    result = {"wall_s": wall, "rss_mib": rss, "cpu_s": cpu["daemon"] + cpu["rclone"], "cpu": cpu}
    if samplers and samplers[0].peak:
        result["breakdown_kib"] = dict(sorted(samplers[0].peak.items(), key=lambda kv: -kv[1]))
        result["breakdown_threads"] = samplers[0].threads
        result["rss_timeline"] = samplers[0].timeline
        result["anon_mib"] = samplers[0].anon_kib / 1024
    return result


def script_round(args, work, servers, name, sink_path):
    out = os.path.join(work, name, "partition")
    links = [f"http://127.0.0.1:{servers.nginx_port}/download/{bench_sink.AI}/hour/x/visit/{i}/part-{i:05d}.csv.gz"
             for i in range(args.files)]
    os.makedirs(out)
    wall, cpu = timed(["bash", "-c", SCRIPT, "script", out, *links])
    result = {"script_s": wall, "script_cpu_s": cpu}
    if sink_path is not None:
        servers_before = servers.cpu()["webdav"]
        copy, copy_cpu = timed(["rclone", "copy", out, servers.remote(sink_path)], env=bench_sink.rclone_env())
        result.update(copy_s=copy, copy_cpu_s=copy_cpu, copy_webdav_cpu_s=servers.cpu()["webdav"] - servers_before)
        wall, cpu = wall + copy, cpu + copy_cpu
    result.update(wall_s=wall, cpu_s=cpu)
    return result


def measure(args, work, servers):
    runs = []
    for r in range(args.rounds):
        run = {}
        steps = [("daemon", daemon_round, None), ("script", script_round, None)]
        if args.sink:
            steps += [("daemon_sink", daemon_round, f"sink-{r}"), ("script_copy", script_round, f"copy-{r}")]
        if r % 2:  # every other round the script goes first: neither way always meets the other's writeback
            steps = [steps[i ^ 1] for i in range(len(steps))]
        for name, function, sink_path in steps:
            print(f"round {r + 1}: {name} ...", file=sys.stderr)
            os.sync()
            run[name] = function(args, work, servers, f"{name}-{r}", sink_path)
        runs.append(run)
        for parent in (work, os.path.join(work, "remote")):  # a round's copies (GiBs) are not needed any more
            for folder in os.listdir(parent) if os.path.isdir(parent) else ():
                if folder.endswith(f"-{r}"):
                    shutil.rmtree(os.path.join(parent, folder), ignore_errors=True)
    return runs


def summary(args, runs, servers):
    pairs = [("daemon", "script")] + ([("daemon_sink", "script_copy")] if args.sink else [])
    figures = {"files": args.files, "mib": servers.bytes / (1 << 20), "rounds": args.rounds,
               "cores": os.cpu_count(), "runs": runs}
    for ours, theirs in pairs:
        for way in (ours, theirs):
            figures[way] = {key: statistics.median(run[way][key] for run in runs) for key in ("wall_s", "cpu_s")}
        figures[ours]["rss_mib"] = max(run[ours]["rss_mib"] for run in runs)
        # within each round (its ways ran back to back, under the same load), then the median
        figures[ours]["ratio"] = statistics.median(run[ours]["wall_s"] / run[theirs]["wall_s"] for run in runs)
        anon = [run[ours]["anon_mib"] for run in runs if "anon_mib" in run[ours]]
        if anon:
            figures[ours]["anon_mib"] = max(anon)
        breakdowns = [run[ours]["breakdown_kib"] for run in runs if "breakdown_kib" in run[ours]]
        if breakdowns:
            figures[ours]["breakdown_kib"] = max(breakdowns, key=lambda b: sum(b.values()))
    figures["load"] = open("/proc/loadavg").read().split()[0]
    return figures


def report(args, figures):
    label = f"{args.files} x {figures['mib'] / args.files:.0f} MiB"
    print(f"\ndaemon path benchmark: one slot of {label}, API answer to _SUCCESS, {figures['cores']} cores "
          f"(load {figures['load']} at the end), medians of {args.rounds} round(s); ratios within each round")
    print("%-40s %8s %8s %10s %9s" % ("way", "wall s", "CPU s", "ratio", "RSS MiB"))
    names = {"daemon": "daemon (no sink)", "script": "script: curl, gzip -t, sha256sum",
             "daemon_sink": "daemon, sink to rclone WebDAV", "script_copy": "script, then rclone copy"}
    passed = True
    for way in ("daemon", "script", "daemon_sink", "script_copy"):
        if way not in figures:
            continue
        f = figures[way]
        ratio = "%.2f x" % f["ratio"] if "ratio" in f else ""
        rss = "%.1f" % f["rss_mib"] if "rss_mib" in f else ""
        print("%-40s %8.2f %8.2f %10s %9s" % (names[way], f["wall_s"], f["cpu_s"], ratio, rss))
        if "ratio" in f:
            passed = passed and f["ratio"] <= 0.25 and f["rss_mib"] <= 16
        if "anon_mib" in f:
            print("    peak RSS sampled: %.1f MiB; of it anonymous (RssAnon, peak): %.1f MiB" % (
                sum(f["breakdown_kib"].values()) / 1024, f["anon_mib"]))
        for what, kib in f.get("breakdown_kib", {}).items():
            if kib >= 64:
                print("    %-52s %7.1f MiB" % (what, kib / 1024))
    for r, run in enumerate(figures["runs"]):
        print(f"round {r + 1}: " + "; ".join(f"{way} {run[way]['wall_s']:.2f} s (CPU {run[way]['cpu_s']:.2f} s)"
                                              for way in run))
    print("targets: daemon <= 0.25 x the script, daemon peak RSS <= 16 MiB: %s" % ("PASS" if passed else "MISS"))
    return passed


def main():
    args = bench_sink.arguments(__doc__, [
        ("--sink", dict(action="store_true", help="also the slot to an rclone remote")),
        ("--breakdown", dict(action="store_true", help="what the daemon's peak RSS is made of"))])
    work = tempfile.mkdtemp(prefix="gio-bench-path-")
    servers = None
    try:
        servers = bench_sink.Servers(work, args.cache, args.files, webdav=args.sink)
        runs = measure(args, work, servers)
    finally:
        if servers:
            servers.stop()
        shutil.rmtree(work, ignore_errors=True)
    figures = summary(args, runs, servers)
    passed = report(args, figures)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
