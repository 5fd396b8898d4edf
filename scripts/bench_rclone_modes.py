#!/usr/bin/env python3
"""rclone per step or one `rclone rcd`: the cost of landing partitions both ways (issue 15).

Lands PARTITIONS partitions of small parts and LARGE_PARTITIONS partitions of large parts
on two remotes on loopback: rclone's local backend (`:local:`) and a WebDAV server that
rclone serves (`rclone serve webdav`), each partition with the steps the daemon's sink
takes, two ways:
  per-step  one rclone process per step, as daemon/sink runs them: `lsjson --hash` of the
            partition (what is there already), `copy --files-from-raw` of its parts,
            `lsjson --hash` again (the check), `copyto` of _manifest.json, `copyto` of
            _SUCCESS;
  rcd       one `rclone rcd` on loopback (--rc-no-auth), started once, and the same steps
            as rc calls made with curl: operations/list, sync/copy (with a FilesFromRaw
            filter), operations/list, operations/copyfile, operations/copyfile.
Both see the remote the way the daemon does: an alias remote named giosink defined in
the environment (RCLONE_CONFIG_GIOSINK_TYPE=alias, RCLONE_CONFIG_GIOSINK_REMOTE=...).
Prints, per remote and set: the median and 90th percentile latency of a partition, the
total, the ratio rcd / per-step and the peak RSS of rclone (the largest child's for
per-step, the daemon's VmHWM for rcd), and rcd's start-up time.

Usage: scripts/bench_rclone_modes.py [--partitions 20] [--small-parts 10] [--small-kib 128]
         [--large-partitions 3] [--large-parts 4] [--large-mib 32] [--remotes local,webdav]
         [--json OUT] [--keep]
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HASH_PREFERENCE = ("md5", "sha1")  # the checksums the sink records, best first


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, process, what, timeout=20):
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


def sink_env(remote):
    """The child's environment as the daemon builds it: the remote only in the env."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env["RCLONE_CONFIG_GIOSINK_TYPE"] = "alias"
    env["RCLONE_CONFIG_GIOSINK_REMOTE"] = remote
    # no rclone.conf of the machine: an empty one, so rclone does not look for the default
    env["RCLONE_CONFIG"] = os.devnull
    return env


def peak_rss_of(argv, env, ok=(0,)):
    """Runs one child; returns (its stdout, its peak RSS in KiB). os.wait4 reaps it with
    its own rusage; stderr goes to a file so that neither pipe can fill and block it."""
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=err)
        out = process.stdout.read()
        process.stdout.close()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode not in ok:
            err.seek(0)
            raise SystemExit(f"rclone {argv[1]} exited {process.returncode}: {err.read().decode()[-500:]}")
    return out, usage.ru_maxrss


