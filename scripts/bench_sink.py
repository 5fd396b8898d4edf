#!/usr/bin/env python3
"""The sink benchmark's runs (scripts/bench_sink.sh prepares the binary and the parts).

One hourly slot of FILES cached gzip parts (type visit), served by nginx on loopback
behind the fake GrowingIO API, archived by the daemon in three ways per round:
  sink      the job has a sink: a WebDAV remote that `rclone serve webdav` serves on
            loopback; timed from the API call that answers FINISHED (the daemon's debug
            line "api call") to slot_done, which a sink job logs once every partition is
            landed, _SUCCESS last;
  download  the same job without a sink: from the same API call to slot_done (local);
  then      download, then `rclone copy` of that run's partition (parts, _manifest.json,
            _SUCCESS) to the same remote: the download's time plus the copy's wall.
Both ends of a daemon figure come from the daemon's own log, so they share one clock.
"""

import argparse
import datetime as dt
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOW = "2026-11-22T10:50:00Z"  # backfill 2h: the one slot Beijing 2026-11-22T17 (09:00 UTC), ready since 10:40
AI = "2a1b4018cd954ec2bcc69da5138bdb96"
TOKEN = "bench-token"
STAMP = re.compile(r"^ts=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, process, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"{what} did not listen on {port}")


def stamp_of(line):
    match = STAMP.match(line)
    if not match:
        raise SystemExit(f"no timestamp on: {line}")
    return dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S.%f")


def cpu_seconds(pid):
    """(own CPU, CPU of the children it waited for) of a live process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def tail(path, lines=30):
    with open(path, encoding="utf-8", errors="replace") as f:
        return "".join(f.readlines()[-lines:])


class Servers:
    """nginx (the parts), the fake API (links to nginx) and rclone's WebDAV server."""

    def __init__(self, work, cache, files, webdav=True, slot_defaults=None):
        """webdav=False: no WebDAV server; slot_defaults: more of the fake's slot knobs."""
        self.work = work
        self.processes = []
        www = os.path.join(work, "www")
        os.makedirs(www)
        self.bytes = 0
        for i in range(files):
            part = os.path.join(cache, f"part-{i:05d}.csv.gz")
            os.symlink(part, os.path.join(www, str(i)))
            self.bytes += os.path.getsize(part)
        self.nginx_port = free_port()
        nginx_dir = os.path.join(work, "nginx")
        os.makedirs(os.path.join(nginx_dir, "logs"))
        temp = os.path.join(nginx_dir, "tmp")
        os.makedirs(temp)
        with open(os.path.join(nginx_dir, "nginx.conf"), "w") as f:
            f.write(f"""daemon off;
master_process off;
worker_processes 1;
error_log {nginx_dir}/logs/error.log warn;
pid {nginx_dir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path {temp}/body;
  proxy_temp_path {temp}/proxy;
  fastcgi_temp_path {temp}/fastcgi;
  uwsgi_temp_path {temp}/uwsgi;
  scgi_temp_path {temp}/scgi;
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{self.nginx_port};
    # the fake's link paths, /download/AI/hour/SLOT/visit/PART/NAME: part PART is file PART
    location ~ ^/download/[^/]+/hour/[^/]+/visit/(\\d+)/[^/]+$ {{ alias {www}/$1; }}
  }}
}}
""")
        self.start(["nginx", "-p", nginx_dir, "-c", os.path.join(nginx_dir, "nginx.conf"),
                    "-e", os.path.join(nginx_dir, "logs", "error.log")], self.nginx_port, "nginx")

        scenario = {"token": TOKEN, "ai": AI, "parts": {"visit": files, "page": 0, "custom_event": 0,
                                                         "action": 0},
                    "slot_defaults": {"link_base": f"http://127.0.0.1:{self.nginx_port}", **(slot_defaults or {})}}
        with open(os.path.join(work, "scenario.json"), "w") as f:
            json.dump(scenario, f)
        self.api_port = free_port()
        self.start([os.path.join(ROOT, "scripts", "fake-growingio"), "--port", str(self.api_port),
                    "--scenario", os.path.join(work, "scenario.json"), "--now", NOW,
                    "--data-dir", os.path.join(work, "fake-data"), "--quiet"], self.api_port, "fake-growingio")

        if not webdav:
            return
        self.remote_dir = os.path.join(work, "remote")
        os.makedirs(self.remote_dir)
        self.webdav_port = free_port()
        self.start(["rclone", "serve", "webdav", self.remote_dir, "--addr", f"127.0.0.1:{self.webdav_port}"],
                   self.webdav_port, "rclone serve webdav", env=rclone_env())

    def start(self, argv, port, what, env=None):
        log = open(os.path.join(self.work, f"{os.path.basename(argv[0])}.log"), "wb")
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=env)
        self.processes.append(process)
        wait_port(port, process, what)

    def cpu(self):
        """CPU seconds each server used so far: {nginx, fake, webdav}."""
        return {what: cpu_seconds(process.pid)[0]
                for what, process in zip(("nginx", "fake", "webdav"), self.processes)}

    def remote(self, path):
        return f":webdav,url='http://127.0.0.1:{self.webdav_port}':{path}"

    def stop(self):
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_slot_done(process, log_path, timeout, done_signs, failure_signs):
    """Follows the daemon's log until the line that has every one of `done_signs`:
    (that line, the log's lines). A line with one of `failure_signs` stops the benchmark
    at once: a setup fault (a link nginx does not serve, a remote rclone cannot write)
    would only be retried. So do the daemon's exit and `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the daemon exited with {process.returncode}:\n{tail(log_path)}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the slot was not done in time:\n{tail(log_path)}")
        with open(log_path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        failed = next((line for line in lines if any(sign in line for sign in failure_signs)), None)
        if failed:
            raise SystemExit(f"the slot failed:\n{failed}")
        done = next((line for line in lines if all(sign in line for sign in done_signs)), None)
        if done:
            return done, lines
        time.sleep(0.05)


def peak_rss_mib(pid):
    """The process's peak resident memory (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def rclone_env():
    env = dict(os.environ)
    env["RCLONE_CONFIG"] = os.devnull  # not the machine's rclone.conf
    return env


