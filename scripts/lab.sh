#!/usr/bin/env bash
# Boots real firmware (SeaBIOS + iPXE ROM, OVMF PXE over IPv4 and IPv6, OVMF HTTP and HTTPS boot,
# OVMF with Secure Boot enforced) in QEMU through a boot server, entirely inside network
# namespaces this script creates and always removes.
#
#   scripts/lab.sh [--scenario bios|uefi|uefi-http|uefi-ipv6|uefi-ipv6-only|uefi-http-ipv6|
#                   uefi-secureboot|uefi-secureboot-unsigned|uefi-https|uefi-https-untrusted|uefi-https-wrong-ca|all]
#                  [--server bootpolicy|dnsmasq] [--dhcp site|full] [--policy FILE] [--config FILE] [--record DIR] [--timeout SEC] [--keep]
#                  [--no-ra] [--ci [--budget SEC]]
#
# See docs/lab.md for the topology, what each scenario proves and measured times.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
LAB_DIR="$REPO/scripts/lab"
# shellcheck source=scripts/lab/net.sh
. "$LAB_DIR/net.sh"

SCENARIO=bios
SERVER=bootpolicy
DHCP_MODE=site
POLICY=""
CONFIG=""
RECORD=""
TIMEOUT=300
KEEP=0
KEEP_MAX=3600
RA=1
CI_MODE=0
BUDGET=1500
MARKER=${LAB_MARKER:-BOOTPOLICY-LAB-REACHED}

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  cat <<'EOF'
Options:
  --scenario S   bios (SeaBIOS + QEMU's iPXE NIC ROM), uefi (OVMF's own PXE client, NIC ROM
                 off), uefi-http (OVMF HTTP boot, PXE off), uefi-ipv6 (OVMF PXE over IPv6:
                 DHCPv6 beside a site DHCPv6 server, TFTP over IPv6; bootpolicy --dhcp6),
                 uefi-ipv6-only (the same firmware on an IPv6-only LAN: no DHCPv4 at all,
                 bootpolicy the stateful DHCPv6 server, iPXE fetches its script over IPv6),
                 uefi-http-ipv6 (OVMF HTTP boot over IPv6 on that IPv6-only LAN),
                 uefi-secureboot (OVMF with Secure Boot enforced and Microsoft's keys:
                 Debian's shim -> GRUB -> the grub.cfg secure-boot.lua writes for the
                 machine -> Debian's signed kernel and a tiny initrd; bootpolicy is the
                 DHCP server, --dhcp is ignored), uefi-secureboot-unsigned (the same
                 firmware handed the unsigned ipxe.efi must refuse it),
                 uefi-https (OVMF HTTP boot of an https:// URL, the lab's CA given to the
                 firmware by fw_cfg), uefi-https-untrusted (no CA: nothing loads),
                 uefi-https-wrong-ca (another CA: the handshake fails),
                 all (one after another). Default bios. The IPv6-only, Secure Boot and
                 HTTPS scenarios need bootpolicy.
  --server S     bootpolicy (default; binary from $BOOTPOLICY or .build/debug/bootpolicy) or
                 dnsmasq (the reference ProxyDHCP configuration bootpolicy replaces).
  --dhcp M       site (default: a site DHCP server hands out addresses, the boot server is a
                 ProxyDHCP beside it) or full (no site server: bootpolicy is the only DHCP
                 server, --no-proxy --dhcp-range 192.168.77.100,192.168.77.150, and for
                 uefi-ipv6 also --dhcp-range fd77::100,fd77::1ff,64,1h; bootpolicy only).
  --policy FILE  policy for bootpolicy (default policies/arch-aware.lua).
  --config FILE  bootpolicy YAML config; replaces the lab's generated one.
  --record DIR   save each scenario's DHCP packets (udp 67/68/4011/546/547) as DIR/<scenario>.pcap,
                 and the client requests in it as fixtures in DIR/requests/ (bootpolicy import).
  --timeout SEC  bound per scenario (default 300).
  --keep         after the (single) scenario, keep VM and servers up until Ctrl-C (max 1 h).
  --no-ra        no IPv6 router advertisement on the lab LAN (iPXE then waits ~13 s for one;
                 uefi-ipv6 keeps its site DHCPv6 server but then fails in the firmware:
                 without the RA's on-link prefix OVMF never sends the 4011 Request, PXE-E16;
                 the IPv6-only scenarios then have no router at all and are not expected to pass).
  --ci           bounded CI form: every scenario that can pass (site and full DHCP, and
                 the two IPv6-only ones), 'N passed, N failed' at the end.
  --budget SEC   total time cap for --ci (default 1500).
Environment: BOOTPOLICY (server binary), LAB_MARKER (marker text, default BOOTPOLICY-LAB-REACHED),
LAB_SERVE (a command that stands for "bootpolicy serve", e.g. setpriv ... /usr/bin/bootpolicy serve).
Diagnosis: LAB_KEEP_LOGS=1 keeps the logs of passing runs too, LAB_PCAP_ALL=1 records every
packet on boot0 (not only DHCP), LAB_HTTP6_IPV4=off adds IPv4Support=no to uefi-http-ipv6.
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --scenario) SCENARIO=${2:?}; shift 2 ;;
    --server) SERVER=${2:?}; shift 2 ;;
    --dhcp) DHCP_MODE=${2:?}; shift 2 ;;
    --policy) POLICY=${2:?}; shift 2 ;;
    --config) CONFIG=${2:?}; shift 2 ;;
    --record) RECORD=${2:?}; shift 2 ;;
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --no-ra) RA=0; shift ;;
    --ci) CI_MODE=1; shift ;;
    --budget) BUDGET=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; lab_die "unknown argument '$1'" ;;
  esac
done

case "$SCENARIO" in bios|uefi|uefi-http|uefi-ipv6|uefi-ipv6-only|uefi-http-ipv6|uefi-secureboot|uefi-secureboot-unsigned|uefi-https|uefi-https-untrusted|uefi-https-wrong-ca|all) ;;
  *) lab_die "--scenario must be bios, uefi, uefi-http, uefi-ipv6, uefi-ipv6-only, uefi-http-ipv6, uefi-secureboot, uefi-secureboot-unsigned, uefi-https, uefi-https-untrusted, uefi-https-wrong-ca or all" ;; esac
case "$SERVER" in bootpolicy|dnsmasq) ;; *) lab_die "--server must be bootpolicy or dnsmasq" ;; esac
case "$DHCP_MODE" in site|full) ;; *) lab_die "--dhcp must be site or full" ;; esac
if [ "$DHCP_MODE" = full ] && [ "$SERVER" = dnsmasq ]; then lab_die "--dhcp full runs bootpolicy as the only DHCP server (the dnsmasq reference is ProxyDHCP)"; fi
if ! [[ "$TIMEOUT" =~ ^[0-9]+$ ]] || [ "$TIMEOUT" -lt 10 ]; then lab_die "--timeout must be a number of seconds >= 10"; fi
[[ "$BUDGET" =~ ^[0-9]+$ ]] || lab_die "--budget must be a number of seconds"
[ "$(id -u)" -eq 0 ] || lab_die "needs root (ip netns, tap devices)"
if [ "$KEEP" -eq 1 ] && { [ "$SCENARIO" = all ] || [ "$CI_MODE" -eq 1 ]; }; then
  lab_die "--keep runs one scenario: pick bios, uefi, uefi-http, uefi-ipv6, uefi-ipv6-only or uefi-http-ipv6"
fi
[ -z "$POLICY" ] || [ -f "$POLICY" ] || lab_die "--policy: no such file '$POLICY'"
[ -z "$CONFIG" ] || [ -f "$CONFIG" ] || lab_die "--config: no such file '$CONFIG'"
[ -z "$POLICY" ] || POLICY=$(cd "$(dirname "$POLICY")" && pwd)/$(basename "$POLICY")
[ -z "$CONFIG" ] || CONFIG=$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")

# --- what the lab needs ---------------------------------------------------------------------

install_deps() {
  # gcc and libc6-dev build the Secure Boot initrd's static /init.
  local want=(qemu-system-x86 ipxe ovmf dnsmasq-base iproute2 tcpdump curl jq gcc libc6-dev) missing=() p
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  lab_log "installing ${missing[*]}"
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

BOOTPOLICY_BIN=""
BOOTPOLICY_WHY=""
# Sets BOOTPOLICY_BIN when a bootpolicy with a `serve` command is available (building the
# default one if it is missing); otherwise BOOTPOLICY_WHY says why not.
find_bootpolicy() {
  local bin=${BOOTPOLICY:-$REPO/.build/debug/bootpolicy}
  if [ ! -x "$bin" ] && [ -z "${BOOTPOLICY:-}" ]; then
    lab_log "building bootpolicy (swift build --product bootpolicy)"
    (cd "$REPO" && PATH="/opt/swift/usr/bin:$PATH" swift build --product bootpolicy -j 2 2>&1 | tail -n 5) || true
  fi
  if [ ! -x "$bin" ]; then BOOTPOLICY_WHY="no executable at $bin"; return 1; fi
  # The help is read whole first: `| grep -q` stops reading at the first match, the writer
  # gets SIGPIPE, and with pipefail that read as "no such flag" (a CI run skipped the lab so).
  local help
  help=$("$bin" serve --help 2>/dev/null) || true
  if ! grep -q -- '--tftp-root' <<<"$help"; then
    BOOTPOLICY_WHY="$bin has no 'serve' command with --tftp-root"
    return 1
  fi
  BOOTPOLICY_BIN=$bin
}

# --- lifetime -------------------------------------------------------------------------------

WORK=""
KEEP_WORK=0
# shellcheck disable=SC2317  # runs from the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  lab_stop_all
  lab_net_down
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "$KEEP_WORK" -eq 1 ] || [ "$rc" -ne 0 ] || [ -n "${LAB_KEEP_LOGS:-}" ]; then
      rm -rf "$WORK/root"
      lab_log "logs kept in $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}

