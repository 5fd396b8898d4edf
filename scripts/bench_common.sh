# shellcheck shell=bash disable=SC2034  # sets variables of the script that sources it
# Shared by the benchmark scripts (bench.sh, bench_sink.sh, bench_status_page.sh):
# their options, the binary they measure and the parts they download. Sourced, not run;
# each function sets plain variables of the calling script, named below.
# Needs `root` (the source tree) set by the caller.

# bench_args NAME "$@": sets quick (0/1). --help prints the calling script's header
# comment (its usage and environment); anything else but --quick is a usage error.
bench_args() {
  local name=$1
  shift
  quick=0
  if [[ ${1:-} == --quick ]]; then
    quick=1
  elif [[ ${1:-} == --help || ${1:-} == -h ]]; then
    sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"
    exit 0
  elif [[ $# -gt 0 ]]; then
    echo "usage: $name [--quick]" >&2
    exit 2
  fi
}

# bench_sizes: sets bench_dir, files, part_mib and rounds from the environment, with
# the full or --quick defaults (16 x 64 MiB, 3 rounds; 4 x 8 MiB, 1 round).
bench_sizes() {
  bench_dir=${BENCH_DIR:-$root/build-bench}
  files=${BENCH_FILES:-$((quick ? 4 : 16))}
  part_mib=${BENCH_PART_MIB:-$((quick ? 8 : 64))}
  rounds=${BENCH_ROUNDS:-$((quick ? 1 : 3))}
}

# bench_need NAME TOOL...: exits 2 naming the first missing tool.
bench_need() {
  local name=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$name: $tool is needed (scripts/setup.sh)" >&2; exit 2; }
  done
}

# bench_binary: sets bin to GIO_EXPORTER_BIN, or builds bench_dir/release
# (RelWithDebInfo: measured code is optimised, and a profile still names functions).
# The path is made absolute: the benchmarks run the daemon from other directories.
bench_binary() {
  bin=${GIO_EXPORTER_BIN:-}
  if [[ -z $bin ]]; then
    local build=$bench_dir/release
    if [[ ! -f $build/build.ninja && ! -f $build/Makefile ]]; then
      local generator=()
      command -v ninja >/dev/null && generator=(-G Ninja)
      cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    echo "building gio-exporter in $build ..." >&2
    cmake --build "$build" -j "$(nproc)" --target gio-exporter >/dev/null
    bin=$build/gio-exporter
  fi
  bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
}

# bench_parts: the download benchmark's generator and cache (gzip CSV shaped like a raw
# export, close to part_mib each); sets cache to the directory holding them.
bench_parts() {
  GIO_EXPORTER_BIN=$bin BENCH_DIR=$bench_dir BENCH_FILES=$files BENCH_PART_MIB=$part_mib \
    "$root/scripts/bench-download.sh" --data-only
  cache=$bench_dir/cache
  if ((part_mib != 64)); then
    cache=$bench_dir/cache-${part_mib}mib
  fi
}
