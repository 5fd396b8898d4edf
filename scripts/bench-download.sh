#!/usr/bin/env bash
# Download benchmark: `gio-exporter fetch` against what a script would do with curl.
#
# Serves gzip CSV files from nginx on loopback (its own prefix and config in a temp
# folder, on a free port, stopped at the end) and measures, in one run:
#   (a) per file: curl -s -o, then gzip -t, then sha256sum (sequential)
#   (b) bare curl -s -o of every file (sequential)
#   gio-exporter fetch --verify gzip and --verify size (parallel 4)
# for 16 files of 64 MiB and for one 1 GiB file, with wall times and peak RSS.
# Targets: gzip mode <= 0.6 x (a); size mode <= 1.3 x (b); peak RSS < 32 MiB for 1 GiB.
#
# Usage: scripts/bench-download.sh            (GIO_EXPORTER_BIN=path to use a built binary)
# Environment: BENCH_DIR (default build-bench/; the generated files are cached there),
#              BENCH_FILES (default 16), BENCH_PARALLEL (default 4).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bench_dir=${BENCH_DIR:-$root/build-bench}
cache=$bench_dir/cache
files=${BENCH_FILES:-16}
parallel=${BENCH_PARALLEL:-4}
part_bytes=$((64 << 20))

for tool in nginx curl gzip sha256sum python3; do
  command -v "$tool" >/dev/null || { echo "bench-download: $tool is needed" >&2; exit 1; }
done

bin=${GIO_EXPORTER_BIN:-}
if [[ -z $bin ]]; then
  if [[ ! -f $root/build/build.ninja && ! -f $root/build/Makefile ]]; then
    cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$root/build" --target gio-exporter
  bin=$root/build/gio-exporter
fi

# ---------------------------------------------------------------------------
# Test data, generated once: CSV rows shaped like a raw event export, gzip --fast,
# each part close to 64 MiB compressed. The 1 GiB file is the parts concatenated:
# a multi-member gzip, as valid as a single stream and inflated the same way.
mkdir -p "$cache"
generate_rows() {  # generate_rows SEED BYTES: CSV rows on stdout, about BYTES of them
  python3 - "$1" "$2" <<'EOF'
import random, sys
seed, limit = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
hexdigits = "0123456789abcdef"
users = ["".join(rng.choice(hexdigits) for _ in range(32)) for _ in range(20000)]
pages = ["/product/%d" % rng.randrange(100000) for _ in range(3000)] + \
        ["/category/%s" % w for w in ("shoes", "bags", "phones", "books", "toys")]
events = ["page", "visit", "action", "custom_event", "pvar", "evar"]
cities = ["Beijing", "Shanghai", "Guangzhou", "Shenzhen", "Hangzhou", "Chengdu", "Wuhan"]
browsers = ["Chrome 119", "Safari 17", "WeChat 8.0", "Edge 119", "Firefox 120"]
tm = 1700000000000 + seed * 3600000
out = sys.stdout
written = 0
header = "ai,u,s,tm,t,d,p,q,rp,city,b,cs1,x,y,var\n"
out.write(header)
written += len(header)
while written < limit:
    rows = []
    for _ in range(2000):
        tm += rng.randrange(1, 400)
        u = rng.choice(users)
        row = '2a1b4018cd954ec2bcc69da5138bdb96,%s,%s,%d,%s,shop.example.com,%s,"k=%d",%s,%s,"%s",%s,%d,%d,"{""sku"":""%d"",""price"":%d.%02d}"\n' % (
            u, "".join(rng.choice(hexdigits) for _ in range(16)), tm, rng.choice(events),
            rng.choice(pages), rng.randrange(1000), rng.choice(pages), rng.choice(cities),
            rng.choice(browsers), "user:%d" % rng.randrange(10**7), rng.randrange(1920),
            rng.randrange(1080), rng.randrange(10**6), rng.randrange(10000), rng.randrange(100))
        rows.append(row)
    chunk = "".join(rows)
    out.write(chunk)
    written += len(chunk)
EOF
}

if [[ ! -f $cache/ratio ]]; then
  sample=$((16 << 20))
  compressed=$(generate_rows 0 $sample | gzip --fast | wc -c)
  python3 -c "print($sample / $compressed)" >"$cache/ratio"
fi
ratio=$(cat "$cache/ratio")
raw_bytes=$(python3 -c "print(int($part_bytes * $ratio))")
for ((i = 0; i < files; i++)); do
  part=$cache/part-$(printf %05d "$i").csv.gz
  if [[ ! -f $part ]]; then
    echo "generating $part ..." >&2
    generate_rows "$((i + 1))" "$raw_bytes" | gzip --fast >"$part.tmp"
    mv "$part.tmp" "$part"
  fi
done
big=$cache/all-parts-1gib.csv.gz
if [[ ! -f $big ]]; then
  echo "generating $big ..." >&2
  cat "$cache"/part-*.csv.gz >"$big.tmp"
  mv "$big.tmp" "$big"
fi

