#!/usr/bin/env bash
# The package and the image, tested as a user meets them (docs/install.md):
#   - scripts/package.sh builds dist/bootpolicy_<v>_amd64.deb and dist/bootpolicy-<v>.oci.tar;
#   - the .deb installs onto this machine (apt, with its Depends), its files, user, state
#     directory, conffile, man pages and completions are where they should be, the shipped
#     config answers nothing, `bootpolicy check` passes on it;
#   - systemd-analyze verify and security --offline on the unit (exposure <= 2.5);
#   - the lab's BIOS VM boots through /usr/bin/bootpolicy started as the unit starts it (user
#     bootpolicy, CAP_NET_BIND_SERVICE + CAP_NET_RAW only, no_new_privs, via setpriv);
#   - podman loads the image (<= 60 MB), and the BIOS VM boots through `podman run --net=host`
#     inside the lab's boot namespace, the server giving root up for the image's user;
#   - purge removes the state and leaves no process.
# Prints "N passed, N failed"; exit 1 on any failure. Needs root. Installs the package on this
# machine and purges it at the end (CI machines are throwaway; a developer's keeps nothing).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
export PATH="/opt/swift/usr/bin:$PATH"

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok    $*"; }
bad() { failed=$((failed + 1)); echo "FAIL  $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() { echo "packaging: ${SECONDS} s"; echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

CONTAINER=bp-lab-image
conf=$(mktemp /tmp/bp-containers.XXXXXX.conf)
printf '[containers]\ndefault_ulimits = []\n' >"$conf"
export CONTAINERS_CONF=$conf
cleanup() {
  podman --runtime runc rm -f -t 2 "$CONTAINER" >/dev/null 2>&1 || true
  if dpkg-query -W -f='${Status}' bootpolicy 2>/dev/null | grep -q 'ok installed'; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq bootpolicy >/dev/null 2>&1 || true
  fi
  rm -f "$conf"
}
trap cleanup EXIT

echo "== scripts/package.sh"
build_start=$SECONDS
if ! scripts/package.sh; then bad "scripts/package.sh built the package and the image"; finish; fi
echo "package.sh: $((SECONDS - build_start)) s"
version=$(.build-package/release/bootpolicy version | awk '{print $2}')
deb=dist/bootpolicy_${version}_amd64.deb
oci=dist/bootpolicy-${version}.oci.tar
check "dist/ has $deb and $oci" test -s "$deb" -a -s "$oci"
commit=$(git rev-parse --short=12 HEAD)

echo "== the .deb, installed on this machine"
# man-db for the manual pages (and for systemd-analyze verify, which runs man on
# Documentation=); policy-rc.d (scripts/deps.sh) keeps any daemon from starting.
BOOTPOLICY_EXTRA_DEPS="man-db" scripts/deps.sh test >/dev/null
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$deb" >/tmp/bp-apt.log 2>&1; then
  tail -n 20 /tmp/bp-apt.log; bad "apt-get install ./$deb"; finish
fi
ok "apt-get install ./$deb (Depends: $(dpkg-query -W -f='${Depends}' bootpolicy))"
check "bootpolicy --version names commit $commit" grep -q "commit $commit" <<<"$(/usr/bin/bootpolicy --version)"
for f in /usr/bin/bootpolicy /usr/share/bootpolicy/policies/default.lua /usr/share/bootpolicy/policies/arch-aware.lua \
         /etc/bootpolicy/bootpolicy.yaml /lib/systemd/system/bootpolicy.service /usr/share/doc/bootpolicy/copyright \
         /usr/share/bash-completion/completions/bootpolicy /usr/share/zsh/vendor-completions/_bootpolicy \
         /usr/share/fish/vendor_completions.d/bootpolicy.fish /usr/share/man/man1/bootpolicy.1.gz \
         /usr/share/man/man1/bootpolicy-serve.1.gz; do
  check "installed: $f" test -s "$f"
done
check "man -w bootpolicy-serve finds the page" man -w bootpolicy-serve
check "/etc/bootpolicy/bootpolicy.yaml is a conffile" grep -q /etc/bootpolicy/bootpolicy.yaml <<<"$(dpkg-query -W -f='${Conffiles}' bootpolicy)"
uid=$(id -u bootpolicy 2>/dev/null || echo none)
check "a system user bootpolicy exists (uid $uid)" test "$uid" != none -a "${uid/none/99999}" -lt 1000
check "/var/lib/bootpolicy is bootpolicy's, mode 750" test "$(stat -c '%U %a' /var/lib/bootpolicy 2>/dev/null)" = "bootpolicy 750"
check "bootpolicy check passes on the shipped config" /usr/bin/bootpolicy check --config /etc/bootpolicy/bootpolicy.yaml
refusal=$(/usr/bin/bootpolicy serve --config /etc/bootpolicy/bootpolicy.yaml 2>&1)
check "the shipped config answers nothing until an interface is named" grep -q "name where to serve" <<<"$refusal"

echo "== the unit"
unit=/lib/systemd/system/bootpolicy.service
verify=$(systemd-analyze verify "$unit" 2>&1)
check "systemd-analyze verify $unit${verify:+: $verify}" test -z "$verify"
exposure=$(systemd-analyze security --offline=true "$unit" 2>&1 | sed -n 's/.*Overall exposure level for bootpolicy.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security --offline=true: exposure ${exposure:-?} <= 2.5" awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 2.5) }'
check "the unit runs as bootpolicy, Type=notify, ExecReload is SIGHUP" \
  grep -qzE 'Type=notify.*ExecReload=/bin/kill -HUP \$MAINPID.*User=bootpolicy' "$unit"

echo "== the BIOS VM through the installed binary, started as the unit starts it"
# The unit's User=, AmbientCapabilities=, CapabilityBoundingSet= and NoNewPrivileges=.
caps=net_bind_service,net_raw
as_unit="setpriv --reuid=bootpolicy --regid=bootpolicy --init-groups --bounding-set=-all,+${caps//,/,+} \
--inh-caps=-all,+${caps//,/,+} --ambient-caps=-all,+${caps//,/,+} --no-new-privs /usr/bin/bootpolicy serve"
LAB_SERVE="$as_unit" BOOTPOLICY=/usr/bin/bootpolicy scripts/lab.sh --scenario bios --timeout 240 2>&1 | tee /tmp/bp-lab-unit.log | grep -E '^lab: (bootpolicy|error)|^(PASS|FAIL) |passed, '
check "BIOS boot through the installed binary as the unit's user" grep -qE '^PASS bios/' /tmp/bp-lab-unit.log
check "the lab's server ran as bootpolicy with two capabilities" \
  grep -q "running as bootpolicy (uid $uid), capabilities: cap_net_bind_service,cap_net_raw" /tmp/bp-lab-unit.log

echo "== the image"
loaded=$(podman --runtime runc load -q -i "$oci" 2>&1)
check "podman load -i $oci (${loaded##*: })" grep -q "bootpolicy:$version" <<<"$loaded"
image=localhost/bootpolicy:$version
size=$(podman image inspect --format '{{.Size}}' "$image" 2>/dev/null || echo 0)
limit=60000000
check "the image is <= 60 MB ($size bytes, $(( limit - size )) left)" test "$size" -gt 0 -a "$size" -le "$limit"
check "the image's bootpolicy names commit $commit" \
  grep -q "commit $commit" <<<"$(podman --runtime runc run --rm --entrypoint /usr/bin/bootpolicy "$image" --version 2>&1)"
# As the seed runs dnsmasq: host networking (here the lab's boot namespace), the lab's folder
# and policies mounted at the same paths; the container's root gives root up for uid 101.
in_image="podman --runtime runc run --rm --name $CONTAINER --net=host -v /tmp:/tmp -v $REPO:$REPO:ro $image"
LAB_SERVE="$in_image" scripts/lab.sh --scenario bios --timeout 240 2>&1 | tee /tmp/bp-lab-image.log | grep -E '^lab: (bootpolicy|error)|^(PASS|FAIL) |passed, '
check "BIOS boot through podman run --net=host" grep -qE '^PASS bios/' /tmp/bp-lab-image.log
check "the container's server gave root up for bootpolicy (uid 101)" \
  grep -q "gave up root for user bootpolicy (uid 101" /tmp/bp-lab-image.log
podman --runtime runc rm -f -t 2 "$CONTAINER" >/dev/null 2>&1 || true

echo "== purge"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq bootpolicy >/dev/null 2>&1
check "apt-get purge removes the package and /var/lib/bootpolicy" test ! -e /usr/bin/bootpolicy -a ! -e /var/lib/bootpolicy
finish