def make_set(root, name, parts, size):
    folder = os.path.join(root, "src", name)
    os.makedirs(folder, exist_ok=True)
    names = []
    for i in range(parts):
        part = f"part-{i:05d}.csv.gz"
        with open(os.path.join(folder, part), "wb") as f:
            left = size
            while left:
                block = os.urandom(min(left, 1 << 20))
                f.write(block)
                left -= len(block)
        names.append(part)
    # a manifest of the shape the daemon writes (a few hundred bytes a file)
    manifest = {"files": [{"name": n, "bytes": size, "sha256": "0" * 64, "remote_hash": "0" * 32}
                          for n in names], "remote_checksum": "md5"}
    with open(os.path.join(folder, "_manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    open(os.path.join(folder, "_SUCCESS"), "wb").close()
    listing = os.path.join(root, f"{name}.files")
    with open(listing, "w") as f:
        f.write("".join(n + "\n" for n in names))
    return folder, listing, names


def hash_type(env):
    out, _ = peak_rss_of(["rclone", "backend", "features", "giosink:"], env)
    hashes = json.loads(out).get("Hashes") or []
    return next((h for h in HASH_PREFERENCE if h in hashes), None)


def per_step(env, folder, listing, prefix, hashes):
    lsjson = ["rclone", "lsjson", "--files-only"] + (["--hash", "--hash-type", hashes] if hashes else [])
    rss = 0
    started = time.monotonic()
    # 3: directory not found, the usual answer for a partition not landed yet
    _, r = peak_rss_of(lsjson + [f"giosink:{prefix}"], env, ok=(0, 3))
    rss = max(rss, r)
    _, r = peak_rss_of(["rclone", "copy", "--files-from-raw", listing, folder, f"giosink:{prefix}"], env)
    rss = max(rss, r)
    out, r = peak_rss_of(lsjson + [f"giosink:{prefix}"], env)
    rss = max(rss, r)
    listed = len(json.loads(out))
    for name in ("_manifest.json", "_SUCCESS"):
        _, r = peak_rss_of(["rclone", "copyto", os.path.join(folder, name), f"giosink:{prefix}/{name}"], env)
        rss = max(rss, r)
    return time.monotonic() - started, rss, listed


def rc_call(port, path, body, ok=(200,)):
    result = subprocess.run(["curl", "-sS", "-X", "POST", "-H", "Content-Type: application/json",
                             "--data-binary", "@-", "-w", "\n%{http_code}",
                             f"http://127.0.0.1:{port}/{path}"],
                            input=json.dumps(body).encode(), capture_output=True, check=True)
    text, code = result.stdout.decode().rsplit("\n", 1)
    if int(code) not in ok:
        raise SystemExit(f"rc {path} answered {code}: {text[-500:]}")
    return json.loads(text) if text.strip() else {}


def rcd_step(port, folder, listing, prefix, hashes):
    opt = {"filesOnly": True, "showHash": bool(hashes)}
    if hashes:
        opt["hashTypes"] = [hashes]
    started = time.monotonic()
    rc_call(port, "operations/list", {"fs": "giosink:", "remote": prefix, "opt": opt}, ok=(200, 404))
    rc_call(port, "sync/copy", {"srcFs": folder, "dstFs": f"giosink:{prefix}",
                                "_filter": {"FilesFromRaw": [listing]}})
    listed = len(rc_call(port, "operations/list", {"fs": "giosink:", "remote": prefix, "opt": opt})["list"])
    for name in ("_manifest.json", "_SUCCESS"):
        rc_call(port, "operations/copyfile", {"srcFs": folder, "srcRemote": name, "dstFs": "giosink:",
                                              "dstRemote": f"{prefix}/{name}"})
    return time.monotonic() - started, listed


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def summary(latencies, rss_kib, extra=None):
    latencies = sorted(latencies)
    p90 = latencies[min(len(latencies) - 1, int(round(0.9 * (len(latencies) - 1))))]
    result = {"partitions": len(latencies), "median_s": statistics.median(latencies), "p90_s": p90,
              "total_s": sum(latencies), "peak_rss_mib": rss_kib / 1024}
    result.update(extra or {})
    return result


def bench_remote(remote_name, remote, work, sets):
    env = sink_env(remote)
    hashes = hash_type(env)
    figures = {"checksum": hashes or "none", "sets": {}}
    # rcd: started once per remote, as a daemon would keep it for its life
    port = free_port()
    started = time.monotonic()
    rcd = subprocess.Popen(["rclone", "rcd", "--rc-addr", f"127.0.0.1:{port}", "--rc-no-auth"], env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, rcd, "rclone rcd")
        rc_call(port, "rc/noop", {})
        figures["rcd_start_s"] = time.monotonic() - started
        for set_name, (folder, listing, names, partitions) in sets.items():
            want = len(names) + 2
            walls, rss = [], 0
            for p in range(partitions):
                wall, r, listed = per_step(env, folder, listing, f"per-step/{set_name}/dt=2026-11-{p:03d}", hashes)
                if listed != len(names):
                    raise SystemExit(f"per-step: {listed} parts listed, {len(names)} landed")
                walls.append(wall)
                rss = max(rss, r)
            step_figures = summary(walls, rss)
            walls = []
            for p in range(partitions):
                wall, listed = rcd_step(port, folder, listing, f"rcd/{set_name}/dt=2026-11-{p:03d}", hashes)
                if listed != len(names):
                    raise SystemExit(f"rcd: {listed} parts listed, {len(names)} landed")
                walls.append(wall)
            rcd_figures = summary(walls, vm_hwm_kib(rcd.pid))
            figures["sets"][set_name] = {"files_per_partition": want, "per_step": step_figures,
                                         "rcd": rcd_figures,
                                         "ratio": rcd_figures["total_s"] / step_figures["total_s"]}
            print(f"  {remote_name} {set_name}: per-step {step_figures['total_s']:.2f} s, "
                  f"rcd {rcd_figures['total_s']:.2f} s", file=sys.stderr)
    finally:
        rcd.terminate()
        rcd.wait(10)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--small-parts", type=int, default=10)
    parser.add_argument("--small-kib", type=int, default=128)
    parser.add_argument("--large-partitions", type=int, default=3)
    parser.add_argument("--large-parts", type=int, default=4)
    parser.add_argument("--large-mib", type=int, default=32)
    parser.add_argument("--remotes", default="local,webdav")
    parser.add_argument("--json", help="write the figures here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if not shutil.which("rclone") or not shutil.which("curl"):
        raise SystemExit("bench_rclone_modes: rclone and curl are needed (scripts/setup.sh)")
    version = subprocess.run(["rclone", "version"], capture_output=True, text=True).stdout.split("\n")[0]
    work = tempfile.mkdtemp(prefix="gio-bench-rclone-")
    webdav = None
    try:
        sets = {}
        small = make_set(work, "small", args.small_parts, args.small_kib << 10)
        sets[f"{args.small_parts} x {args.small_kib} KiB"] = small + (args.partitions,)
        large = make_set(work, "large", args.large_parts, args.large_mib << 20)
        sets[f"{args.large_parts} x {args.large_mib} MiB"] = large + (args.large_partitions,)
        figures = {"rclone": version, "cores": os.cpu_count(), "remotes": {}}
        for remote_name in args.remotes.split(","):
            target = os.path.join(work, f"remote-{remote_name}")
            os.makedirs(target)
            if remote_name == "local":
                remote = f":local:{target}"
            elif remote_name == "webdav":
                port = free_port()
                webdav = subprocess.Popen(["rclone", "serve", "webdav", target, "--addr", f"127.0.0.1:{port}"],
                                          env=sink_env(":local:/nonexistent"), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_port(port, webdav, "rclone serve webdav")
                remote = f":webdav,url='http://127.0.0.1:{port}':"
            else:
                raise SystemExit(f"unknown remote {remote_name}: local or webdav")
            print(f"measuring {remote_name} ...", file=sys.stderr)
            figures["remotes"][remote_name] = bench_remote(remote_name, remote, work, sets)
            if webdav is not None:
                webdav.terminate()
                webdav.wait(10)
                webdav = None
    finally:
        if webdav is not None:
            webdav.terminate()
            webdav.wait(10)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nrclone per step vs rclone rcd ({version}, {figures['cores']} cores, loopback)")
    print("%-7s %-16s %-9s %5s %12s %12s %9s %8s %9s" % (
        "remote", "partition", "mode", "parts", "median ms", "p90 ms", "total s", "ratio", "RSS MiB"))
    for remote_name, entry in figures["remotes"].items():
        for set_name, s in entry["sets"].items():
            for mode in ("per_step", "rcd"):
                m = s[mode]
                ratio = "" if mode == "per_step" else "%.2f x" % s["ratio"]
                print("%-7s %-16s %-9s %5d %12.0f %12.0f %9.2f %8s %9.1f" % (
                    remote_name, set_name, mode.replace("_", "-"), m["partitions"], m["median_s"] * 1000,
                    m["p90_s"] * 1000, m["total_s"], ratio, m["peak_rss_mib"]))
        print("%-7s checksum %s; rcd start-up %.0f ms (once per daemon)" % (
            remote_name, entry["checksum"], entry["rcd_start_s"] * 1000))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
