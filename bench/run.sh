#!/usr/bin/env bash
# Regenerates BENCHMARKS.md and bench/dhcp-rate.svg: ProxyDHCP against dnsmasq (perfdhcp), Lua
# decision cost, a 1,000-client boot storm, and TFTP against tftp-hpa/dnsmasq (bench/tftp/run.sh).
# Everything runs in network namespaces this run creates (bp-bench-*, bp-tftp-bench) and deletes,
# also on failure. About 15-20 minutes on 2 cores.
#
# Usage (root): bench/run.sh
# Env: BENCH_REPEATS (3), BENCH_SECONDS (3, per perfdhcp rate), BENCH_SKIP (e.g. "tftp storm";
# sections: lua dhcp dora dhcp6 saturation shadow https storm tftp state)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
[ "$(id -u)" -eq 0 ] || { echo "bench/run.sh: needs root (ip netns)" >&2; exit 1; }
REPEATS=${BENCH_REPEATS:-3}
SECONDS_PER_RATE=${BENCH_SECONDS:-3}
SKIP=" ${BENCH_SKIP:-} "
RES=bench/results
mkdir -p "$RES"

cleanup() {
  ip netns del bp-bench-srv 2>/dev/null || true
  ip netns del bp-bench-cli 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "== deps"
BOOTPOLICY_EXTRA_DEPS="python3" scripts/deps.sh bench
for bin in perfdhcp dnsmasq kea-dhcp6 python3 curl ip; do
  command -v "$bin" >/dev/null || { echo "bench/run.sh: $bin missing" >&2; exit 1; }
done
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# Load average and commit as each section starts (this machine is shared, and BENCH_SKIP
# reruns only some sections): report.py prints them.
note_load() { echo "$1: $(cut -d' ' -f1-3 /proc/loadavg) at $(git rev-parse --short HEAD)" >>"$RES/loads.txt"; }
[ -n "${BENCH_SKIP:-}" ] || : >"$RES/loads.txt"

echo "== release build (with -enable-testing: the test-based benches need it; one build for all)"
swift build -c release --build-tests -Xswiftc -enable-testing -j 2 2>&1 | tail -n 2
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "bench/run.sh: release build failed" >&2; exit 1; }
BIN=.build/release/bootpolicy

if [[ "$SKIP" != *" lua "* ]]; then
  sed -i "/^lua:/d" "$RES/loads.txt" 2>/dev/null || true; note_load lua
  echo "== Lua decision cost and in-process answer cost ($REPEATS runs)"
  : >"$RES/lua.txt"
  for i in $(seq "$REPEATS"); do
    echo "run $i" >>"$RES/lua.txt"
    BOOTPOLICY_BENCH=1 timeout 300 swift test -c release -Xswiftc -enable-testing --skip-build \
      --filter LuaDecisionBench 2>&1 | grep -E '^bench lua|✘' | tee -a "$RES/lua.txt"
    # A whole ProxyDHCP answer in process, then without each per-client structure (attribution).
    for without in "" timeline facts; do
      BENCH_WITHOUT="$without" BOOTPOLICY_BENCH=1 timeout 300 swift test -c release -Xswiftc -enable-testing --skip-build \
        --filter ProxyAnswerBench 2>&1 | grep -E '^bench answer|✘' | tee -a "$RES/lua.txt"
    done
  done
  python3 - "$RES/lua.txt" >"$RES/lua.json" <<'PY'
import json, re, sys
runs, cur = [], None
for line in open(sys.argv[1]):
    if line.startswith("run "):
        cur = {}; runs.append(cur)
    m = re.match(r"bench (?:lua )?(\S+) median_us=([\d.]+) p99_us=([\d.]+)", line)
    if m and cur is not None:
        cur[m.group(1)] = {"median_us": float(m.group(2)), "p99_us": float(m.group(3))}
print(json.dumps([r for r in runs if r], indent=1))
PY
fi

if [[ "$SKIP" != *" dhcp "* ]]; then
  sed -i "/^dhcp:/d" "$RES/loads.txt" 2>/dev/null || true; note_load dhcp
  echo "== ProxyDHCP: bootpolicy vs dnsmasq ($REPEATS repeats, log off then on)"
  timeout 900 python3 bench/dhcp_bench.py --binary "$BIN" --repeats "$REPEATS" --seconds "$SECONDS_PER_RATE" --out "$RES/dhcp.json"
fi

