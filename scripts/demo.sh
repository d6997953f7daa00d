#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine, as root: install what is needed, build bootpolicy,
# then boot a QEMU VM through it with the arch-aware policy, all inside network namespaces
# (nothing touches the machine's real interfaces), and print the boot's timeline.
#
#   scripts/demo.sh            BIOS (SeaBIOS + iPXE) through bootpolicy + policies/arch-aware.lua
#   scripts/demo.sh --all      also UEFI PXE, UEFI HTTP boot and UEFI PXE over IPv6 (OVMF)
#   scripts/demo.sh --keep     leave the lab up until Ctrl-C to look at the status page
#   scripts/demo.sh --reference   the same boot through the dnsmasq reference instead
# Any other argument goes to scripts/lab.sh (e.g. --policy FILE, --record DIR, --timeout SEC).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates network namespaces and a tap device)" >&2; exit 1; }

scenario=bios server=bootpolicy keep=0 pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --all) scenario=all ;;
    --keep) keep=1; pass+=(--keep) ;;
    --reference) server=dnsmasq ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) pass+=("$1") ;;
  esac
  shift
done
[ "$keep" -eq 1 ] && [ "$scenario" = all ] && { echo "demo: --keep runs one scenario; drop --all" >&2; exit 2; }

echo "== installing what the demo needs (only what is missing)"
# The lab installs its own packages (QEMU, OVMF, iPXE, dnsmasq, tcpdump); bootpolicy needs Lua.
[ "$server" = dnsmasq ] || scripts/deps.sh demo

if [ "$server" = bootpolicy ] && [ -z "${BOOTPOLICY:-}" ]; then
  echo "== building bootpolicy (first build of the dependencies takes a few minutes)"
  swift build --product bootpolicy -j 2 2>&1 | tail -n 3
  export BOOTPOLICY="$PWD/.build/debug/bootpolicy"
fi

cat <<EOF
== booting ($scenario, server: $server$([ "$server" = bootpolicy ] && echo ", policy: policies/arch-aware.lua unless --policy"))
   The lab lives in namespaces bp-lab-net (bridge, QEMU's tap), bp-lab-site (site DHCP
   192.168.77.1) and bp-lab-boot (boot server 192.168.77.2); all are removed at exit.
EOF
rc=0
scripts/lab.sh --scenario "$scenario" --server "$server" "${pass[@]}" || rc=$?

if [ "$server" = bootpolicy ] && [ "$keep" -eq 0 ]; then
  cat <<'EOF'

The status page lives at http://192.168.77.2:8080/ inside the lab's namespace, which exists
only while the lab runs. To look at it, keep the lab up and ask from a second terminal:
  scripts/demo.sh --keep
  ip netns exec bp-lab-boot curl -s http://192.168.77.2:8080/            # status page
  ip netns exec bp-lab-boot curl -s http://192.168.77.2:8080/api/clients # the same as JSON
EOF
fi
exit "$rc"
