#!/usr/bin/env bash
# Installs Debian packages only when missing, so running it twice costs nothing.
# Usage: scripts/deps.sh test|demo|bench
set -euo pipefail

want=(liblua5.4-dev lua5.4 libsqlite3-dev pkg-config iproute2 curl)
case "${1:-test}" in
  test)  want+=(dnsmasq-base grub-common atftp tftp-hpa tftpd-hpa chromium fonts-dejavu-core postgresql postgresql-client udhcpc isc-dhcp-client) ;;
  demo)  want+=(dnsmasq-base qemu-system-x86 ipxe ovmf) ;;
  bench) want+=(dnsmasq-base atftp tftp-hpa tftpd-hpa kea-admin kea-dhcp4-server kea-dhcp6-server gcc wrk nginx postgresql postgresql-client) ;;
  *) echo "deps.sh: unknown set '$1' (test, demo, bench)" >&2; exit 2 ;;
esac
[ -n "${BOOTPOLICY_EXTRA_DEPS:-}" ] && want+=($BOOTPOLICY_EXTRA_DEPS)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  # Never let a package start a daemon on the host (tftpd-hpa would bind port 69 on every
  # interface, postgresql would start Debian's cluster on 5432); the tests start their own servers inside namespaces or on loopback.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# schemathesis checks the control API against its OpenAPI document (HostTests).
if [ "${1:-test}" = test ] && ! command -v schemathesis >/dev/null; then
  echo "deps: installing schemathesis (PyPI)"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "schemathesis==4.32.5" >/dev/null
fi
command -v swift >/dev/null || { echo "deps: swift is not on PATH (expected /opt/swift/usr/bin)" >&2; exit 1; }
