#!/usr/bin/env bash
# README command 1: build gio-exporter and watch it archive a backlog from the fake
# GrowingIO server (scripts/fake-growingio) on a free loopback port.
#
# Everything it makes lives in demo/ (wiped first, so it can run again). The clock
# of the server and the daemon starts at DEMO_NOW (default 2026-11-22T10:10:00Z =
# 18:10 Beijing), so the demo looks the same every time:
#   shop-hourly  backfill 14h -> 12 hourly slots, Beijing 2026-11-22T05 .. T16;
#                T15 answers RUNNING for its first 3 asks, T09 is NOT_EXISTS (a gap)
#   shop-daily   backfill 2d  -> 1 daily slot, 2026-11-21, also landed on a sink: a WebDAV
#                remote that `rclone serve webdav` serves on loopback from demo/remote/
#                (skipped, with a note, when rclone is missing or the build has no sinks)
#   shop-charts  a chart job: charts YoX28w7R (answers "doing" twice first) and bigNum1
#                (a big-number chart), 1 daily slot, 2026-11-21 -> chart.json + chart.csv
# BUILD_DIR picks the build folder (default: build), as in scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [[ -x scripts/setup.sh ]]; then
  scripts/setup.sh
fi

build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target gio-exporter
bin=$(cd "$build_dir" && pwd)/gio-exporter

demo=$root/demo
rm -rf "$demo"
mkdir -p "$demo"

server_pid=""
daemon_pid=""
webdav_pid=""
cleanup() {
  local status=$? pid
  for pid in "$daemon_pid" "$server_pid" "$webdav_pid"; do
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export GIO_EXPORTER_NOW=${DEMO_NOW:-2026-11-22T10:10:00Z}

cat >"$demo/scenario.json" <<'EOF'
{
  "token": "demo-token",
  "ai": "2a1b4018cd954ec2bcc69da5138bdb96",
  "rows": 3000,
  "charts": {
    "YoX28w7R": {"doing_polls": 2},
    "bigNum1": {"type": "bignumber"}
  },
  "slots": {
    "2026-11-22T15": {"running_polls": 3},
    "2026-11-22T09": {"status": "NOT_EXISTS"}
  }
}
EOF

scripts/fake-growingio --port 0 --port-file "$demo/fake.port" --scenario "$demo/scenario.json" \
  --now "$GIO_EXPORTER_NOW" --data-dir "$demo/fake-data" --quiet >"$demo/fake-growingio.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  [[ -s "$demo/fake.port" ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$demo/fake-growingio.log"; exit 1; }
  sleep 0.1
done
port=$(cat "$demo/fake.port")
echo "demo: fake GrowingIO on http://127.0.0.1:$port, clock at $GIO_EXPORTER_NOW"

# The sink's remote: a WebDAV server that rclone serves from demo/remote/ on loopback.
sink_remote=""
if command -v rclone >/dev/null; then
  webdav_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$demo/remote"
  RCLONE_CONFIG=/dev/null rclone serve webdav "$demo/remote" --addr "127.0.0.1:$webdav_port" \
    >"$demo/rclone-webdav.log" 2>&1 &
  webdav_pid=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$webdav_port/" && break
    kill -0 "$webdav_pid" 2>/dev/null || { cat "$demo/rclone-webdav.log"; exit 1; }
    sleep 0.1
  done
  sink_remote=":webdav,url='http://127.0.0.1:$webdav_port':lake"
  echo "demo: WebDAV remote (rclone serve webdav of demo/remote) on http://127.0.0.1:$webdav_port"
else
  echo "demo: rclone is not installed (scripts/setup.sh installs it): no sink in this run"
fi

printf 'demo-token\n' >"$demo/shop.token"
chmod 600 "$demo/shop.token"
cat >"$demo/config.yaml" <<EOF
# Written by scripts/demo.sh; relative paths are relative to this folder.
state_db: state.db
archive_dir: archive
http: {api_base: "http://127.0.0.1:$port", timeout: 10s}
limits: {api_requests_per_second: 2, parallel_downloads: 4}
metrics: {listen: ""}
log: {level: info}
projects:
  - name: shop
    ai: 2a1b4018cd954ec2bcc69da5138bdb96
    project_uid: nxog09md
    auth: {token_file: shop.token}