if [[ "$SKIP" != *" dora "* ]]; then
  sed -i "/^dora:/d" "$RES/loads.txt" 2>/dev/null || true; note_load dora
  echo "== Full DHCP: perfdhcp DORA against bootpolicy (SQLite leases), Kea memfile and dnsmasq ($REPEATS repeats)"
  timeout 1200 python3 bench/dora_bench.py --binary "$BIN" --repeats "$REPEATS" --out "$RES/dora.json"
  printf '{"command": "bench/dora_bench.py --repeats %s", "date": "%s", "commit": "%s", "load": "%s"}\n' "$REPEATS" \
    "$(date -u '+%F %H:%M UTC')" "$(git rev-parse --short HEAD)" "$(cut -d' ' -f1-3 /proc/loadavg)" >"$RES/dora-machine.json"
fi

if [[ "$SKIP" != *" dhcp6 "* ]]; then
  sed -i "/^dhcp6:/d" "$RES/loads.txt" 2>/dev/null || true; note_load dhcp6
  echo "== DHCPv6: perfdhcp -6 Solicit/Advertise against bootpolicy (stateful, boot-only) and kea-dhcp6 ($REPEATS repeats)"
  timeout 1500 python3 bench/dhcp6_bench.py --binary "$BIN" --repeats "$REPEATS" --out "$RES/dhcp6.json"
fi

if [[ "$SKIP" != *" saturation "* ]]; then
  sed -i "/^saturation:/d" "$RES/loads.txt" 2>/dev/null || true; note_load saturation
  echo "== ProxyDHCP saturation with bench/dhcp_blaster.c ($REPEATS repeats, log off)"
  timeout 900 python3 bench/saturation.py --binary "$BIN" --repeats "$REPEATS" --out "$RES/saturation.json"
fi

if [[ "$SKIP" != *" shadow "* ]]; then
  sed -i "/^shadow:/d" "$RES/loads.txt" 2>/dev/null || true; note_load shadow
  echo "== shadow chain + decision journal against neither ($REPEATS repeats, alternating)"
  timeout 1500 python3 bench/shadow_bench.py --binary "$BIN" --repeats "$REPEATS" --rates 20000,60000,100000 --out "$RES/shadow.json"
fi

if [[ "$SKIP" != *" https "* ]]; then
  sed -i "/^https:/d" "$RES/loads.txt" 2>/dev/null || true; note_load https
  echo "== HTTPS (http.tls) against nginx with the same certificate ($REPEATS repeats, alternating)"
  timeout 900 python3 bench/https_bench.py --binary "$BIN" --repeats "$REPEATS" --out "$RES/https.json"
fi

if [[ "$SKIP" != *" storm "* ]]; then
  sed -i "/^storm:/d" "$RES/loads.txt" 2>/dev/null || true; note_load storm
  echo "== boot storm: 1,000 clients ($REPEATS repeats)"
  timeout 600 python3 bench/storm.py run --binary "$BIN" --clients 1000 --repeats "$REPEATS" --out "$RES/storm.json"
fi

if [[ "$SKIP" != *" tftp "* ]]; then
  sed -i "/^tftp/d" "$RES/loads.txt" 2>/dev/null || true; note_load tftp
  echo "== TFTP: bench/tftp/run.sh"
  BP_BENCH_RUNS="$REPEATS" timeout 900 bench/tftp/run.sh || echo "bench/run.sh: bench/tftp/run.sh failed (exit $?); its table says so" >&2
fi

if [[ "$SKIP" != *" state "* ]]; then
  sed -i "/^state:/d" "$RES/loads.txt" 2>/dev/null || true; note_load state
  echo "== durable state under ProxyDHCP load: bench/state_bench.py (figures in bench/STATE.md)"
  timeout 1200 python3 bench/state_bench.py --binary "$BIN" --repeats "$REPEATS" --rates 10000,20000,40000 --out "$RES/state.json"
fi

python3 - "$RES/machine.json" "$load_before" "$REPEATS" <<'PY'
import json, os, subprocess, sys, time
def out(*cmd):
    try: return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError: return "?"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
json.dump({"command": "bench/run.sh", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "nproc": os.cpu_count(), "cpu": cpu, "kernel": os.uname().release,
           "load_before": sys.argv[2],
           "loads": [l.strip() for l in open(os.path.join(os.path.dirname(sys.argv[1]), "loads.txt"))] if os.path.exists(os.path.join(os.path.dirname(sys.argv[1]), "loads.txt")) else [], "load_after": " ".join(open("/proc/loadavg").read().split()[:3]),
           "repeats": int(sys.argv[3]), "commit": out("git", "rev-parse", "--short", "HEAD"),
           "dnsmasq": out("dnsmasq", "--version").splitlines()[0] if out("dnsmasq", "--version") else "dnsmasq",
           "perfdhcp": "perfdhcp (kea-admin " + out("dpkg-query", "-W", "-f=${Version}", "kea-admin") + ")"},
          open(sys.argv[1], "w"), indent=1)
PY
python3 bench/report.py
echo "== wrote BENCHMARKS.md, bench/dhcp-rate.svg, bench/results/"
