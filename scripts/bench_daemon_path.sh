#!/usr/bin/env bash
# The daemon's whole path (issue 18 item 3): one hourly slot of 16 x 64 MiB parts (nginx on
# loopback behind the fake GrowingIO API, as in bench_sink.sh), archived by the real
# daemon from the API's FINISHED answer to _SUCCESS (download, gzip and sha256
# verification, publish, state), against a cron script doing curl + gzip -t + sha256sum
# on the same parts, sequentially; and the same slot landed on an rclone remote (rclone's
# WebDAV server on loopback) against that script followed by `rclone copy`. Rounds run
# back to back; prints medians, CPU seconds beside the walls, the daemon's peak RSS and
# what that peak is made of (smaps).
# Targets: daemon <= 0.25 x the script (both ways), daemon peak RSS (VmHWM) <= 16 MiB.
#
# Usage: scripts/bench_daemon_path.sh [--quick]     (--quick: 4 x 8 MiB, one round)
# Environment: GIO_EXPORTER_BIN (a built binary; default: build-bench/release is built,
#   RelWithDebInfo), BENCH_DIR (default build-bench/: cached test data),
#   BENCH_FILES (16), BENCH_PART_MIB (64), BENCH_ROUNDS (3; the median round counts),
#   BENCH_JSON (also write the figures there), BENCH_PATH_ARGS (more options for
#   bench_daemon_path.py, e.g. "--logs DIR").
# Exit status: 0 when the targets are met, 1 when one is missed, 2 on a failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench_common.sh
source "$root/scripts/bench_common.sh"
bench_args "$0" "$@"
bench_sizes
bench_need bench_daemon_path nginx rclone curl gzip sha256sum python3
bench_binary
bench_parts

# shellcheck disable=SC2086  # BENCH_PATH_ARGS is a list of options
exec python3 "$root/scripts/bench_daemon_path.py" --bin "$bin" --cache "$cache" --files "$files" \
  --rounds "$rounds" --sink --breakdown ${BENCH_JSON:+--json "$BENCH_JSON"} ${BENCH_PATH_ARGS:-}
