#!/usr/bin/env bash
# Sink benchmark (issue 15): one hourly slot of 16 x 64 MiB parts through the daemon to a
# WebDAV remote that rclone serves on loopback, from the API's answer to the remote
# _SUCCESS, against, in the same run and on the same files:
#   (i)  the download path alone: the same daemon and job without a sink, to the local
#        _SUCCESS (slot_done);
#   (ii) (i) followed by `rclone copy` of the slot's partition from disk to the same
#        remote: "download, then upload", one after the other.
# The parts are gzip CSV files served by nginx (the download benchmark's cached files);
# the fake GrowingIO server (scripts/fake-growingio) answers the API and points its
# links at nginx. Prints the walls, the ratios and the daemon's peak RSS.
# Target: sink <= 1.0 x (ii); aim 0.8 x (uploads overlapping the remaining downloads).
#
# Usage: scripts/bench_sink.sh [--quick]        (--quick: 4 x 8 MiB, one round)
# Environment: GIO_EXPORTER_BIN (a built binary; default: build-bench/release is built,
#   RelWithDebInfo), BENCH_DIR (default build-bench/: cached test data),
#   BENCH_FILES (16), BENCH_PART_MIB (64), BENCH_ROUNDS (3; the median round counts),
#   BENCH_JSON (also write the figures there).
# Exit status: 0 when the target is met, 1 when it is missed, 2 on a failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
if [[ ${1:-} == --quick ]]; then
  quick=1
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--quick]" >&2
  exit 2
fi
bench_dir=${BENCH_DIR:-$root/build-bench}
files=${BENCH_FILES:-$((quick ? 4 : 16))}
part_mib=${BENCH_PART_MIB:-$((quick ? 8 : 64))}
rounds=${BENCH_ROUNDS:-$((quick ? 1 : 3))}

for tool in nginx rclone curl python3; do
  command -v "$tool" >/dev/null || { echo "bench_sink: $tool is needed (scripts/setup.sh)" >&2; exit 2; }
done

bin=${GIO_EXPORTER_BIN:-}
if [[ -z $bin ]]; then
  build=$bench_dir/release
  if [[ ! -f $build/build.ninja && ! -f $build/Makefile ]]; then
    generator=()
    command -v ninja >/dev/null && generator=(-G Ninja)
    cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  echo "building gio-exporter in $build ..." >&2
  cmake --build "$build" -j "$(nproc)" --target gio-exporter >/dev/null
  bin=$build/gio-exporter
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# The parts: the download benchmark's generator and cache (gzip CSV shaped like a raw
# export, close to BENCH_PART_MIB each).
GIO_EXPORTER_BIN=$bin BENCH_DIR=$bench_dir BENCH_FILES=$files BENCH_PART_MIB=$part_mib \
  "$root/scripts/bench-download.sh" --data-only
cache=$bench_dir/cache
if ((part_mib != 64)); then
  cache=$bench_dir/cache-${part_mib}mib
fi

exec python3 "$root/scripts/bench_sink.py" --bin "$bin" --cache "$cache" --files "$files" \
  --rounds "$rounds" ${BENCH_JSON:+--json "$BENCH_JSON"}
