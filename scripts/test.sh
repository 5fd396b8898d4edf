#!/usr/bin/env bash
# Builds gio-exporter and runs every unit and end-to-end test (README command 2).
#   BUILD_DIR   build folder (default: build)
#   JOBS        parallel build and test jobs (default: number of cores)
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