jobs:
  - name: shop-hourly
    project: shop
    kind: raw
    granularity: hour
    data_types: all
    ready_after: 40m
    poll_every: 2s
    give_up_after: 24h
    backfill: 14h
    link_expire: 60m
    verify: gzip
  - name: shop-daily
    project: shop
    kind: raw
    granularity: day
    data_types: all
    ready_after: 3h
    poll_every: 2s
    give_up_after: 24h
    backfill: 2d
    link_expire: 60m
    verify: gzip
    # @SINK@
  - name: shop-charts
    project: shop
    kind: chart
    charts: [YoX28w7R, bigNum1]
    granularity: day
    interval: 1d
    ready_after: 6h
    poll_every: 2s
    give_up_after: 24h
    backfill: 2d
EOF

# shop-daily's partitions also land on the WebDAV remote, parts first, _SUCCESS last; the
# local copy stays for keep_local. A build without sinks refuses the keys: the demo then
# runs as before, without the sink.
sink_used=0
if [[ -n "$sink_remote" ]]; then
  cp "$demo/config.yaml" "$demo/config-no-sink.yaml"
  python3 - "$demo/config.yaml" "$sink_remote" <<'PY'
import sys
path, remote = sys.argv[1], sys.argv[2]
text = open(path).read().replace("    # @SINK@\n", "    sink: lake\n")
text = text.replace("\njobs:\n", "\nsinks:\n  - name: lake\n    rclone_remote: \"%s\"\n"
                    "    keep_local: 2d\njobs:\n" % remote.replace('"', '\\"'), 1)
open(path, "w").write(text)
PY
  if "$bin" -c "$demo/config.yaml" check-config --no-secrets >"$demo/check-sink.log" 2>&1; then
    sink_used=1
  elif grep -q "unknown key 'sinks'" "$demo/check-sink.log"; then
    echo "demo: this build has no sinks yet: shop-daily stays local only"
    mv "$demo/config-no-sink.yaml" "$demo/config.yaml"
  else
    cat "$demo/check-sink.log" >&2
    exit 1
  fi
  rm -f "$demo/config-no-sink.yaml"
fi
sed -i '/# @SINK@/d' "$demo/config.yaml"

"$bin" -c "$demo/config.yaml" check-config
"$bin" -c "$demo/config.yaml" run >"$demo/daemon.log" 2>&1 &
daemon_pid=$!
echo "demo: daemon running (pid $daemon_pid, log demo/daemon.log); waiting for the backlog"

# Done when 11 of the 12 hours (one is NOT_EXISTS), the day and the charts' day are archived.
backlog_done() {
  "$bin" -c "$demo/config.yaml" status --json | python3 -c '
import json, sys
want = {"shop-hourly": 11, "shop-daily": 1, "shop-charts": 1}
jobs = {j["job"]: j["counts"]["done"] for j in json.load(sys.stdin)["jobs"]}
sys.exit(0 if all(jobs.get(job, 0) >= n for job, n in want.items()) else 1)'
}
deadline=$((SECONDS + 120))
until backlog_done; do
  if ((SECONDS > deadline)) || ! kill -0 "$daemon_pid" 2>/dev/null; then
    echo "demo: the backlog was not archived in time; last lines of the daemon's log:" >&2
    tail -n 30 "$demo/daemon.log" >&2
    exit 1
  fi
  sleep 0.5
done

kill -TERM "$daemon_pid"
wait "$daemon_pid"
daemon_pid=""

echo
echo "== gio-exporter status"
"$bin" -c "$demo/config.yaml" status
echo
echo "== gio-exporter gaps (exit 2: there is a gap, the NOT_EXISTS hour)"
"$bin" -c "$demo/config.yaml" gaps || true
echo
echo "== archive (bytes, path)"
(cd "$demo/archive" && find . -path ./.staging -prune -o -type f -printf '%10s  %p\n' | sort -k2)
echo
echo "== a chart as CSV (archive/shop-charts/YoX28w7R/dt=2026-11-21/chart.csv)"
cat "$demo/archive/shop-charts/YoX28w7R/dt=2026-11-21/chart.csv"
if ((sink_used)); then
  echo
  echo "== the sink's events: the slot archived locally, then landed (demo/daemon.log)"
  grep -E 'event=(slot_downloaded|slot_done|upload_failed) job=shop-daily' "$demo/daemon.log" || true
  echo
  echo "== the sink lake's remote (rclone lsf -R of the WebDAV remote; bytes, path): shop-daily"
  RCLONE_CONFIG=/dev/null rclone lsf -q -R --files-only --format sp --separator '  ' "$sink_remote" |
    awk -F'  ' '{ printf "%10s  %s\n", $1, $2 }' | sort -k2
fi
