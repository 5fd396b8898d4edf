#!/usr/bin/env bash
# Download benchmark: `gio-exporter fetch` against what a script would do with curl.
#
# Serves gzip CSV files from nginx on loopback over HTTP and over HTTPS (its own prefix
# and config in a temp folder, free ports, a CA and a server certificate made here with
# openssl, stopped at the end) and measures, per scheme, in one run:
#   (a) per file: curl -s -o, then gzip -t, then sha256sum (sequential)
#   (b) bare curl -s -o of every file (sequential)
#   gio-exporter fetch --verify gzip and --verify size (parallel 4; over HTTPS it trusts
#   the CA through a config's http.ca_file, curl through --cacert); when the binary
#   inflates with ISA-L, --verify gzip once more with --inflate zlib, its fallback;
#   and --verify gzip --rows: the CSV records counted in the gzip check's pass (issue 16)
# for 16 files of 64 MiB and for one 1 GiB file, with wall times and peak RSS.
# Targets: gzip mode <= 0.5 x (a); size mode <= 1.0 x (b); peak RSS of fetch < 32 MiB;
# gzip mode counting rows <= 1.05 x gzip mode (wall; the CPU seconds are printed beside).
#
# Usage: scripts/bench-download.sh [--quick]     (4 files of 8 MiB and their 32 MiB sum)
#        scripts/bench-download.sh --data-only   only generate the parts in the cache
#                                                (scripts/bench_sink.sh serves them too)
# Environment: GIO_EXPORTER_BIN (a built binary; default: build/ is built),
#              BENCH_DIR (default build-bench/; the generated files are cached there),
#              BENCH_FILES (16), BENCH_PART_MIB (64), BENCH_PARALLEL (4),
#              BENCH_SCHEMES ("http https"), BENCH_ROUNDS (3: each figure is the median
#              of that many rounds), BENCH_JSON (also write the figures there).
# Exit status: 0 when every target is met, 1 when one is missed, 2 on a failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
data_only=0
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    --data-only) data_only=1 ;;
    *) echo "usage: $0 [--quick] [--data-only]" >&2; exit 2 ;;
  esac
done
bench_dir=${BENCH_DIR:-$root/build-bench}
files=${BENCH_FILES:-$((quick ? 4 : 16))}
part_mib=${BENCH_PART_MIB:-$((quick ? 8 : 64))}
parallel=${BENCH_PARALLEL:-4}
rounds=${BENCH_ROUNDS:-3}
schemes=${BENCH_SCHEMES:-http https}
part_bytes=$((part_mib << 20))
# 64 MiB parts live where earlier versions of this script cached them.
cache=$bench_dir/cache
if ((part_mib != 64)); then
  cache=$bench_dir/cache-${part_mib}mib
fi

for tool in nginx curl gzip sha256sum python3 openssl; do
  command -v "$tool" >/dev/null || { echo "bench-download: $tool is needed" >&2; exit 2; }
done

bin=${GIO_EXPORTER_BIN:-}
if [[ -z $bin ]]; then
  if [[ ! -f $root/build/build.ninja && ! -f $root/build/Makefile ]]; then
    cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$root/build" --target gio-exporter
  bin=$root/build/gio-exporter
fi
# A binary that inflates with ISA-L is measured with its zlib fallback too.
zlib_too=0
if "$bin" version | grep -q 'gzip verification: isal'; then
  zlib_too=1
fi

# ---------------------------------------------------------------------------
# Test data, generated once: CSV rows shaped like a raw event export, gzip --fast,
# each part close to BENCH_PART_MIB compressed. The big file is the parts concatenated:
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
  sample=$((8 << 20))
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
if ((data_only)); then
  exit 0
fi
big_name=all-$files-parts.csv.gz
big=$cache/$big_name
if [[ ! -f $big && $files == 16 && -f $cache/all-parts-1gib.csv.gz ]]; then
  mv "$cache/all-parts-1gib.csv.gz" "$big"  # the name earlier versions used
fi
if [[ ! -f $big ]]; then
  echo "generating $big ..." >&2
  for ((i = 0; i < files; i++)); do
    cat "$cache/part-$(printf %05d "$i").csv.gz"
  done >"$big.tmp"
  mv "$big.tmp" "$big"
fi
parts_bytes=0
for ((i = 0; i < files; i++)); do
  parts_bytes=$((parts_bytes + $(stat -c %s "$cache/part-$(printf %05d "$i").csv.gz")))
done
big_bytes=$(stat -c %s "$big")

# ---------------------------------------------------------------------------
# nginx on two free loopback ports (HTTP and HTTPS), serving the cache folder.
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

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port)
tls_port=$(free_port)
mkdir -p "$run_dir/nginx/logs" "$run_dir/nginx/tmp" "$run_dir/out" "$run_dir/tls"