# --- per-scenario pieces --------------------------------------------------------------------

mac_of() { case "$1" in bios) echo 52:54:00:77:00:01 ;; uefi) echo 52:54:00:77:00:02 ;; uefi-http) echo 52:54:00:77:00:03 ;; uefi-ipv6) echo 52:54:00:77:00:04 ;;
  uefi-ipv6-only) echo 52:54:00:77:00:05 ;; uefi-http-ipv6) echo 52:54:00:77:00:06 ;;
  uefi-secureboot) echo 52:54:00:77:00:07 ;; uefi-secureboot-unsigned) echo 52:54:00:77:00:08 ;;
  uefi-https) echo 52:54:00:77:00:09 ;; uefi-https-untrusted) echo 52:54:00:77:00:0a ;; uefi-https-wrong-ca) echo 52:54:00:77:00:0b ;; esac; }

# The HTTPS boot scenarios: OVMF HTTP boot of an https:// URL. uefi-https-untrusted is the
# same run without any CA given to the firmware, uefi-https-wrong-ca with another CA than the
# one that signed the server's certificate.
https_boot() { case "$1" in uefi-https|uefi-https-untrusted|uefi-https-wrong-ca) return 0 ;; *) return 1 ;; esac; }

# The scenarios whose firmware enforces Secure Boot with Microsoft's keys enrolled.
secureboot() { case "$1" in uefi-secureboot|uefi-secureboot-unsigned) return 0 ;; *) return 1 ;; esac; }

# The scenarios that run on an IPv6-only LAN: the site namespace is only a router (RA with M
# and O, its DHCP servers answer nobody), bootpolicy is the only DHCPv6 server (stateful
# range fd77::100-1ff) and nothing answers DHCPv4, so iPXE can only configure over IPv6.
v6only() { case "$1" in uefi-ipv6-only|uefi-http-ipv6) return 0 ;; *) return 1 ;; esac; }

# The link-local address a MAC's EUI-64 interface id gives (OVMF and iPXE form theirs so).
eui64_of() {
  local IFS=: b
  read -r -a b <<<"$1"
  printf 'fe80::%x:%x:%x:%x\n' $(( (0x${b[0]} ^ 2) << 8 | 0x${b[1]} )) $(( 0x${b[2]} << 8 | 0xff )) \
    $(( 0xfe << 8 | 0x${b[3]} )) $(( 0x${b[4]} << 8 | 0x${b[5]} ))
}

# What a scenario must show to pass. "reach": the marker on the console. The dnsmasq reference
# cannot boot UEFI clients; there the lab asserts the known failure happens the known way.
# uefi-secureboot-unsigned is the negative control: the firmware must refuse the unsigned
# ipxe.efi it is handed ("refusal"); uefi-https-untrusted: it must refuse the server's
# certificate ("untrusted").
expectation() {
  local server=$1 scenario=$2
  if [ "$scenario" = uefi-secureboot-unsigned ]; then echo refusal
  elif [ "$scenario" = uefi-https-untrusted ] || [ "$scenario" = uefi-https-wrong-ca ]; then echo untrusted
  elif [ "$server" = dnsmasq ] && [ "$scenario" != bios ]; then echo weakness; else echo reach; fi
}

# QEMU arguments for a scenario (firmware and NIC).
qemu_args() {
  local scenario=$1 mac=$2
  case "$scenario" in
    bios)
      # SeaBIOS runs the NIC's default option ROM (Debian's ipxe-qemu efi-virtio.rom, iPXE);
      # graphics=off makes SeaBIOS copy the text screen to the serial port (sercon).
      echo "-machine pc,graphics=off -m 256 -boot n"
      echo "-device virtio-net-pci,netdev=n0,mac=$mac,bootindex=1" ;;
    uefi-secureboot|uefi-secureboot-unsigned)
      # Debian's Secure Boot build of OVMF (SMM, so the variable store cannot be written around
      # the firmware) with the variables that enrol Microsoft's keys and turn enforcement on.
      # The variables are a copy: the firmware writes its boot entries there.
      echo "-machine q35,smm=on -m 512 -global driver=cfi.pflash01,property=secure,value=on"
      echo "-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
      echo "-drive if=pflash,format=raw,unit=1,file=$3/OVMF_VARS_4M.ms.fd"
      echo "-fw_cfg name=opt/org.tianocore/IPv6Support,string=no"
      echo "-device virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1" ;;
    uefi-https|uefi-https-untrusted|uefi-https-wrong-ca)
      # HTTP boot (PXE and IPv6 off: HTTPv4 is the first entry). The lab's CA reaches the
      # firmware as EDK2 reads trusted CAs for HTTPS boot: fw_cfg etc/edk2/https/cacerts, an
      # EFI_SIGNATURE_LIST of X.509 certificates (scripts/lab/edk2-cacerts.py).
      echo "-machine q35 -m 512 -bios /usr/share/ovmf/OVMF.fd"
      echo "-fw_cfg name=opt/org.tianocore/IPv6Support,string=no"
      echo "-fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=no"
      [ "$scenario" = uefi-https ] && echo "-fw_cfg name=etc/edk2/https/cacerts,file=$LAB_TLS/cacerts.bin"
      [ "$scenario" = uefi-https-wrong-ca ] && echo "-fw_cfg name=etc/edk2/https/cacerts,file=$LAB_TLS/other-cacerts.bin"
      echo "-device virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1" ;;
    uefi|uefi-http|uefi-ipv6|uefi-ipv6-only|uefi-http-ipv6)
      # romfile= : no iPXE ROM, so OVMF's own VirtioNetDxe + PXE/HTTP boot stack does the work.
      # IPv6Support=no drops the PXEv6/HTTPv6 boot entries (each would cost a DHCPv6 timeout).
      # uefi-ipv6 keeps them and drops PXEv4 instead: its first entry is then "UEFI PXEv6".
      echo "-machine q35 -m 512 -bios /usr/share/ovmf/OVMF.fd"
      if [ "$scenario" = uefi-ipv6 ] || [ "$scenario" = uefi-ipv6-only ]; then
        echo "-fw_cfg name=opt/org.tianocore/IPv6Support,string=yes"
        echo "-fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=no"
      elif [ "$scenario" = uefi-http-ipv6 ]; then
        # HTTP boot over IPv6: both PXE entries off, so the entries are HTTPv4, then HTTPv6.
        # HTTPv4 waits out its DHCPv4 retries (~70 s: nothing answers DHCPv4 here) before
        # HTTPv6 runs. IPv4Support=no would drop HTTPv4, but then OVMF 2022.11's HTTPv6 entry
        # fails at once ("Unexpected network error", no Solicit sent; measured with bootpolicy
        # up, RA with M+O or O only): LAB_HTTP6_IPV4=off reproduces that.
        echo "-fw_cfg name=opt/org.tianocore/IPv6Support,string=yes"
        echo "-fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=no"
        echo "-fw_cfg name=opt/org.tianocore/IPv6PXESupport,string=no"
        if [ "${LAB_HTTP6_IPV4:-on}" = off ]; then echo "-fw_cfg name=opt/org.tianocore/IPv4Support,string=no"; fi
      else
        echo "-fw_cfg name=opt/org.tianocore/IPv6Support,string=no"
      fi
      # HTTP boot entries come after PXE ones; turning PXE off makes HTTPv4 the first entry.
      [ "$scenario" = uefi-http ] && echo "-fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=no"
      echo "-device virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1" ;;
  esac
}

prepare_root() {
  local root=$1 scenario=${2:-}
  mkdir -p "$root"
  cp /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/ipxe.efi /usr/lib/ipxe/snponly.efi "$root/"
  sed "s/BOOTPOLICY-LAB-REACHED/$MARKER/" "$LAB_DIR/bootstrap.ipxe" >"$root/bootstrap.ipxe"
  if [ "$scenario" = uefi-secureboot ]; then
    # The names secure-boot.lua hands out by default: shim loads grubx64.efi from beside itself.
    cp "$SB_DIR/shimx64.efi" "$SB_DIR/grubx64.efi" "$SB_DIR/linux" "$SB_DIR/initrd.gz" "$root/"
  fi
  chmod -R a+rX "$root"
}