# ---------------------------------------------------------------------------
# nginx on a free loopback port, serving the cache folder.
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/gio-bench.XXXXXX")
nginx_pid=
cleanup() {
  if [[ -n $nginx_pid ]]; then
    kill "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
  fi
  rm -rf "$run_dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$run_dir/nginx/logs" "$run_dir/nginx/tmp" "$run_dir/out"
cat >"$run_dir/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $run_dir/nginx/logs/error.log warn;
pid $run_dir/nginx/nginx.pid;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  client_body_temp_path $run_dir/nginx/tmp/body;
  proxy_temp_path $run_dir/nginx/tmp/proxy;
  fastcgi_temp_path $run_dir/nginx/tmp/fastcgi;
  uwsgi_temp_path $run_dir/nginx/tmp/uwsgi;
  scgi_temp_path $run_dir/nginx/tmp/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$port;
    root $cache;
  }
}
EOF
nginx -p "$run_dir/nginx" -c "$run_dir/nginx/nginx.conf" -e "$run_dir/nginx/logs/error.log" &
nginx_pid=$!
for _ in $(seq 50); do
  curl -s -o /dev/null "http://127.0.0.1:$port/ratio" && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$port/ratio" || { echo "nginx did not start" >&2; exit 1; }

part_urls=()
for ((i = 0; i < files; i++)); do
  # A query string like a signed link's: it must not end up in names or output.
  part_urls+=("http://127.0.0.1:$port/part-$(printf %05d "$i").csv.gz?sign=bench&expires=0")
done
big_urls=("http://127.0.0.1:$port/all-parts-1gib.csv.gz?sign=bench")

# measure LABEL COMMAND...: wall seconds and peak RSS (KiB) of the command's largest
# process, from getrusage(RUSAGE_CHILDREN) in a Python parent.
measure_py='
import resource, subprocess, sys, time
start = time.monotonic()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.monotonic() - start
print("%.3f %d %d" % (wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code))
'
declare -A wall rss
measure() {
  local label=$1
  shift
  rm -rf "$run_dir/out" && mkdir -p "$run_dir/out"
  sync
  read -r w r code < <(python3 -c "$measure_py" "$@")
  if [[ $code != 0 ]]; then
    echo "bench-download: '$label' failed (exit $code)" >&2
    exit 1
  fi
  wall[$label]=$w
  rss[$label]=$r
}

script_check='out=$1; shift; for url in "$@"; do f=$out/$(basename "${url%%\?*}");
  curl -sf -o "$f" "$url" && gzip -t "$f" && sha256sum "$f" >/dev/null || exit 1; done'
script_curl='out=$1; shift; for url in "$@"; do
  curl -sf -o "$out/$(basename "${url%%\?*}")" "$url" || exit 1; done'

for set in parts big; do
  if [[ $set == parts ]]; then urls=("${part_urls[@]}"); else urls=("${big_urls[@]}"); fi
  echo "measuring $set ..." >&2
  measure "$set:a" bash -c "$script_check" check "$run_dir/out" "${urls[@]}"
  measure "$set:b" bash -c "$script_curl" curl "$run_dir/out" "${urls[@]}"
  measure "$set:gzip" "$bin" fetch "${urls[@]}" --dir "$run_dir/out" --verify gzip --parallel "$parallel"
  measure "$set:size" "$bin" fetch "${urls[@]}" --dir "$run_dir/out" --verify size --parallel "$parallel"
done

# ---------------------------------------------------------------------------
python3 - "$files" "$(nproc)" \
  "${wall[parts:a]}" "${wall[parts:b]}" "${wall[parts:gzip]}" "${wall[parts:size]}" \
  "${rss[parts:a]}" "${rss[parts:b]}" "${rss[parts:gzip]}" "${rss[parts:size]}" \
  "${wall[big:a]}" "${wall[big:b]}" "${wall[big:gzip]}" "${wall[big:size]}" \
  "${rss[big:a]}" "${rss[big:b]}" "${rss[big:gzip]}" "${rss[big:size]}" <<'EOF'
import sys
files, cores = sys.argv[1], sys.argv[2]
v = [float(x) for x in sys.argv[3:]]
sets = [("%s x 64 MiB" % files, v[0:4], v[4:8]), ("1 x 1 GiB", v[8:12], v[12:16])]
names = ["(a) curl + gzip -t + sha256sum", "(b) curl only", "fetch --verify gzip", "fetch --verify size"]
print("\ndownload benchmark, nginx on loopback, %s cores" % cores)
print("%-14s %-32s %9s %9s %12s" % ("files", "method", "wall s", "ratio", "peak RSS MiB"))
ok = True
for label, walls, rsses in sets:
    for i, name in enumerate(names):
        ratio = ""
        if i == 2:
            ratio = "%.2f x (a)" % (walls[2] / walls[0])
        if i == 3:
            ratio = "%.2f x (b)" % (walls[3] / walls[1])
        print("%-14s %-32s %9.2f %9s %12.1f" % (label, name, walls[i], ratio, rsses[i] / 1024))
print("\ntargets")
for label, walls, rsses in sets:
    checks = [("gzip mode <= 0.6 x (a)", walls[2] / walls[0] <= 0.6),
              ("size mode <= 1.3 x (b)", walls[3] / walls[1] <= 1.3)]
    if "GiB" in label and "64" not in label:
        checks.append(("peak RSS < 32 MiB", max(rsses[2], rsses[3]) / 1024 < 32))
    for name, passed in checks:
        ok = ok and passed
        print("  %-14s %-26s %s" % (label, name, "PASS" if passed else "FAIL"))
sys.exit(0 if ok else 1)
EOF