# A CA and a server certificate for 127.0.0.1, valid for two days.
(
  cd "$run_dir/tls"
  key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${key[@]}" -keyout ca.key -out ca.pem -days 2 -subj /CN=gio-bench-ca
  openssl req "${key[@]}" -keyout server.key -out server.csr -subj /CN=127.0.0.1
  echo "subjectAltName=IP:127.0.0.1,DNS:localhost" >server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.pem
) >/dev/null 2>&1 || { echo "bench-download: openssl failed" >&2; exit 2; }
ca=$run_dir/tls/ca.pem

cat >"$run_dir/nginx/nginx.conf" <<CONF
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
  server {
    listen 127.0.0.1:$tls_port ssl;
    ssl_certificate $run_dir/tls/server.pem;
    ssl_certificate_key $run_dir/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $cache;
  }
}
CONF
nginx -p "$run_dir/nginx" -c "$run_dir/nginx/nginx.conf" -e "$run_dir/nginx/logs/error.log" &
nginx_pid=$!
for _ in $(seq 50); do
  curl -s -o /dev/null "http://127.0.0.1:$port/ratio" && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$port/ratio" || { echo "nginx did not start" >&2; exit 2; }
curl -sf --cacert "$ca" -o /dev/null "https://127.0.0.1:$tls_port/ratio" ||
  { echo "nginx does not answer over HTTPS" >&2; exit 2; }

# `fetch -c CONFIG` takes its network settings (here the CA) from a config file.
cat >"$run_dir/fetch.yaml" <<CONF
state_db: state.db
archive_dir: archive
http: {api_base: "https://127.0.0.1:$tls_port", timeout: 30s, ca_file: "$ca"}
metrics: {listen: ""}
projects:
  - {name: bench, ai: 2a1b4018cd954ec2bcc69da5138bdb96, project_uid: nxog09md, auth: {token_env: GIO_BENCH_TOKEN}}
jobs:
  - {name: bench-hourly, project: bench}
CONF
export GIO_BENCH_TOKEN=unused

# measure LABEL COMMAND...: wall seconds and peak RSS (KiB) of the command's largest
# process, from getrusage(RUSAGE_CHILDREN) in a Python parent.
measure_py='
import resource, subprocess, sys, time
start = time.monotonic()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.monotonic() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.3f %d %d %.3f" % (wall, usage.ru_maxrss, code, usage.ru_utime + usage.ru_stime))
'
results=()
measure() {
  local label=$1
  shift
  rm -rf "$run_dir/out" && mkdir -p "$run_dir/out"
  sync
  read -r w r code cpu < <(python3 -c "$measure_py" "$@")
  if [[ $code != 0 ]]; then
    echo "bench-download: '$label' failed (exit $code)" >&2
    exit 2
  fi
  results+=("$label" "$w" "$r" "$cpu")
}

# $1 = output folder, $2 = curl's CA file ("" for HTTP), then the URLs.
script_check='out=$1; ca=$2; shift 2; for url in "$@"; do f=$out/$(basename "${url%%\?*}");
  curl -sf ${ca:+--cacert "$ca"} -o "$f" "$url" && gzip -t "$f" && sha256sum "$f" >/dev/null ||
  exit 1; done'
script_curl='out=$1; ca=$2; shift 2; for url in "$@"; do
  curl -sf ${ca:+--cacert "$ca"} -o "$out/$(basename "${url%%\?*}")" "$url" || exit 1; done'

for scheme in $schemes; do
  if [[ $scheme == https ]]; then
    base=https://127.0.0.1:$tls_port curl_ca=$ca fetch_config=(-c "$run_dir/fetch.yaml")
  else
    base=http://127.0.0.1:$port curl_ca= fetch_config=()
  fi
  part_urls=()
  for ((i = 0; i < files; i++)); do
    # A query string like a signed link's: it must not end up in names or output.
    part_urls+=("$base/part-$(printf %05d "$i").csv.gz?sign=bench&expires=0")
  done
  big_urls=("$base/$big_name?sign=bench")
  for set in parts big; do
    if [[ $set == parts ]]; then urls=("${part_urls[@]}"); else urls=("${big_urls[@]}"); fi
    # Rounds of all four, so that a passing disturbance (the machine's page cache,
    # another process) touches each method alike; the median round counts.
    for ((round = 1; round <= rounds; round++)); do
      echo "measuring $scheme $set, round $round of $rounds ..." >&2
      measure "$scheme:$set:a" bash -c "$script_check" check "$run_dir/out" "$curl_ca" "${urls[@]}"
      measure "$scheme:$set:b" bash -c "$script_curl" curl "$run_dir/out" "$curl_ca" "${urls[@]}"
      measure "$scheme:$set:gzip" "$bin" "${fetch_config[@]}" fetch "${urls[@]}" \
        --dir "$run_dir/out" --verify gzip --parallel "$parallel"
      measure "$scheme:$set:rows" "$bin" "${fetch_config[@]}" fetch "${urls[@]}" \
        --dir "$run_dir/out" --verify gzip --rows --parallel "$parallel"
      if ((zlib_too)); then
        measure "$scheme:$set:zlib" "$bin" "${fetch_config[@]}" fetch "${urls[@]}" \
          --dir "$run_dir/out" --verify gzip --inflate zlib --parallel "$parallel"
      fi
      measure "$scheme:$set:size" "$bin" "${fetch_config[@]}" fetch "${urls[@]}" \
        --dir "$run_dir/out" --verify size --parallel "$parallel"
    done
  done