# --- HTTPS boot: the lab's own CA ------------------------------------------------------------
# A CA made for this lab run, a server certificate it signed for https://192.168.77.2:8443
# (subject alternative name IP 192.168.77.2: EDK2 checks the host it connects to), and the CA
# in the form OVMF reads from fw_cfg.
LAB_TLS=""
LAB_TLS_PORT=8443
https_files() {
  [ -n "$LAB_TLS" ] && [ -s "$LAB_TLS/cacerts.bin" ] && return 0
  LAB_TLS=$WORK/tls
  mkdir -p "$LAB_TLS"
  (
    cd "$LAB_TLS"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=bootpolicy lab CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=$LAB_BOOT_IP"
    printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n' "$LAB_BOOT_IP" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
    # A stranger's CA, for uefi-https-wrong-ca: same name, another key.
    openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 2 -subj "/CN=bootpolicy lab CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  ) >"$WORK/tls.log" 2>&1 || { cat "$WORK/tls.log" >&2; lab_die "https: could not make the lab's CA and certificate (openssl)"; }
  python3 "$LAB_DIR/edk2-cacerts.py" "$LAB_TLS/ca.pem" "$LAB_TLS/cacerts.bin"
  python3 "$LAB_DIR/edk2-cacerts.py" "$LAB_TLS/other-ca.pem" "$LAB_TLS/other-cacerts.bin"
  chmod 644 "$LAB_TLS"/*
}

# --- Secure Boot: Debian's signed chain ------------------------------------------------------
# shim-signed's shimx64.efi (signed by Microsoft), grub-efi-amd64-signed's netboot GRUB (signed
# by Debian, trusted through shim) and the signed kernel linux-image-amd64 depends on: fetched
# with `apt-get download` (nothing is installed on the host) and unpacked into a cache named by
# their versions. The initrd is the lab's own: one static /init (scripts/lab/sb-init.c) that
# prints the marker; initrds are not signature-checked.
SB_CACHE=${LAB_SB_CACHE:-/var/cache/bootpolicy-lab/secureboot}
SB_DIR=""
SB_VERSIONS=""
secureboot_files() {
  local kernel shim_v grub_v kernel_v dir tmp deb
  kernel=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$kernel" ]; then apt-get update -qq; kernel=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); fi
  [ -n "$kernel" ] || lab_die "secure boot: apt knows no linux-image-amd64 (apt sources?)"
  shim_v=$(apt-cache policy shim-signed | awk '/Candidate:/ {print $2}')
  grub_v=$(apt-cache policy grub-efi-amd64-signed | awk '/Candidate:/ {print $2}')
  kernel_v=$(apt-cache policy "$kernel" | awk '/Candidate:/ {print $2}')
  SB_VERSIONS="shim-signed $shim_v, grub-efi-amd64-signed $grub_v, $kernel $kernel_v"
  dir=$SB_CACHE/$(printf '%s' "$SB_VERSIONS" | sha256sum | cut -c1-16)
  if [ ! -s "$dir/linux" ] || [ ! -s "$dir/shimx64.efi" ] || [ ! -s "$dir/grubx64.efi" ]; then
    lab_log "secure boot: fetching $SB_VERSIONS"
    tmp=$(mktemp -d /tmp/bp-lab-sb.XXXXXX)
    chmod 777 "$tmp"
    if ! (cd "$tmp" && apt-get download -q shim-signed grub-efi-amd64-signed "$kernel" >download.log 2>&1); then
      tail -n 5 "$tmp/download.log" >&2; rm -rf "$tmp"; lab_die "secure boot: apt-get download failed"
    fi
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done
    mkdir -p "$dir"
    cp "$tmp/x/usr/lib/shim/shimx64.efi.signed" "$dir/shimx64.efi"
    cp "$tmp/x/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed" "$dir/grubx64.efi"
    cp "$tmp"/x/boot/vmlinuz-* "$dir/linux"
    rm -rf "$tmp"
  fi
  # Built each run: the marker is compiled in (LAB_MARKER can change it).
  cc -static -Os -s "-DMARKER=\"$MARKER\"" -o "$dir/init" "$LAB_DIR/sb-init.c" \
    || lab_die "secure boot: cannot build the initrd's static /init (gcc, libc6-dev)"
  python3 "$LAB_DIR/mkinitrd.py" "$dir/init" "$dir/initrd.gz"
  SB_DIR=$dir
}

# The config the lab gives bootpolicy: the chosen policy, told to print the marker and then
# stay in the iPXE shell (so the console shows where the client stopped).
write_lab_config() {
  local file=$1 scenario=${2:-} policy=${POLICY:-$REPO/policies/arch-aware.lua}
  [ -f "$policy" ] || lab_die "policy $policy does not exist (give --policy FILE)"
  if [ "$scenario" = uefi-secureboot ] && [ -z "$POLICY" ]; then
    # The shipped Secure Boot policy: shim, then GRUB, then the grub.cfg it writes for this
    # machine, whose kernel arguments carry the marker for the lab's initrd to print.
    cat >"$file" <<EOF
# Generated by scripts/lab.sh for one lab run.
policies:
  - file: $REPO/policies/secure-boot.lua
    config:
      cmdline: "console=ttyS0 panic=-1"
  - file: $REPO/policies/arch-aware.lua
    config:
      http_port: 8080
log:
  format: text
  level: debug
EOF
    return 0
  fi
  # HTTPS scenarios: HTTPS beside HTTP, and arch-aware hands HTTP boot firmware https://
  # (config.https) and iPXE its per-machine script over plain HTTP (Debian's iPXE trusts no
  # private CA).
  local tls="" https=""
  if https_boot "$scenario"; then
    tls="http:
  tls: {certificate: $LAB_TLS/server.pem, key: $LAB_TLS/server.key, port: $LAB_TLS_PORT}"
    [ -z "$POLICY" ] && https="
      https: true"
  fi
  cat >"$file" <<EOF
# Generated by scripts/lab.sh for one lab run.
$tls
policies:
  - file: $policy
    config:
      http_port: 8080$https
      script:
        echo: ["$MARKER \${mac} platform=\${platform} buildarch=\${buildarch}"]
        finally: shell
log:
  format: text
  level: debug
EOF
}

start_site_dhcp() {
  local dir=$1 mode=${2:-site} scenario=${3:-} ra=()
  if [ "$mode" = full ]; then
    # No site DHCP server: bootpolicy hands out the addresses. The site namespace still sends
    # the router advertisement (dnsmasq with an RA-only range answers no DHCPv4 at all).
    [ "$RA" -eq 1 ] || return 0
    lab_spawn "$LAB_NS_SITE" "$dir/site-ra.log" dnsmasq --no-daemon --conf-file=/dev/null \
      --pid-file= --port=0 --interface=site0 --bind-interfaces \
      --enable-ra "--dhcp-range=fd77::,ra-only,64" --log-facility=-
    sleep 0.5
    kill -0 "$LAB_LAST_PID" 2>/dev/null || { tail -n 20 "$dir/site-ra.log" >&2; lab_die "the RA sender did not start"; }
    return 0
  fi
  if [ "$mode" = v6only ]; then
    # IPv6-only LAN: the site is only a router. dnsmasq needs a stateful DHCPv6 range to send
    # an RA with M and O (A off, router lifetime 0); --dhcp-ignore=tag:!known (no --dhcp-host
    # entries) makes it answer no DHCPv6 client, and it has no DHCPv4 range at all.
    [ "$RA" -eq 1 ] || return 0
    lab_spawn "$LAB_NS_SITE" "$dir/site-ra.log" dnsmasq --no-daemon --conf-file=/dev/null \
      --pid-file= --port=0 --interface=site0 --bind-interfaces \
      "--dhcp-range=fd77::100,fd77::1ff,64,1h" "--dhcp-ignore=tag:!known" \
      --enable-ra --ra-param=site0,10,0 --dhcp-leasefile="$dir/site.leases" --log-dhcp --log-facility=-
    sleep 0.5
    kill -0 "$LAB_LAST_PID" 2>/dev/null || { tail -n 20 "$dir/site-ra.log" >&2; lab_die "the RA sender did not start"; }
    return 0
  fi
  # Site DHCP: addresses only, no boot options, like a real office router.
  if [ "$scenario" = uefi-ipv6 ]; then
    # The site's DHCPv6 server too: stateful addresses from fd77::100-1ff, no boot options. Its
    # RA (dnsmasq's default for a DHCPv6 range) sets M and O and leaves A off, so clients take
    # their address from DHCPv6 only; router lifetime 0: on-link prefix, not a default router.
    ra=("--dhcp-range=fd77::100,fd77::1ff,64,1h")
    [ "$RA" -eq 1 ] && ra+=(--enable-ra --ra-param=site0,10,0)
  elif [ "$RA" -eq 1 ]; then
    # A router advertisement without M/O flags lets iPXE's IPv6 autoconfiguration finish at
    # once instead of waiting for it to time out (~13 s) before the first download.
    ra=(--enable-ra "--dhcp-range=fd77::,ra-only,64")
  fi
  lab_spawn "$LAB_NS_SITE" "$dir/site-dhcp.log" dnsmasq --no-daemon --conf-file=/dev/null \
    --pid-file= --port=0 --interface=site0 --bind-interfaces \
    --dhcp-range=192.168.77.100,192.168.77.150,255.255.255.0,10m \
    --dhcp-leasefile="$dir/site.leases" --dhcp-authoritative --no-ping \
    "${ra[@]}" --log-dhcp --log-facility=-
  lab_wait_listen "$LAB_NS_SITE" "udp 67" "$LAB_LAST_PID" 10 || {
    tail -n 20 "$dir/site-dhcp.log" >&2; lab_die "site DHCP server did not start"; }
  if [ "$scenario" = uefi-ipv6 ]; then
    lab_wait_listen "$LAB_NS_SITE" "udp 547" "$LAB_LAST_PID" 10 || {
      tail -n 20 "$dir/site-dhcp.log" >&2; lab_die "site DHCPv6 server did not start"; }
  fi
}

SERVER_LOG=""
start_boot_server() {
  local server=$1 dir=$2 mode=${3:-site} scenario=${4:-} root=$2/root pid
  SERVER_LOG="$dir/server.log"
  if [ "$server" = dnsmasq ]; then
    # The reference: dnsmasq's ProxyDHCP rule in its working form.
    lab_spawn "$LAB_NS_BOOT" "$SERVER_LOG" dnsmasq --no-daemon --conf-file=/dev/null --pid-file= \
      --port=0 --interface=boot0 --bind-interfaces --dhcp-range="$LAB_BOOT_IP,proxy" \
      --dhcp-match=IPXEBOOT,175 --dhcp-boot="net:IPXEBOOT,bootstrap.ipxe,,$LAB_BOOT_IP" \
      --dhcp-boot="undionly.kpxe,,$LAB_BOOT_IP" --pxe-prompt=PXE,0 \
      --enable-tftp --tftp-root="$root" --log-dhcp --log-facility=-
    pid=$LAB_LAST_PID
  else
    local args=(serve --interface boot0 --proxy --tftp-root "$root" --http-port 8080 --http-root "$root")
    if [ "$mode" = full ]; then
      # The only DHCP server of the LAN: addresses, leases in SQLite, the boot answer in the
      # same OFFER/ACK.
      args=(serve --interface boot0 --no-proxy --dhcp-range 192.168.77.100,192.168.77.150,255.255.255.0,10m
            --state "$dir/state.db" --tftp-root "$root" --http-port 8080 --http-root "$root")
    fi
    # DHCPv6 on boot0 as well (547 and 4011), boot-only beside the site's DHCPv6 server; TFTP
    # and HTTP then also listen on fd77::2, the host of the tftp://[fd77::2]/... URLs. In full
    # DHCP mode bootpolicy is the link's DHCPv6 server too (stateful range, IA_NA + option 59).
    if [ "$scenario" = uefi-ipv6 ]; then
      args+=(--dhcp6)
      [ "$mode" = full ] && args+=(--dhcp-range fd77::100,fd77::1ff,64,1h)
    fi
    if [ "$mode" = v6only ]; then
      # IPv6-only LAN: no DHCPv4 server (--no-dhcp), the link's stateful DHCPv6 server: IA_NA
      # addresses with the boot URL in the same Advertise/Reply (iPXE has no proxy support).
      args=(serve --interface boot0 --no-dhcp --no-proxy --dhcp6 --dhcp-range fd77::100,fd77::1ff,64,1h
            --state "$dir/state.db" --tftp-root "$root" --http-port 8080 --http-root "$root")
    fi
    if [ -n "$CONFIG" ]; then
      args+=(--config "$CONFIG")
      [ -z "$POLICY" ] || args+=(--policy "$POLICY")
    else
      write_lab_config "$dir/lab.yaml" "$scenario"
      args+=(--config "$dir/lab.yaml")
    fi
    # LAB_SERVE replaces "bootpolicy serve" with another way to start it (the package test:
    # setpriv as the unit's user; the image test: podman run --net=host IMAGE). By default the
    # lab's server keeps root: its roots are in root's own temporary folder.
    local serve
    if [ -n "${LAB_SERVE:-}" ]; then
      read -r -a serve <<<"$LAB_SERVE"
      args=("${args[@]:1}")
    else
      serve=("$BOOTPOLICY_BIN" serve)
      args=("${args[@]:1}" --user root)
    fi
    printf '%s\n' "lab: ${serve[*]} ${args[*]}" >"$dir/server.cmd"
    if [ -n "${LAB_SERVE:-}" ]; then
      # nsenter, not ip netns exec: only the network namespace changes, so a container
      # runtime keeps the host's /sys and cgroups (ip netns exec mounts a fresh /sys).
      nsenter --net="/run/netns/$LAB_NS_BOOT" "${serve[@]}" "${args[@]}" >"$SERVER_LOG" 2>&1 &
      LAB_LAST_PID=$!
      LAB_PIDS+=("$LAB_LAST_PID")
    else
      lab_spawn "$LAB_NS_BOOT" "$SERVER_LOG" "${serve[@]}" "${args[@]}"
    fi
    pid=$LAB_LAST_PID
    lab_wait_listen "$LAB_NS_BOOT" "tcp 8080" "$pid" 30 || {
      tail -n 40 "$SERVER_LOG" >&2; lab_die "bootpolicy did not start listening on tcp 8080"; }
    # Who serves: root kept, root given up, or started unprivileged (the package tests read it).
    lab_log "bootpolicy $(grep -m 1 -oE '(running as|gave up root) .*' "$SERVER_LOG" || echo '(no identity line)')"
  fi
  if [ "$mode" != v6only ]; then
    lab_wait_listen "$LAB_NS_BOOT" "udp 67" "$pid" 30 || {
      tail -n 40 "$SERVER_LOG" >&2; lab_die "$server did not start listening on udp 67"; }
  fi
  if [ "$server" = bootpolicy ] && { [ "$scenario" = uefi-ipv6 ] || [ "$mode" = v6only ]; }; then
    lab_wait_listen "$LAB_NS_BOOT" "udp 547" "$pid" 30 || {
      tail -n 40 "$SERVER_LOG" >&2; lab_die "bootpolicy --dhcp6 did not start listening on udp 547"; }
  fi
  BOOT_SERVER_PID=$pid
}

start_capture() {
  local dir=$1 i
  # Text for the timeline (DHCP, TFTP read requests, HTTP requests toward the server) ...
  lab_spawn "$LAB_NS_BOOT" "$dir/packets.err" sh -c \
    "exec tcpdump -Z root -l -n -tt -vvv -A -s 0 -i boot0 'udp port 67 or udp port 68 or udp port 4011 or udp port 546 or udp port 547 or udp dst port 69 or tcp dst port 8080 or (tcp dst port $LAB_TLS_PORT and tcp[tcpflags] & tcp-syn != 0)' >'$dir/packets.txt'"
  local text_pid=$LAB_LAST_PID
  # ... and the firmware's DHCP and DHCPv6 exchanges as a pcap, the project's recording of real
  # firmware (4011 is EDK2's PXE follow-up in both families).
  # LAB_PCAP_ALL=1 (diagnosis) records every packet on boot0 instead (ICMPv6 ND, TCP, TFTP data).
  local filter='udp port 67 or udp port 68 or udp port 4011 or udp port 546 or udp port 547'
  [ -n "${LAB_PCAP_ALL:-}" ] && filter=''
  lab_spawn "$LAB_NS_BOOT" "$dir/pcap.err" tcpdump -Z root -U -n -s 0 -i boot0 -w "$dir/dhcp.pcap" $filter
  PCAP_PID=$LAB_LAST_PID
  for ((i = 0; i < 50; i++)); do
    grep -q 'listening on' "$dir/packets.err" 2>/dev/null && grep -q 'listening on' "$dir/pcap.err" 2>/dev/null && return 0
    if ! kill -0 "$text_pid" 2>/dev/null || ! kill -0 "$PCAP_PID" 2>/dev/null; then break; fi
    sleep 0.2
  done
  cat "$dir/packets.err" "$dir/pcap.err" >&2
  lab_die "tcpdump did not start in $LAB_NS_BOOT"
}

clean_serial() {
  # Drop terminal escapes (SeaBIOS sercon positions every character) and carriage returns.
  sed -e 's/\x1b\[[0-9;?=]*[A-Za-z]//g' -e 's/\x1b[()][A-Za-z0-9]//g' "$1" 2>/dev/null | tr -d '\r\b'
}

# Prints one stage line once: "  <secs> s  <text>".
declare -A SEEN
stage() {
  local key=$1 t=$2 text=$3
  [ -n "${SEEN[$key]:-}" ] && return 0
  SEEN[$key]=$t
  printf '  %7.1f s  %s\n' "$t" "$text"
}

# Reads events.awk output and prints the stages reached so far. Times are the packets' own
# timestamps minus VM start, so the poll interval does not blur them.
update_stages() {
  local events=$1 start=$2 t kind a b c ipxe_t=""
  while read -r t kind a b c; do
    t=$(awk -v t="$t" -v s="$start" 'BEGIN { printf "%.1f", t - s }')
    case "$kind" in
      dhcp-fw)   stage dhcp "$t" "DHCP seen: firmware, vendor class $b" ;;
      dhcp-ipxe) stage dhcp "$t" "DHCP seen: iPXE, vendor class $b"
                 stage ipxe "$t" "iPXE DHCP (option 175 / user class iPXE)"
                 ipxe_t=$t ;;
      dhcp6-fw)
        # OVMF's IP stack solicits too (after an RA with M set), without a vendor class.
        if [ "$b" = - ]; then stage dhcp6-stack "$t" "DHCPv6 Solicit seen: firmware's IPv6 stack (no vendor class)"
        else stage dhcp6 "$t" "DHCPv6 Solicit seen: firmware, vendor class $b"; fi ;;
      dhcp6-ipxe) stage dhcp6-ipxe "$t" "DHCPv6 Solicit seen: iPXE, vendor class $b"
                  ipxe_t=$t ;;
      dhcp6-adv)
        if [[ "$b" == *.ipxe* ]]; then stage dhcp6-adv-ipxe "$t" "DHCPv6 Advertise with the script URL to $a: $b"
        else stage dhcp6-adv "$t" "DHCPv6 Advertise with a boot file URL to $a: $b$([ "${c:--}" = - ] || echo " (vendor class $c)")"; fi ;;
      dhcp-reply) stage dhcp-reply "$t" "DHCPv4 answer seen on the LAN" ;;
      tls-syn) stage tls "$t" "TCP connection to the HTTPS port $LAB_TLS_PORT from $a (encrypted: the file is not seen)" ;;
      dhcp6-req4011) stage dhcp6-req "$t" "DHCPv6 Request to port 4011 from $a" ;;
      dhcp6-rep4011) stage dhcp6-rep "$t" "DHCPv6 Reply from port 4011 to $a: $b" ;;
      tftp|http)
        stage file "$t" "first file by ${kind^^}: $a${b:+ (client $b)}"
        if [ -n "$ipxe_t" ]; then
          stage script "$t" "script fetched by ${kind^^}: $a${b:+ (client $b)}"
        fi ;;
    esac
  done <"$events"
}

# want: what the fetched paths must include (default an iPXE script; GRUB's config for the
# Secure Boot chain).
api_check() {
  local mac=$1 dir=$2 want=${3:-'\.ipxe'} json
  json=$(ip netns exec "$LAB_NS_BOOT" curl -sf --max-time 5 "http://$LAB_BOOT_IP:8080/api/clients" 2>/dev/null) || {
    echo "  api: /api/clients not available (HTTP error or no server; not checked)"; return 0; }
  printf '%s\n' "$json" >"$dir/api-clients.json"
  if ! printf '%s' "$json" | jq -e . >/dev/null 2>&1; then
    echo "  api: /api/clients is not JSON (not checked)"; return 0
  fi
  local want_mac=${mac//:/}
  local fetched
  fetched=$(printf '%s' "$json" | jq -r --arg m "$want_mac" '
    [.. | objects | select(has("mac") and has("events"))
        | select((.mac | ascii_downcase | gsub("[^0-9a-f]"; "")) == $m)
        | .events[] | select(.stage == "http" or .stage == "tftp")
        | (.stage + " " + (.fields.path // .fields.file // .summary))] | .[]' 2>/dev/null)
  if [ -z "$fetched" ]; then
    echo "  api: FAIL: /api/clients shows no http/tftp fetch for $mac"
    return 1
  fi
  if ! printf '%s\n' "$fetched" | grep -q "$want"; then
    echo "  api: FAIL: $mac fetched [$(printf '%s' "$fetched" | tr '\n' ';')] but nothing matching $want"
    return 1
  fi
  echo "  api: /api/clients lists $mac with: $(printf '%s' "$fetched" | tr '\n' ';')"
}

# Full DHCP: the VM's lease as the control API lists it.
lease_check() {
  local mac=$1 dir=$2 json
  json=$(ip netns exec "$LAB_NS_BOOT" curl -sf --max-time 5 "http://$LAB_BOOT_IP:8080/api/v1/leases?active=true" 2>/dev/null) || {
    echo "  leases: FAIL: /api/v1/leases did not answer"; return 1; }
  printf '%s\n' "$json" >"$dir/api-leases.json"
  local address
  address=$(printf '%s' "$json" | jq -r --arg m "$mac" '.leases[] | select(.mac == $m and .state == "bound") | .address' 2>/dev/null | head -n 1)
  if [ -z "$address" ]; then
    echo "  leases: FAIL: no bound lease for $mac in /api/v1/leases"
    return 1
  fi
  echo "  leases: $mac holds $address (from bootpolicy, the only DHCP server)"
  [ "${3:-}" = uefi-ipv6 ] || return 0
  # The DHCPv6 binding OVMF's PXE took is gone by now: OVMF releases it before it starts the
  # boot file (bootpolicy drops a released binding), and iPXE then takes its IPv6 address by
  # SLAAC from the RA-only advertisement. The log shows the grant and the Release.
  local release
  release=$(grep -m 1 -E "DHCPv6\([^)]*\) release $mac .*-> REPLY" "$SERVER_LOG" || true)
  echo "  leases: DHCPv6 $(if [ -n "$release" ]; then echo "binding released by the firmware: $(cut -c1-160 <<<"$release")"; else echo "binding: no Release logged"; fi)"
}

# IPv6-only: iPXE keeps its DHCPv6 binding (it never releases it), so /api/v1/leases lists it
# under dhcp6, bound.
v6_lease_check() {
  local mac=$1 dir=$2 json bound
  json=$(ip netns exec "$LAB_NS_BOOT" curl -sf --max-time 5 "http://$LAB_BOOT_IP:8080/api/v1/leases?active=true" 2>/dev/null) || {
    echo "  leases: FAIL: /api/v1/leases did not answer"; return 1; }
  printf '%s\n' "$json" >"$dir/api-leases.json"
  bound=$(printf '%s' "$json" | jq -r --arg m "$mac" '[.dhcp6.leases[]? | select(.state == "bound" and (.address | startswith("fd77:")) and .mac == $m)] | map(.address + " bound, client_id " + (.client_id // "?")) | join("; ")' 2>/dev/null || true)
  if [ -z "$bound" ]; then
    echo "  leases: FAIL: no DHCPv6 binding for $mac in /api/v1/leases"
    return 1
  fi
  echo "  leases: DHCPv6 bindings of $mac: $bound (bootpolicy, the only DHCPv6 server)"
}

# uefi-ipv6: the firmware's own boot went over IPv6 through bootpolicy. Its log must show the
# boot-only Advertise with a tftp://[fd77::2]/ URL, the answer to EDK2's 4011 Request, and a
# completed TFTP transfer of an .efi file to an fd77:: client address.
# Full DHCP: the Advertise and the Reply to the Request (to 547) carry the client's address,
# and EDK2 boots from that address offer without the 4011 exchange.
V6_FAIL=""
v6_check() {
  local mac=$1 mode=$2 log=$SERVER_LOG adv rep tftp
  V6_FAIL=""
  if [ "$mode" = full ]; then
    adv=$(grep -m 1 -E "DHCPv6\([^)]*\) solicit $mac .*-> ADVERTISE fd77:[0-9a-f:]+ url=tftp://\[$LAB_BOOT_IP6\]/" "$log" || true)
    rep=$(grep -m 1 -E "DHCPv6\([^)]*\) request $mac .*-> REPLY fd77:[0-9a-f:]+ url=tftp://\[$LAB_BOOT_IP6\]/" "$log" || true)
  else
    adv=$(grep -m 1 -E "DHCPv6\([^)]*\) solicit $mac .*-> ADVERTISE url=tftp://\[$LAB_BOOT_IP6\]/" "$log" || true)
    rep=$(grep -m 1 -E "DHCPv6\([^)]*\) request $mac .*-> REPLY url=tftp://\[$LAB_BOOT_IP6\]/.* to \[[0-9a-f:]+\]:4011" "$log" || true)
  fi
  tftp=$(grep -m 1 -E "TFTP transfer" "$log" | grep -E 'fd77:' | grep -E '\.efi' | grep -E 'outcome=ok|"ok"|: ok' || true)
  [ -z "$tftp" ] && tftp=$(grep -E "TFTP transfer" "$log" | grep -E 'fd77:' | grep -E '\.efi' | grep -m 1 -E '\bok\b' || true)
  if [ -n "$adv" ]; then echo "  v6: $(cut -c1-220 <<<"$adv")"; else V6_FAIL+=" no DHCPv6 ADVERTISE with tftp://[$LAB_BOOT_IP6]/ for $mac;"; fi
  if [ -n "$rep" ]; then echo "  v6: $(cut -c1-220 <<<"$rep")"
  elif [ "$mode" = full ]; then V6_FAIL+=" no DHCPv6 REPLY with an address and the URL;"
  else V6_FAIL+=" no DHCPv6 REPLY to the 4011 Request;"; fi
  if [ -n "$tftp" ]; then echo "  v6: $(cut -c1-220 <<<"$tftp")"; else V6_FAIL+=" no completed TFTP transfer of an .efi file to an fd77:: address;"; fi
  [ -z "$V6_FAIL" ]
}

# IPv6-only scenarios: every step of the chain went over IPv6 through bootpolicy, and nothing
# answered DHCPv4. bootpolicy's log must show the firmware's Advertise and Reply with an fd77::
# address and its boot URL (tftp://[fd77::2]/ for PXEv6, http://[fd77::2]:8080/ for HTTPv6, the
# latter with vendor class HTTPClient in the Advertise on the wire), the boot file fetched from
# an fd77:: address, iPXE's Advertise and Reply with the script URL http://[fd77::2]:8080/...,
# and the script's GET on the wire from the address of that Reply; /api/clients must list that
# address with the script fetch.
V6ONLY_FAIL=""
v6only_check() {
  local scenario=$1 mac=$2 dir=$3 log=$SERVER_LOG events=$3/events.txt fw_url adv rep file ipxe_adv ipxe_rep addr get api
  V6ONLY_FAIL=""
  # The marker can be on the console before the poll loop has read the script's GET: read the
  # packets again now (tcpdump writes them line-buffered).
  awk -v mac="$mac" -v eui="$(eui64_of "$mac")" -f "$LAB_DIR/events.awk" "$dir/packets.txt" >"$events" 2>/dev/null || true
  if [ "$scenario" = uefi-http-ipv6 ]; then fw_url="http://\[$LAB_BOOT_IP6\]:8080/[^ ]*\.efi"; else fw_url="tftp://\[$LAB_BOOT_IP6\]/[^ ]*\.efi"; fi
  adv=$(grep -m 1 -E "DHCPv6\([^)]*\) solicit $mac .*firmware=(uefi|http-boot) -> ADVERTISE fd77:[0-9a-f:]+ url=$fw_url" "$log" || true)
  rep=$(grep -m 1 -E "DHCPv6\([^)]*\) request $mac .*firmware=(uefi|http-boot) -> REPLY fd77:[0-9a-f:]+ url=$fw_url" "$log" || true)
  if [ "$scenario" = uefi-http-ipv6 ]; then
    file=$(grep -m 1 -E '^[0-9.]+ http /[^ ]*\.efi fd77:' "$events" || true)
    grep -qE '^[0-9.]+ dhcp6-adv [^ ]+ http://[^ ]+ HTTPClient' "$events" \
      || V6ONLY_FAIL+=" the firmware's Advertise on the wire has no vendor class HTTPClient;"
  else
    file=$(grep -E "TFTP transfer" "$log" | grep -E 'client=fd77:' | grep -E '\.efi' | grep -m 1 -E 'outcome=ok' || true)
  fi
  ipxe_adv=$(grep -m 1 -E "DHCPv6\([^)]*\) solicit $mac .*firmware=ipxe -> ADVERTISE fd77:[0-9a-f:]+ url=http://\[$LAB_BOOT_IP6\]:8080/[^ ]*\.ipxe" "$log" || true)
  ipxe_rep=$(grep -m 1 -E "DHCPv6\([^)]*\) request $mac .*firmware=ipxe -> REPLY fd77:[0-9a-f:]+ url=http://\[$LAB_BOOT_IP6\]:8080/[^ ]*\.ipxe" "$log" || true)
  addr=$(grep -oE -- '-> REPLY fd77:[0-9a-f:]+' <<<"$ipxe_rep" | awk '{print $3}')
  [ -z "$addr" ] || get=$(grep -m 1 -E "^[0-9.]+ http /[^ ]*\.ipxe[^ ]* $addr\$" "$events" || true)
  if [ -n "$adv" ]; then echo "  v6: firmware: $(cut -c1-230 <<<"${adv#*] }")"; else V6ONLY_FAIL+=" no firmware ADVERTISE with an fd77:: address and its boot URL;"; fi
  if [ -n "$rep" ]; then echo "  v6: firmware: $(cut -c1-230 <<<"${rep#*] }")"; else V6ONLY_FAIL+=" no firmware REPLY with an fd77:: address and its boot URL;"; fi
  if [ -n "$file" ]; then echo "  v6: boot file over IPv6: $(cut -c1-200 <<<"$file")"; else V6ONLY_FAIL+=" the boot file was not fetched from an fd77:: address;"; fi
  if [ -n "$ipxe_adv" ]; then echo "  v6: iPXE: $(cut -c1-230 <<<"${ipxe_adv#*] }")"; else V6ONLY_FAIL+=" no ADVERTISE with the script URL for iPXE;"; fi
  if [ -n "$ipxe_rep" ]; then echo "  v6: iPXE: $(cut -c1-230 <<<"${ipxe_rep#*] }")"; else V6ONLY_FAIL+=" no REPLY with the script URL for iPXE;"; fi
  if [ -n "${get:-}" ]; then echo "  v6: script GET on the wire from $addr: $(awk '{print $3}' <<<"$get" | cut -c1-120)"
  else V6ONLY_FAIL+=" no GET of the .ipxe script from iPXE's DHCPv6 address ${addr:-?};"; fi
  # /api/clients: the client record with that address lists the script fetch.
  if [ -n "$addr" ] && [ -s "$dir/api-clients.json" ]; then
    api=$(jq -r --arg a "$addr" '[.clients[]? | select(.address == $a) | .events[] | select(.stage == "http") | .summary] | map(select(test("\\.ipxe"))) | .[0] // empty' "$dir/api-clients.json" 2>/dev/null || true)
    if [ -n "$api" ]; then echo "  v6: /api/clients: client address $addr: $api"; else V6ONLY_FAIL+=" /api/clients has no client at $addr with the script fetch;"; fi
  fi
  # Nothing answered DHCPv4 on this LAN (the site has no DHCPv4 range, bootpolicy runs --no-dhcp).
  if grep -q ' dhcp-reply ' "$events"; then V6ONLY_FAIL+=" a DHCPv4 answer was seen on the IPv6-only LAN;"
  else echo "  v6: no DHCPv4 answer on the LAN ($(grep -c -E ' dhcp-(fw|ipxe) ' "$events") DHCPv4 requests from the VM went unanswered)"; fi
  [ -z "$V6ONLY_FAIL" ]
}

# uefi-secureboot: the signed chain ran with enforcement on. The console must show the kernel's
# own "Secure boot enabled" and the initrd's marker line with this machine's MAC (which only
# the grub.cfg generated for it puts on the command line) and the kernel's lockdown in
# integrity mode (Debian's kernel turns it on when the firmware booted it with Secure Boot on;
# the SecureBoot variable itself needs efivarfs, a module the initrd does not load); bootpolicy's log
# must show each file of the chain sent whole by TFTP: shim, GRUB, the generated grub.cfg,
# the kernel and the initrd.
SB_FAIL=""
secureboot_check() {
  local mac=$1 dir=$2 serial line f t
  SB_FAIL=""
  serial=$(clean_serial "$dir/serial.log")
  line=$(grep -a -m 1 -oE 'secureboot: Secure boot enabled' <<<"$serial" || true)
  if [ -n "$line" ]; then echo "  sb: kernel: $line"; else SB_FAIL+=" the kernel did not say 'Secure boot enabled';"; fi
  line=$(grep -a -m 1 -E "^${MARKER} " <<<"$serial" || true)
  if grep -qF "$MARKER $mac " <<<"$line" && grep -qE 'secureboot=on|lockdown=integrity' <<<"$line"; then echo "  sb: initrd: $line"
  else SB_FAIL+=" the marker line [${line:-none}] lacks $mac or lockdown [integrity];"; fi
  for f in shimx64.efi grubx64.efi 'grub\.cfg[^ ]*' linux initrd.gz; do
    t=$(grep -E "TFTP transfer" "$SERVER_LOG" | grep -E "file=/?(grub/)?$f( |\$)" | grep -m 1 'outcome=ok' || true)
    if [ -n "$t" ]; then echo "  sb: $(grep -oE 'file=[^ ]+' <<<"$t") $(grep -oE 'bytes=[0-9]+' <<<"$t") $(grep -oE 'ms=[0-9]+' <<<"$t")"
    else SB_FAIL+=" no completed TFTP transfer of $f;"; fi
  done
  [ -z "$SB_FAIL" ]
}

# uefi-https: the firmware's boot file came over TLS. bootpolicy's answer to the HTTP boot
# request names https://192.168.77.2:8443/, the VM opened a connection to that port, and
# /api/clients shows the boot file fetched with scheme https (the request itself is encrypted
# on the wire); the per-machine script then comes over HTTP, as the marker shows.
HTTPS_FAIL=""
https_check() {
  local mac=$1 dir=$2 offer syn api
  HTTPS_FAIL=""
  offer=$(grep -m 1 -E "$mac (DISCOVER|REQUEST) .*firmware=http-boot .*file=https://$LAB_BOOT_IP:$LAB_TLS_PORT/[^ ]*\.efi" "$SERVER_LOG" || true)
  if [ -n "$offer" ]; then echo "  https: $(grep -oE '(DISCOVER|REQUEST) .*' <<<"$offer" | cut -c1-160)"
  else HTTPS_FAIL+=" no DHCP answer with an https://$LAB_BOOT_IP:$LAB_TLS_PORT/ boot file;"; fi
  syn=$(grep -m 1 -E "^[0-9.]+ tls-syn " "$dir/events.txt" || true)
  if [ -n "$syn" ]; then echo "  https: TCP connection to port $LAB_TLS_PORT from $(awk '{print $3}' <<<"$syn")"
  else HTTPS_FAIL+=" no TCP connection to port $LAB_TLS_PORT on the wire;"; fi
  api=$(jq -r --arg m "${mac//:/}" '[.clients[]? | select((.mac | ascii_downcase | gsub("[^0-9a-f]"; "")) == $m) | .events[]
        | select(.stage == "http" and .fields.scheme == "https") | .summary] | (map(select(startswith("GET"))) + .) | .[0] // empty' "$dir/api-clients.json" 2>/dev/null || true)
  if [ -n "$api" ]; then echo "  https: /api/clients: $api"
  else HTTPS_FAIL+=" /api/clients shows no fetch with scheme https for $mac;"; fi
  [ -z "$HTTPS_FAIL" ]
}

# Runs one scenario against one server; returns 0 when it met its expectation.
run_scenario() {
  local scenario=$1 server=$2 mode=${3:-site}
  if v6only "$scenario"; then
    if [ "$server" = dnsmasq ]; then
      # The reference's ProxyDHCP is DHCPv4 only: on an IPv6-only LAN it has nothing to show.
      echo "SKIP $scenario/dnsmasq: an IPv6-only LAN needs a DHCPv6 server (bootpolicy only)"
      return 0
    fi
    mode=v6only
  fi
  if https_boot "$scenario" && [ "$server" = dnsmasq ]; then
    echo "SKIP $scenario/dnsmasq: the reference's proxy ignores HTTPClient (see uefi-http/dnsmasq)"
    return 0
  fi
  if secureboot "$scenario"; then
    if [ "$server" = dnsmasq ]; then
      echo "SKIP $scenario/dnsmasq: the reference hands every UEFI client undionly.kpxe (see uefi/dnsmasq)"
      return 0
    fi
    # bootpolicy is the LAN's DHCP server here. Debian's GRUB (2.06-13) takes its TFTP server
    # from the DHCP ACK only (siaddr), never from the ProxyDHCP offer that shim used: beside a
    # site server it asks the site for grub.cfg (measured; docs/secure-boot.md).
    mode=full
  fi
  local name=$server
  [ "$mode" = full ] && name="$server-full"
  local dir="$WORK/$scenario-$name" mac expect eui
  mac=$(mac_of "$scenario")
  eui=$(eui64_of "$mac")
  expect=$(expectation "$server" "$scenario")
  mkdir -p "$dir"
  chmod 755 "$dir"
  [ "$scenario" = uefi-secureboot ] && secureboot_files
  https_boot "$scenario" && https_files
  secureboot "$scenario" && cp /usr/share/OVMF/OVMF_VARS_4M.ms.fd "$dir/"
  prepare_root "$dir/root" "$scenario"
  SEEN=()
  local expect_text="marker reached"
  [ "$expect" = weakness ] && expect_text="reference fails the known way"
  [ "$expect" = refusal ] && expect_text="Secure Boot refuses the unsigned file"
  [ "$expect" = untrusted ] && expect_text="the firmware refuses the server's certificate"
  echo "== $scenario / $name (MAC $mac, expect: $expect_text, timeout ${TIMEOUT}s)"
  [ "$scenario" = uefi-secureboot ] && echo "  signed chain: $SB_VERSIONS"
  local first_pid_index=${#LAB_PIDS[@]}
  start_site_dhcp "$dir" "$mode" "$scenario"
  start_boot_server "$server" "$dir" "$mode" "$scenario"
  start_capture "$dir"

  local start qargs
  read -r -d '' qargs < <(qemu_args "$scenario" "$mac" "$dir") || true
  start=$(date +%s.%N)
  # shellcheck disable=SC2086  # qargs is a word list built above, no user text in it
  lab_spawn "$LAB_NS_NET" "$dir/qemu.log" qemu-system-x86_64 -accel tcg -smp 1 -nodefaults \
    -display none -serial "file:$dir/serial.log" -no-reboot $qargs \
    -netdev tap,id=n0,ifname=tap0,script=no,downscript=no
  local qemu_pid=$LAB_LAST_PID
  printf '  %7.1f s  VM started (%s)\n' 0 "$(qemu_args "$scenario" "$mac" "$dir" | tr '\n' ' ')"

  local end_entry='failed to load Boot[0-9A-F]+ "UEFI (PXE|HTTP)v4'
  [ "$scenario" = bios ] && end_entry='No more network devices'
  if [ "$scenario" = uefi-ipv6 ] || [ "$scenario" = uefi-ipv6-only ]; then end_entry='failed to load Boot[0-9A-F]+ "UEFI PXEv6'; fi
  [ "$scenario" = uefi-http-ipv6 ] && end_entry='failed to load Boot[0-9A-F]+ "UEFI HTTPv6'
  local deadline=$((SECONDS + TIMEOUT)) scenario_t0=$SECONDS result="" why="" now serial
  while [ "$SECONDS" -lt "$deadline" ]; do
    sleep 1
    awk -v mac="$mac" -v eui="$eui" -f "$LAB_DIR/events.awk" "$dir/packets.txt" >"$dir/events.txt" 2>/dev/null || true
    update_stages "$dir/events.txt" "$start"
    serial=$(clean_serial "$dir/serial.log")
    now=$(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')
    if grep -aq "$MARKER" <<<"$serial"; then
      # The console may still be printing the line (sercon is slow under TCG): read it again.
      sleep 1
      serial=$(clean_serial "$dir/serial.log")
      stage marker "$now" "marker reached: $(grep -a -o "${MARKER}[^[:cntrl:]]*" <<<"$serial" | head -n 1 | cut -c1-100)"
      result=reached; break
    fi
    # The scenario's boot path is over when the console shows its failure: the boot entry under
    # test failed to load (OVMF would go on to other entries), or no entry is left.
    if grep -aqE "No bootable device|EFI Internal Shell|Shell> |Could not boot|PXE-E|$end_entry" <<<"$serial"; then
      # Give the firmware a moment so the console shows the whole failure, then stop.
      sleep 2
      stage exhausted "$now" "boot ended without the marker: $(grep -aoE 'failed to load Boot[0-9A-F]+ "[^"]*"[^[:cntrl:]]*|No bootable device|Could not boot[^[:cntrl:]]*|Error: [^[:cntrl:]]*|Nothing to boot[^[:cntrl:]]*|No more network devices' <<<"$serial" | tail -n 1 | cut -c1-120)"
      result=exhausted; break
    fi
    if ! kill -0 "$qemu_pid" 2>/dev/null; then result="qemu-exited"; break; fi
    if ! kill -0 "$BOOT_SERVER_PID" 2>/dev/null; then result="server-exited"; break; fi
  done
  [ -n "$result" ] || result=timeout

  local ok=1 api_ok=0 v6_ok=0 sb_ok=0
  if [ "$server" = bootpolicy ] && [ "$result" = reached ]; then
    if [ "$scenario" = uefi-secureboot ]; then
      api_check "$mac" "$dir" 'grub\.cfg' || api_ok=1
      secureboot_check "$mac" "$dir" || sb_ok=1
    else
      api_check "$mac" "$dir" || api_ok=1
    fi
    if [ "$scenario" = uefi-https ]; then https_check "$mac" "$dir" || { sb_ok=1; SB_FAIL=$HTTPS_FAIL; }; fi
    if [ "$mode" = full ]; then lease_check "$mac" "$dir" "$scenario" || api_ok=1; fi
  fi
  if [ "$server" = bootpolicy ] && [ "$scenario" = uefi-ipv6 ]; then v6_check "$mac" "$mode" || v6_ok=1; fi
  if [ "$mode" = v6only ]; then
    if [ "$result" = reached ]; then
      v6only_check "$scenario" "$mac" "$dir" || { v6_ok=1; V6_FAIL=$V6ONLY_FAIL; }
      v6_lease_check "$mac" "$dir" || api_ok=1
    fi
  fi
  if [ "$KEEP" -eq 1 ]; then keep_up "$scenario" "$mac" "$dir"; fi

  # Stop this scenario's processes (QEMU first) so the pcap is complete before it is copied.
  local i
  for ((i = ${#LAB_PIDS[@]} - 1; i >= first_pid_index; i--)); do lab_stop_pid "${LAB_PIDS[$i]}"; done
  LAB_PIDS=("${LAB_PIDS[@]:0:$first_pid_index}")
  awk -v mac="$mac" -v eui="$eui" -f "$LAB_DIR/events.awk" "$dir/packets.txt" >"$dir/events.txt" 2>/dev/null || true
  update_stages "$dir/events.txt" "$start"

  case "$expect:$result" in
    reach:reached)
      if [ "$v6_ok" -ne 0 ]; then
        why="marker reached but the boot did not go over IPv6 through bootpolicy:$V6_FAIL"
      elif [ "$sb_ok" -ne 0 ]; then
        why="marker reached but the $([ "$scenario" = uefi-https ] && echo "HTTPS boot" || echo "Secure Boot chain") is not proven:$SB_FAIL"
      elif [ "$api_ok" -ne 0 ]; then
        why="marker reached but the server's API does not show the script fetch (or, full DHCP, the lease)"
      elif [ "$server" = bootpolicy ] && ! secureboot "$scenario" && { [ -z "$POLICY" ] || [[ "$POLICY" == *arch-aware.lua ]]; } \
        && ! grep -aqF "bootpolicy: script for $mac (" <<<"$(clean_serial "$dir/serial.log")"; then
        # arch-aware's first line is one argument with spaces, written with the builder's
        # ${bpqXX:string} quoting: iPXE must print it with the spaces back.
        why="marker reached but iPXE did not print the quoted line 'bootpolicy: script for $mac (...)'"
      else
        ok=0
      fi ;;
    weakness:exhausted|weakness:timeout)
      if [ "$scenario" = uefi ] && grep -q ' tftp undionly.kpxe' "$dir/events.txt" \
        && grep -aq 'failed to load Boot[0-9A-F]* "UEFI PXEv4' <<<"$(clean_serial "$dir/serial.log")"; then
        ok=0; why="reference weakness reproduced: OVMF (arch 7) was given undionly.kpxe and could not run it"
      elif [ "$scenario" = uefi-ipv6 ] && grep -q 'dhcp6-fw .* PXEClient' "$dir/events.txt" \
        && ! grep -q ' tftp ' "$dir/events.txt" \
        && grep -aq 'failed to load Boot[0-9A-F]* "UEFI PXEv6' <<<"$(clean_serial "$dir/serial.log")"; then
        ok=0; why="reference weakness reproduced: dnsmasq's proxy is DHCPv4 only, OVMF's PXEv6 Solicit got no boot file URL"
      elif [ "$scenario" = uefi-http ] && grep -q 'dhcp-fw .* HTTPClient' "$dir/events.txt" \
        && ! grep -q ' http ' "$dir/events.txt"; then
        ok=0; why="reference weakness reproduced: dnsmasq's proxy ignores HTTPClient, OVMF got no boot URI"
      else
        why="expected the reference to fail the known way, but the evidence is missing"
      fi ;;
    refusal:exhausted|refusal:timeout)
      # The negative control: arch-aware hands this x64 UEFI client ipxe.efi (Debian's, not
      # signed for Secure Boot). It must have been sent whole and then refused by the firmware.
      local sent refused
      sent=$(grep -E "TFTP transfer" "$SERVER_LOG" | grep -E 'file=/?ipxe\.efi( |$)' | grep -m 1 'outcome=ok' || true)
      refused=$(grep -a -m 1 -oE 'failed to load Boot[0-9A-F]+ "UEFI PXEv4[^"]*"[^[:cntrl:]]*(Access Denied|Security Violation)' <<<"$(clean_serial "$dir/serial.log")" || true)
      if [ -n "$sent" ] && [ -n "$refused" ]; then
        ok=0; why="Secure Boot refused the unsigned ipxe.efi after it was sent whole ($(grep -oE 'bytes=[0-9]+' <<<"$sent")): $(grep -oE '(Access Denied|Security Violation)' <<<"$refused")"
        echo "  sb: firmware: $(cut -c1-160 <<<"$refused")"
      else
        why="expected the firmware to refuse the unsigned ipxe.efi, but the evidence is missing (sent: ${sent:+yes}${sent:-no}, refused on the console: ${refused:+yes}${refused:-no})"
      fi ;;
    refusal:reached) why="Secure Boot firmware ran an unsigned ipxe.efi: the marker was reached" ;;
    untrusted:exhausted|untrusted:timeout)
      # Without the CA the firmware must have been handed the https:// URL and loaded nothing:
      # EDK2 (2022.11) with no CA enrolled does not even connect ("Could not retrieve NBP file
      # size"), so nothing may reach the server's HTTP port; with another CA it connects (the
      # handshake is where it refuses), and the lab requires that connection.
      local console
      console=$(clean_serial "$dir/serial.log")
      if grep -qE "DISCOVER .*firmware=http-boot .*file=https://$LAB_BOOT_IP:$LAB_TLS_PORT/" "$SERVER_LOG" \
        && grep -aqE "URI: https://$LAB_BOOT_IP:$LAB_TLS_PORT/" <<<"$console" \
        && ! grep -qE '^[0-9.]+ http ' "$dir/events.txt" \
        && { [ "$scenario" != uefi-https-wrong-ca ] || { grep -qE '^[0-9.]+ tls-syn ' "$dir/events.txt" \
               && grep -q 'https: TLS handshake failed' "$SERVER_LOG"; }; } \
        && grep -aqE 'failed to load Boot[0-9A-F]+ "UEFI HTTPv4' <<<"$console"; then
        ok=0
        why="the firmware was given https://$LAB_BOOT_IP:$LAB_TLS_PORT/... and, $([ "$scenario" = uefi-https-wrong-ca ] && echo "trusting another CA" || echo "trusting no CA"), loaded nothing: $(grep -a -m 1 -oE 'Error: Could not retrieve NBP file size[^[:cntrl:]]*' <<<"$console" || echo 'no file')$(grep -qE '^[0-9.]+ tls-syn ' "$dir/events.txt" && echo ' (after connecting to the TLS port)' || echo ' (it never connected)')"
        [ "$scenario" = uefi-https-wrong-ca ] && echo "  https: server: $(grep -m 1 'https: TLS handshake failed' "$SERVER_LOG" | grep -oE 'error=[^]]*\]?[^ ]*' | cut -c1-140)"
      else
        why="expected an https:// URL on the console and no file loaded, but the evidence is missing"
      fi ;;
    untrusted:reached) why="the firmware booted over HTTPS without the lab's CA" ;;
    weakness:reached) why="the dnsmasq reference unexpectedly reached the marker" ;;
    *) why="result: $result" ;;
  esac

  if [ -n "$RECORD" ] && [ -s "$dir/dhcp.pcap" ]; then
    mkdir -p "$RECORD"
    cp "$dir/dhcp.pcap" "$RECORD/$scenario.pcap"
    echo "  recorded $(tcpdump -r "$RECORD/$scenario.pcap" 2>/dev/null | wc -l) DHCP packets -> $RECORD/$scenario.pcap"
    # ... and as request fixtures for policy tests, one per distinct client request.
    if [ -n "${BOOTPOLICY_BIN:-}" ] || find_bootpolicy 2>/dev/null; then
      "$BOOTPOLICY_BIN" import "$RECORD/$scenario.pcap" --out "$RECORD/requests" --prefix "lab-$scenario" \
        --origin "bootpolicy lab, scenario $scenario, server $server, $(date -u +%F)" | tail -n 1 | sed 's/^/  fixtures: /'
    fi
  fi
  if [ "$ok" -eq 0 ]; then
    echo "PASS $scenario/$name in ${SEEN[marker]:-${SEEN[exhausted]:-$((SECONDS - scenario_t0)) (timeout)}} s${why:+: $why}"
  else
    echo "FAIL $scenario/$name: $why"
    echo "  --- last 40 lines of the serial console ($dir/serial.log)"
    clean_serial "$dir/serial.log" | grep -av '^[[:space:]]*$' | tail -n 40 | sed 's/^/  | /'
    echo "  --- last 40 lines of the $server log ($SERVER_LOG)"
    tail -n 40 "$SERVER_LOG" | sed 's/^/  | /'
    KEEP_WORK=1
  fi
  return "$ok"
}

keep_up() {
  local scenario=$1 mac=$2 dir=$3 i
  cat <<EOF
  The lab stays up (VM, site DHCP, boot server) until Ctrl-C, at most $((KEEP_MAX / 60)) minutes.
    status page:  ip netns exec $LAB_NS_BOOT curl -s http://$LAB_BOOT_IP:8080/
    clients JSON: ip netns exec $LAB_NS_BOOT curl -s http://$LAB_BOOT_IP:8080/api/clients
    console:      tail -f $dir/serial.log      server log: tail -f $SERVER_LOG
EOF
  KEEP_WORK=1
  for ((i = 0; i < KEEP_MAX; i++)); do sleep 1; done
}

# --- main -----------------------------------------------------------------------------------

install_deps
lab_lock
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
WORK=$(mktemp -d /tmp/bp-lab.XXXXXX)
chmod 755 "$WORK"
lab_clear_stale
lab_net_up

echo "lab: QEMU $(qemu-system-x86_64 --version | head -n 1 | awk '{print $4}'), iPXE $(dpkg-query -W -f='${Version}' ipxe), OVMF $(dpkg-query -W -f='${Version}' ovmf), SeaBIOS $(dpkg-query -W -f='${Version}' seabios 2>/dev/null || echo '?'), dnsmasq $(dpkg-query -W -f='${Version}' dnsmasq-base); IPv6 RA: $([ "$RA" -eq 1 ] && echo on || echo off)"

if [ "$CI_MODE" -eq 1 ]; then
  passed=0 failed=0 skipped=0
  # uefi-ipv6 fits: OVMF reaches the marker over IPv6 in ~16 s (site) / ~24 s (full) under TCG,
  # and the reference's PXEv6 entry fails in ~12 s. The IPv6-only ones: ~51 s (PXEv6) and
  # ~116 s (HTTPv6, most of it OVMF's HTTPv4 entry timing out first), bootpolicy only.
  runs=("bios dnsmasq" "uefi dnsmasq" "uefi-http dnsmasq" "uefi-ipv6 dnsmasq")
  if find_bootpolicy; then
    runs+=("bios bootpolicy" "uefi bootpolicy" "uefi-http bootpolicy" "uefi-ipv6 bootpolicy")
    runs+=("bios bootpolicy full" "uefi bootpolicy full" "uefi-http bootpolicy full" "uefi-ipv6 bootpolicy full")
    runs+=("uefi-ipv6-only bootpolicy" "uefi-http-ipv6 bootpolicy")
    # Secure Boot (~17 s, and ~8 s for the unsigned control) and HTTPS boot (~13 s; ~7 s each
    # for the two refusals).
    runs+=("uefi-secureboot bootpolicy" "uefi-secureboot-unsigned bootpolicy")
    runs+=("uefi-https bootpolicy" "uefi-https-untrusted bootpolicy" "uefi-https-wrong-ca bootpolicy")
  elif [ -n "${BOOTPOLICY:-}" ]; then
    # A binary was named (scripts/test.sh does): one that does not work is a failure, not a skip.
    echo "FAIL */bootpolicy: $BOOTPOLICY_WHY"
    failed=$((failed + 15))
  else
    echo "SKIP */bootpolicy: $BOOTPOLICY_WHY"
    skipped=$((skipped + 15))
  fi
  ci_end=$((SECONDS + BUDGET))
  for r in "${runs[@]}"; do
    read -r sc sv md <<<"$r"
    left=$((ci_end - SECONDS))
    if [ "$left" -lt 60 ]; then echo "SKIP $sc/$sv${md:+-$md}: CI budget of ${BUDGET}s used up"; skipped=$((skipped + 1)); continue; fi
    saved=$TIMEOUT
    [ "$left" -lt "$TIMEOUT" ] && TIMEOUT=$left
    if run_scenario "$sc" "$sv" "${md:-site}"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    TIMEOUT=$saved
  done
  if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"; else echo "$passed passed, $failed failed"; fi
  [ "$failed" -eq 0 ]
  exit
fi

if [ "$SERVER" = bootpolicy ]; then
  find_bootpolicy || lab_die "bootpolicy: $BOOTPOLICY_WHY (set BOOTPOLICY=/path/to/bootpolicy, or use --server dnsmasq)"
fi
if [ "$SCENARIO" = all ]; then
  scenarios=(bios uefi uefi-http uefi-ipv6 uefi-ipv6-only uefi-http-ipv6 uefi-secureboot uefi-secureboot-unsigned uefi-https uefi-https-untrusted uefi-https-wrong-ca)
else
  scenarios=("$SCENARIO")
fi
status=0
for sc in "${scenarios[@]}"; do
  run_scenario "$sc" "$SERVER" "$DHCP_MODE" || status=1
done
exit "$status"
