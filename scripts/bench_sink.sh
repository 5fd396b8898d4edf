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
# shellcheck source=scripts/bench_common.sh
source "$root/scripts/bench_common.sh"
bench_args "$0" "$@"
bench_sizes
bench_need bench_sink nginx rclone curl python3
bench_binary
bench_parts

exec python3 "$root/scripts/bench_sink.py" --bin "$bin" --cache "$cache" --files "$files" \
  --rounds "$rounds" ${BENCH_JSON:+--json "$BENCH_JSON"}