done

# ---------------------------------------------------------------------------
python3 - "$files" "$(nproc)" "$parts_bytes" "$big_bytes" "${BENCH_JSON:-}" "$rounds" \
  "${results[@]}" <<'PY'
import json, statistics, sys
files, cores, parts_bytes, big_bytes, json_path, round_count = sys.argv[1:7]
raw = sys.argv[7:]
# Per label: the median wall over the rounds, the largest peak RSS, the median CPU time.
rounds = {}
for i in range(0, len(raw), 4):
    rounds.setdefault(raw[i], []).append((float(raw[i + 1]), int(raw[i + 2]) / 1024, float(raw[i + 3])))
figures = {label: (statistics.median(w for w, _, _ in runs), max(r for _, r, _ in runs),
                   statistics.median(c for _, _, c in runs))
           for label, runs in rounds.items()}
schemes = sorted({label.split(":")[0] for label in figures}, key=lambda s: s != "http")
mib = lambda n: int(n) / (1 << 20)
sets = [("parts", "%s x %.0f MiB" % (files, mib(parts_bytes) / int(files))),
        ("big", "1 x %.0f MiB" % mib(big_bytes))]
names = [("a", "curl + gzip -t + sha256sum"), ("b", "curl only"),
         ("gzip", "fetch --verify gzip"), ("rows", "fetch --verify gzip --rows"),
         ("zlib", "fetch --verify gzip, zlib"), ("size", "fetch --verify size")]
names = [(m, name) for m, name in names if any(label.endswith(":" + m) for label in figures)]
print("\ndownload benchmark, nginx on loopback, %s cores, median of %s rounds" % (cores, round_count))
print("%-6s %-14s %-28s %8s %12s %9s %7s" % ("scheme", "files", "method", "wall s", "ratio", "RSS MiB",
                                             "CPU s"))
summary = {}
for scheme in schemes:
    for key, label in sets:
        walls = {m: figures["%s:%s:%s" % (scheme, key, m)][0] for m, _ in names}
        rsses = {m: figures["%s:%s:%s" % (scheme, key, m)][1] for m, _ in names}
        cpus = {m: figures["%s:%s:%s" % (scheme, key, m)][2] for m, _ in names}
        for m, name in names:
            ratio = ""
            if m in ("gzip", "zlib"):
                ratio = "%.2f x (a)" % (walls[m] / walls["a"])
            if m == "rows":
                ratio = "%.3f x gzip" % (walls["rows"] / walls["gzip"])
            if m == "size":
                ratio = "%.2f x (b)" % (walls["size"] / walls["b"])
            print("%-6s %-14s %-28s %8.2f %12s %9.1f %7.2f" % (scheme, label, name, walls[m], ratio, rsses[m],
                                                             cpus[m]))
        summary["%s_%s" % (scheme, key)] = {
            "scheme": scheme, "label": label, "walls": walls, "rss_mib": rsses, "cpu_s": cpus,
            "gzip_ratio": walls["gzip"] / walls["a"], "size_ratio": walls["size"] / walls["b"],
            "rows_ratio": walls["rows"] / walls["gzip"]}
        summary["%s_%s" % (scheme, key)]["fetch_rss_mib"] = max(
            rsses[m] for m in ("gzip", "zlib", "size") if m in rsses)
        if "zlib" in walls:
            summary["%s_%s" % (scheme, key)]["zlib_ratio"] = walls["zlib"] / walls["a"]
ok = True
print("\ntargets")
for entry in summary.values():
    checks = [("gzip mode <= 0.5 x (a)", entry["gzip_ratio"] <= 0.5)]
    if "zlib_ratio" in entry:
        checks += [("gzip mode, zlib <= 0.5 x (a)", entry["zlib_ratio"] <= 0.5)]
    checks += [("counting rows <= 1.05 x gzip", entry["rows_ratio"] <= 1.05),
               ("size mode <= 1.0 x (b)", entry["size_ratio"] <= 1.0),
               ("fetch peak RSS < 32 MiB", entry["fetch_rss_mib"] < 32)]
    for check, passed in checks:
        ok = ok and passed
        print("  %-6s %-16s %-30s %s" % (entry["scheme"], entry["label"], check,
                                          "PASS" if passed else "FAIL"))
if json_path:
    with open(json_path, "w") as f:
        json.dump({"cores": int(cores), "sets": summary}, f, indent=1)
sys.exit(0 if ok else 1)
PY