def write_config(run_dir, servers, sink_path):
    lines = [
        "state_db: state.db",
        "archive_dir: archive",
        f'http: {{api_base: "http://127.0.0.1:{servers.api_port}", timeout: 60s}}',
        "limits: {api_requests_per_second: 2, parallel_downloads: 4}",
        'metrics: {listen: ""}',
        "log: {level: debug}",
        "projects:",
        f"  - {{name: shop, ai: {AI}, project_uid: nxog09md, auth: {{token_env: GIO_BENCH_TOKEN}}}}",
    ]
    job = ("  - {name: bench, project: shop, kind: raw, granularity: hour, data_types: [visit], "
           "ready_after: 40m, poll_every: 2s, backfill: 2h, verify: gzip")
    if sink_path is not None:
        lines += ["sinks:",
                  f"  - {{name: lake, rclone_remote: \"{servers.remote(sink_path)}\", keep_local: 2d}}"]
        job += ", sink: lake"
    lines += ["jobs:", job + "}"]
    path = os.path.join(run_dir, "config.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def daemon_run(binary, run_dir, servers, sink_path, cpu, logs=None, watch=None):
    """Runs the daemon until its slot is done: (seconds from the API call to slot_done,
    of them the seconds after slot_downloaded (the landing; 0 without a sink), peak RSS
    in MiB, the partition's local folder, the slot_done line). Fills `cpu` with the CPU
    seconds of the daemon, of its rclone children and of the servers during the run.
    `watch`, if given, is called with the daemon's process once it has started."""
    os.makedirs(run_dir)
    config = write_config(run_dir, servers, sink_path)
    env = dict(os.environ, GIO_BENCH_TOKEN=TOKEN, GIO_EXPORTER_NOW=NOW, RCLONE_CONFIG=os.devnull)
    env.pop("JOURNAL_STREAM", None)
    log_path = os.path.join(run_dir, "daemon.log")
    servers_before = servers.cpu()
    with open(log_path, "wb") as log:
        process = subprocess.Popen([binary, "-c", config, "run"], env=env, cwd=run_dir, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
    if watch:
        watch(process)
    try:
        done, lines = wait_slot_done(process, log_path, 600, ("event=slot_done",),
                                     ("event=slot_failed", "event=upload_failed", "link_rejected"))
        rss = peak_rss_mib(process.pid)
        cpu["daemon"], cpu["rclone"] = cpu_seconds(process.pid)
        cpu.update({what: seconds - servers_before[what] for what, seconds in servers.cpu().items()})
    finally:
        process.terminate()
        process.wait(60)
        if logs:
            shutil.copy(log_path, os.path.join(logs, os.path.basename(run_dir) + ".log"))
    asked = next(line for line in lines if "api call" in line)
    seconds = (stamp_of(done) - stamp_of(asked)).total_seconds()
    downloaded = next((line for line in lines if "event=slot_downloaded" in line), None)
    landing = (stamp_of(done) - stamp_of(downloaded)).total_seconds() if downloaded else 0.0
    slot = re.search(r"slot=(\S+)", done).group(1)
    day, hour = slot.split("T")
    local_dir = os.path.join(run_dir, "archive", "bench", "visit", f"dt={day}", f"hour={hour}")
    return seconds, landing, rss, local_dir, done


def rclone_processes(log_path):
    """How many rclone processes the daemon ran (its debug line for each)."""
    with open(log_path, encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if re.search(r'msg="rclone \S+ .*: exit -?\d+ after', line))


def check_remote(servers, path, local_dir):
    """The remote partition holds what the local one does, byte counts alike, _SUCCESS too."""
    remote_dir = os.path.join(servers.remote_dir, path)
    local = {name: os.path.getsize(os.path.join(local_dir, name)) for name in os.listdir(local_dir)}
    remote = {name: os.path.getsize(os.path.join(remote_dir, name)) for name in os.listdir(remote_dir)}
    if "_SUCCESS" not in remote or {k: v for k, v in local.items() if k != "_manifest.json"} != \
            {k: v for k, v in remote.items() if k != "_manifest.json"}:
        raise SystemExit(f"the remote {path} differs from {local_dir}: {sorted(remote)} vs {sorted(local)}")


def measure(args, work, servers):
    runs = []
    for r in range(args.rounds):
        run = {}

        def download_then_copy():
            print(f"round {r + 1}: download, then rclone copy ...", file=sys.stderr)
            os.sync()
            cpu = {}
            download, _, rss, local_dir, _ = daemon_run(args.bin, os.path.join(work, f"download-{r}"), servers,
                                                         None, cpu, args.logs)
            relative = os.path.relpath(local_dir, os.path.join(work, f"download-{r}", "archive"))
            os.sync()
            servers_before = servers.cpu()
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.monotonic()
            subprocess.run(["rclone", "copy", local_dir, servers.remote(f"copy-{r}/{relative}")],
                           env=rclone_env(), check=True, stdin=subprocess.DEVNULL)
            copy = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu["copy rclone"] = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
            cpu["copy webdav"] = servers.cpu()["webdav"] - servers_before["webdav"]
            check_remote(servers, f"copy-{r}/{relative}", local_dir)
            run.update(download_s=download, copy_s=copy, then_s=download + copy, download_rss_mib=rss,
                       download_cpu=cpu)

        def sink():
            print(f"round {r + 1}: sink ...", file=sys.stderr)
            os.sync()
            cpu = {}
            wall, landing, rss, local_dir, done = daemon_run(args.bin, os.path.join(work, f"sink-{r}"), servers,
                                                             f"sink-{r}", cpu, args.logs)
            if "sink=lake" not in done:
                raise SystemExit(f"slot_done without sink=lake: this binary has no sinks yet:\n{done}")
            relative = os.path.relpath(local_dir, os.path.join(work, f"sink-{r}", "archive"))
            check_remote(servers, f"sink-{r}/{relative}", local_dir)
            run.update(sink_s=wall, sink_download_s=wall - landing, sink_landing_s=landing, sink_rss_mib=rss,
                       sink_cpu=cpu, rclone_processes=rclone_processes(os.path.join(work, f"sink-{r}", "daemon.log")),
                       checksum=(re.search(r"checksum=(\S+)", done) or [None, "?"])[1])

        # every other round the sink goes first, so that neither way always meets the
        # page cache and the writeback the other left behind
        for step in ((download_then_copy, sink) if r % 2 == 0 else (sink, download_then_copy)):
            step()
        runs.append(run)
        # the round's copies (a few GiB at full size) are not needed any more
        for folder in (f"download-{r}", f"sink-{r}", os.path.join("remote", f"copy-{r}"),
                       os.path.join("remote", f"sink-{r}")):
            shutil.rmtree(os.path.join(work, folder), ignore_errors=True)
    return runs


def arguments(doc, extra=()):
    """The options of a benchmark over the cached parts (this one and
    bench_daemon_path.py), plus `extra` ((flag, add_argument keywords) pairs); parsed,
    with the paths made absolute, and a SIGTERM (timeout, Ctrl-C's cousin) made an exit
    that still stops the servers and removes the folder."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--cache", required=True, help="the folder of part-NNNNN.csv.gz files")
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    parser.add_argument("--logs", help="copy each run's daemon log (debug) into this folder")
    for flag, keywords in extra:
        parser.add_argument(flag, **keywords)
    args = parser.parse_args()
    args.bin, args.cache = os.path.abspath(args.bin), os.path.abspath(args.cache)
    if args.logs:
        os.makedirs(args.logs, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return args


def main():
    args = arguments(__doc__, [("--keep", dict(action="store_true", help="keep the work folder"))])
    work = tempfile.mkdtemp(prefix="gio-bench-sink-")
    servers = None
    try:
        servers = Servers(work, args.cache, args.files)
        runs = measure(args, work, servers)
    finally:
        if servers:
            servers.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    median = {key: statistics.median(run[key] for run in runs)
              for key in ("download_s", "copy_s", "then_s", "sink_s", "sink_download_s", "sink_landing_s")}
    rss = {key: max(run[key] for run in runs) for key in ("download_rss_mib", "sink_rss_mib")}
    mib = servers.bytes / (1 << 20)
    # Ratios are taken within each round (its two ways ran back to back, under the same
    # load from the rest of the machine), then the median of the rounds'.
    ratio = lambda a, b: statistics.median(run[a] / run[b] for run in runs)
    figures = {"files": args.files, "mib": mib, "rounds": args.rounds, "cores": os.cpu_count(), "runs": runs,
               **median, **rss, "checksum": runs[0]["checksum"],
               "sink_vs_then": ratio("sink_s", "then_s"), "sink_vs_download": ratio("sink_s", "download_s"),
               "landing_vs_copy": ratio("sink_landing_s", "copy_s"),
               "load": open("/proc/loadavg").read().split()[0]}
    label = f"{args.files} x {mib / args.files:.0f} MiB"
    print(f"\nsink benchmark: one slot of {label} to rclone serve webdav on loopback, "
          f"{figures['cores']} cores (load {figures['load']} at the end), medians of {args.rounds} round(s); "
          f"ratios within each round")
    print("%-44s %8s %9s %9s" % ("path", "wall s", "ratio", "RSS MiB"))
    print("%-44s %8.2f %9s %9.1f" % ("(i) download alone (no sink)", median["download_s"], "", rss["download_rss_mib"]))
    print("%-44s %8.2f %9s %9s" % ("    rclone copy of the partition", median["copy_s"], "", ""))
    print("%-44s %8.2f %9s %9s" % ("(ii) download, then rclone copy", median["then_s"], "", ""))
    print("%-44s %8.2f %9s %9.1f" % ("sink: download to remote _SUCCESS", median["sink_s"],
                                      "%.2f x (ii)" % figures["sink_vs_then"], rss["sink_rss_mib"]))
    print("%-44s %8s %9s" % ("", "", "%.2f x (i)" % figures["sink_vs_download"]))
    print("%-44s %8.2f" % ("    of it: API call to slot_downloaded", median["sink_download_s"]))
    print("%-44s %8.2f %9s" % ("    of it: slot_downloaded to slot_done (land)", median["sink_landing_s"],
                                "%.2f x copy" % figures["landing_vs_copy"]))
    print(f"checksum checked on the remote: {figures['checksum']}")
    cpu_text = lambda cpu: " ".join(f"{what} {seconds:.2f}" for what, seconds in cpu.items())
    for r, run in enumerate(runs):
        print(f"round {r + 1}: sink {run['sink_s']:.2f} s (land {run['sink_landing_s']:.2f} s) vs "
              f"{run['then_s']:.2f} s (download {run['download_s']:.2f} + copy {run['copy_s']:.2f}): "
              f"{run['sink_s'] / run['then_s']:.2f} x, land {run['sink_landing_s'] / run['copy_s']:.2f} x copy")
        print(f"  CPU s, sink run: {cpu_text(run['sink_cpu'])} (sum {sum(run['sink_cpu'].values()):.2f}); "
              f"download then copy: {cpu_text(run['download_cpu'])} (sum {sum(run['download_cpu'].values()):.2f}); "
              f"rclone processes of the sink run: {run['rclone_processes']}")
    passed = figures["sink_vs_then"] <= 1.0
    print("target sink <= 1.0 x (ii): %s; aim 0.8 x: %s" % ("PASS" if passed else "FAIL",
                                                          "met" if figures["sink_vs_then"] <= 0.8 else "not met"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
