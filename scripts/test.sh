#!/usr/bin/env bash
# Builds gio-exporter and runs every unit and end-to-end test (README command 2).
#   BUILD_DIR   build folder (default: build)
#   JOBS        parallel build and test jobs (default: number of cores)
#   SANITIZE    1 (default): then build the whole project again with ASan + UBSan in
#               ASAN_BUILD_DIR (default: build-asan) and run the whole suite there too;
#               any sanitizer report fails the run. 0 skips this second run.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
werror=OFF
if [[ -n "${CI:-}" ]]; then
  werror=ON
fi

cmake -S . -B "$build_dir" -G Ninja -DGIO_WERROR="$werror"
cmake --build "$build_dir" -j "$jobs"
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs"

if [[ "${SANITIZE:-1}" == 0 ]]; then
  exit 0
fi
# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer (the daemon, the
# unit tests and every command the e2e tests run). ASan reports go to files rather than
# to stderr, since a test may not look at the stderr of a process it killed: any file
# there at the end fails the run. Leak checks stay on (the daemon's _Exit on SIGTERM
# skips them, other runs end normally). UBSan is fatal (-fno-sanitize-recover=all): its
# report goes to stderr (GCC's UBSan ignores log_path next to ASan) and the process
# exits 1, which fails the unit test or the e2e check that ran it.
asan_dir=${ASAN_BUILD_DIR:-build-asan}
cmake -S . -B "$asan_dir" -G Ninja -DGIO_WERROR="$werror" -DGIO_SANITIZE=ON
cmake --build "$asan_dir" -j "$jobs"
reports="$(realpath -m "$asan_dir")/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
status=0
ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:log_path=$reports/asan" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
  ctest --test-dir "$asan_dir" --output-on-failure -j "$jobs" || status=$?
if compgen -G "$reports/*" >/dev/null; then
  echo "test: AddressSanitizer reports in $reports:" >&2
  cat "$reports"/* >&2
  exit 1
fi
exit "$status"
