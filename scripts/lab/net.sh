# shellcheck shell=bash
# Network and process plumbing for scripts/lab.sh (sourced, not run).
#
# Topology (all of it exists only inside namespaces this file creates):
#
#   bp-lab-site: site0 192.168.77.1/24 fd77::1/64   (site DHCP/DHCPv6 + RA: addresses only)
#        |
#   bp-lab-net:  br0 <- site-br, boot-br, tap0 (QEMU's NIC)
#        |
#   bp-lab-boot: boot0 192.168.77.2/24 fd77::2/64   (boot server: dnsmasq reference or bootpolicy)
#
# Every process started here is remembered by PID in LAB_PIDS and only those are ever killed.

LAB_NS_NET=bp-lab-net
LAB_NS_SITE=bp-lab-site
LAB_NS_BOOT=bp-lab-boot
LAB_SITE_IP=192.168.77.1
LAB_BOOT_IP=192.168.77.2
LAB_SITE_IP6=fd77::1
LAB_BOOT_IP6=fd77::2
LAB_LOCK=/run/bp-lab.lock
LAB_PIDS=()
LAB_NETNS_CREATED=()

lab_log() { printf '%s\n' "lab: $*" >&2; }
lab_die() { lab_log "error: $*"; exit 1; }

# One lab at a time on a machine: the namespace names are fixed so that a human can reach the
# status page with `ip netns exec bp-lab-boot curl ...`.
lab_lock() {
  exec 9>"$LAB_LOCK"
  flock -n 9 || lab_die "another lab run holds $LAB_LOCK; wait for it to finish"
}

# A namespace left by a run that was killed with SIGKILL: delete it if it is empty, refuse if
# anything still runs in it (those are not our processes in this run, so we do not kill them).
lab_clear_stale() {
  local ns pids
  for ns in "$LAB_NS_NET" "$LAB_NS_SITE" "$LAB_NS_BOOT"; do
    ip netns list | awk '{print $1}' | grep -qx "$ns" || continue
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    if [ -n "$pids" ]; then
      lab_die "stale namespace $ns still runs PIDs $pids (from an earlier lab run); stop them, then 'ip netns del $ns'"
    fi
    lab_log "removing stale empty namespace $ns"
    ip netns del "$ns"
  done
}

lab_netns_add() {
  ip netns add "$1"
  LAB_NETNS_CREATED+=("$1")
  ip -n "$1" link set lo up
}

lab_net_up() {
  lab_netns_add "$LAB_NS_NET"
  lab_netns_add "$LAB_NS_SITE"
  lab_netns_add "$LAB_NS_BOOT"
  ip -n "$LAB_NS_NET" link add br0 type bridge
  # Forward at once: no STP listening delay before the firmware's first DISCOVER.
  ip -n "$LAB_NS_NET" link set br0 type bridge forward_delay 0 stp_state 0
  ip -n "$LAB_NS_NET" link set br0 up
  ip -n "$LAB_NS_NET" link add site-br type veth peer name site0 netns "$LAB_NS_SITE"
  ip -n "$LAB_NS_NET" link add boot-br type veth peer name boot0 netns "$LAB_NS_BOOT"
  ip -n "$LAB_NS_NET" tuntap add dev tap0 mode tap
  local port
  for port in site-br boot-br tap0; do
    ip -n "$LAB_NS_NET" link set "$port" master br0
    ip -n "$LAB_NS_NET" link set "$port" up
  done
  ip -n "$LAB_NS_SITE" addr add "$LAB_SITE_IP/24" dev site0
  ip -n "$LAB_NS_SITE" addr add "$LAB_SITE_IP6/64" dev site0 nodad
  ip -n "$LAB_NS_SITE" link set site0 up
  ip -n "$LAB_NS_BOOT" addr add "$LAB_BOOT_IP/24" dev boot0
  # nodad: the address is usable at once (bootpolicy --dhcp6 binds TFTP/HTTP to it at start),
  # and the boot server takes no address or route from the site's router advertisements.
  ip -n "$LAB_NS_BOOT" addr add "$LAB_BOOT_IP6/64" dev boot0 nodad
  ip netns exec "$LAB_NS_BOOT" sysctl -qw net.ipv6.conf.boot0.accept_ra=0
  ip -n "$LAB_NS_BOOT" link set boot0 up
}

# Starts "$@" in the background inside namespace $1 with output to file $2; sets LAB_LAST_PID.
lab_spawn() {
  local ns=$1 out=$2
  shift 2
  ip netns exec "$ns" "$@" >"$out" 2>&1 &
  LAB_LAST_PID=$!
  LAB_PIDS+=("$LAB_LAST_PID")
}

# Stops one PID we started: TERM, up to 5 s grace, then KILL.
lab_stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

lab_stop_all() {
  local i
  for ((i = ${#LAB_PIDS[@]} - 1; i >= 0; i--)); do
    lab_stop_pid "${LAB_PIDS[$i]}"
  done
  LAB_PIDS=()
}

lab_net_down() {
  local ns
  for ns in "${LAB_NETNS_CREATED[@]}"; do
    ip netns del "$ns" 2>/dev/null || true
  done
  LAB_NETNS_CREATED=()
}

# Waits (bounded) until something in namespace $1 listens on $2 (e.g. "udp :67"); $3 = PID
# that must stay alive meanwhile; $4 = seconds.
lab_wait_listen() {
  local ns=$1 proto=${2%% *} port=${2##* } pid=$3 secs=$4 i flag
  [ "$proto" = udp ] && flag=-lun || flag=-ltn
  for ((i = 0; i < secs * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    ip netns exec "$ns" ss -H "$flag" "sport = :$port" 2>/dev/null | grep -q . && return 0
    sleep 0.2
  done
  return 1
}
