#!/usr/bin/env bash
# Builds gio-exporter (Release) and installs it from source, or builds the Debian
# package instead.
#   scripts/install.sh          build and install under PREFIX (default /usr/local)
#   scripts/install.sh --deb    build build-release/gio-exporter_<version>_<arch>.deb
#                               (install it with: apt install ./<that file>)
#   PREFIX      install prefix (default /usr/local)
#   BUILD_DIR   build folder (default build-release)
#   JOBS        parallel build jobs (default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=install
case "${1:-}" in
  "") ;;
  --deb) mode=deb ;;
  -h | --help)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "install.sh: unknown argument: $1 (try --help)" >&2
    exit 1
    ;;
esac

prefix=${PREFIX:-/usr/local}
build_dir=${BUILD_DIR:-build-release}
jobs=${JOBS:-$(nproc)}
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  sudo=(sudo)
fi

scripts/setup.sh

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGIO_BUILD_TESTS=OFF \
  -DCMAKE_INSTALL_PREFIX="$prefix"
cmake --build "$build_dir" -j "$jobs"

if [[ $mode == deb ]]; then
  (cd "$build_dir" && cpack -G DEB >/dev/null)
  deb=$(find "$build_dir" -maxdepth 1 -name 'gio-exporter_*.deb' -newer "$build_dir/gio-exporter" | head -n 1)
  [[ -n $deb ]] || { echo "install.sh: cpack made no package" >&2; exit 1; }
  echo "install.sh: built $deb"
  dpkg-deb --field "$deb" Package Version Architecture Depends
  echo
  echo "Install it with: ${sudo[*]:+${sudo[*]} }apt install ./$deb"
  exit 0
fi

"${sudo[@]}" cmake --install "$build_dir" --strip
echo
echo "install.sh: installed into $prefix:"
sed 's/^/  /' "$build_dir/install_manifest.txt"

unit=$(grep '/gio-exporter.service$' "$build_dir/install_manifest.txt" || true)
case "$unit" in
  /usr/local/lib/systemd/system/* | /usr/lib/systemd/system/* | /lib/systemd/system/* | /etc/systemd/system/*)
    unit_note="" ;;
  *)
    # systemd does not look under other prefixes: the unit must be linked in.
    unit_note="  0. Make systemd see the unit: ${sudo[*]:+${sudo[*]} }systemctl link $unit" ;;
esac
# The unit runs as the static user and group gio-exporter (the archive's readers join
# the group), made from the installed sysusers.d file as the package's postinst does.
sysusers=$(grep '/sysusers.d/gio-exporter.conf$' "$build_dir/install_manifest.txt" || true)
if [[ -n $sysusers ]] && command -v systemd-sysusers >/dev/null; then
  "${sudo[@]}" systemd-sysusers "$sysusers"
fi
if [[ -d /run/systemd/system ]]; then
  "${sudo[@]}" systemctl daemon-reload
fi

docs=$(dirname "$(grep '/examples/config.yaml$' "$build_dir/install_manifest.txt")")
cat <<EOF

Next steps:
${unit_note:+$unit_note
}  1. Write the config (every key is in the example, commented), then check it:
       ${sudo[*]:+${sudo[*]} }install -d -m 0755 /etc/gio-exporter
       ${sudo[*]:+${sudo[*]} }install -m 0644 $docs/config.yaml /etc/gio-exporter/config.yaml
       ${sudo[*]:+${sudo[*]} }$prefix/bin/gio-exporter check-config --no-secrets -c /etc/gio-exporter/config.yaml
  2. Give each token to the service as a credential (root-only file), and name it in
     the config with token_credential: NAME:
       ${sudo[*]:+${sudo[*]} }install -d -m 0700 /etc/gio-exporter/credentials
       ${sudo[*]:+${sudo[*]} }install -m 0600 /dev/stdin /etc/gio-exporter/credentials/shop.token
       ${sudo[*]:+${sudo[*]} }systemctl edit gio-exporter    # [Service] LoadCredential=shop-token:/etc/gio-exporter/credentials/shop.token
  3. Start it, and start it at boot:
       ${sudo[*]:+${sudo[*]} }systemctl enable --now gio-exporter
       systemctl status gio-exporter; ${sudo[*]:+${sudo[*]} }gio-exporter status
  4. Alerts: add $docs/prometheus-alerts.yml to Prometheus's rule_files
     and scrape metrics.listen (127.0.0.1:9464) with honor_labels: true.
  Manual: man gio-exporter (or gio-exporter --help)
EOF
