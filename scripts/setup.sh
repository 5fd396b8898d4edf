#!/usr/bin/env bash
# Installs every Debian package that building, testing, the demo and the benchmarks
# need. Idempotent: when everything is present it only checks and exits.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libyaml-cpp-dev libspdlog-dev libsqlite3-dev libssl-dev zlib1g-dev libisal-dev libsystemd-dev
  libcli11-dev prometheus-cpp-dev
  libgtest-dev googletest
  python3 openssl ca-certificates curl nginx-light
  # tests/e2e/test_proxy.py: a real forward proxy, run in the foreground by the test
  tinyproxy
  # tests/e2e/test_clock_jumps.py and test_torture.py's clock variant: libfaketime moves
  # the daemon's wall clock while it runs (harness.FakedWallClock)
  faketime
  # packaging and service checks: systemd-analyze, promtool, the man page, the .deb
  systemd prometheus help2man dpkg-dev file
  # the .deb test: lintian's checks; systemd-sysusers, setpriv and useradd for the
  # archive's readers come with systemd, util-linux and passwd
  lintian
  # scripts/fuzz.sh: clang with libFuzzer and the sanitizer runtimes
  clang libclang-rt-14-dev
  # sinks (issue 15): the daemon lands partitions with rclone; the sink tests, the demo
  # and scripts/bench_sink.sh serve their remotes with `rclone serve webdav|sftp`
  rclone
  # tests/e2e/test_status_page.py: the status page in a real browser, headless, driven
  # over the DevTools protocol (tests/e2e/cdp.py); no npm in CI, so Debian's build
  chromium
)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
