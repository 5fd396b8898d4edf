#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz/ (clang, ASan + UBSan) and runs each for
# SECONDS with its seed corpus; fails, naming the crash input, on any crash, sanitizer
# report, broken invariant, timeout or out-of-memory.
#   scripts/fuzz.sh [SECONDS] [HARNESS...]     (default: 600 seconds, every harness)
#   FUZZ_BUILD_DIR   build folder (default: build-fuzz); working corpora and crash
#                    inputs go to <FUZZ_BUILD_DIR>/fuzz-work/<harness>/, never the repo
#   JOBS             parallel build jobs (default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."

all=(config raw_export chart_answer chart_csv user_list token_answer file_names gzip csv_rows slot)
seconds=${1:-600}
shift || true
harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
  harnesses=("${all[@]}")
fi
for harness in "${harnesses[@]}"; do
  if [[ ! -d tests/fuzz/corpus/$harness ]]; then
    echo "fuzz: unknown harness '$harness' (known: ${all[*]})" >&2
    exit 2
  fi
done

scripts/setup.sh

build_dir=$(realpath -m "${FUZZ_BUILD_DIR:-build-fuzz}")
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DGIO_FUZZ=ON \
  -DGIO_SANITIZE=ON -DGIO_BUILD_TESTS=OFF >/dev/null
cmake --build "$build_dir" -j "${JOBS:-$(nproc)}" --target "${harnesses[@]/#/fuzz_}"

failed=()
for harness in "${harnesses[@]}"; do
  work="$build_dir/fuzz-work/$harness"
  mkdir -p "$work/corpus" "$work/crashes"
  log="$work/log.txt"
  # The first folder receives new inputs; the repo's seeds are only read. stdin is
  # /dev/null: a config may name /dev/stdin as its token file.
  status=0
  started=$SECONDS
  ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$build_dir/tests/fuzz/fuzz_$harness" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -print_final_stats=1 -artifact_prefix="$work/crashes/" \
    "$work/corpus" "tests/fuzz/corpus/$harness" </dev/null >"$log" 2>&1 || status=$?
  elapsed=$((SECONDS - started))
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  corpus=$(find "$work/corpus" "tests/fuzz/corpus/$harness" -type f | wc -l)
  echo "fuzz: $harness: ${executions:-?} executions in ${elapsed}s, corpus $corpus inputs"
  if ((status != 0)); then
    failed+=("$harness")
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz invariant|.*runtime error)' "$log" | head -n 5 || true
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    echo "fuzz: $harness FAILED (exit $status); input: ${crash:-none written}; log: $log"
  fi
done

if ((${#failed[@]} > 0)); then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
