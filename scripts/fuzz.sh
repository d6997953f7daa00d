#!/usr/bin/env bash
# The libFuzzer targets (Tests/Fuzz, docs/fuzzing.md): scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Targets: dhcp dhcp6 tftp http policy pcap config (default: all), each run SECONDS (default 60) with
# libFuzzer's own clock, one after another (one fuzzer at a time: the machine may have 2 CPUs).
# One build, release with ASan and libFuzzer, into its own scratch path (.build-fuzz); seed
# corpora are written from the fixtures at run time (artifacts/fuzz/seeds, ignored) by
# FuzzSeeds from the normal debug build (.build). Prints per
# target: execs, exec/s, cov, ft, corpus, crashes; a crash, leak, timeout or OOM input is left in
# artifacts/fuzz/ (reproduce with the normal build: .build/debug/DHCPFuzz artifacts/fuzz/dhcp-crash-...).
# Ends with "N passed, N failed" (a target passes when it ran its time without a finding);
# exit 1 on any finding or failure. Every step is bounded: the build by BOOTPOLICY_FUZZ_BUILD_TIMEOUT
# (default 3600 s), each run by -max_total_time and, as a backstop, timeout(1).
# Environment: BOOTPOLICY_FUZZ_SCRATCH (scratch path), BOOTPOLICY_FUZZ_RSS_MB (default 2048),
# BOOTPOLICY_FUZZ_KEEP_CORPUS=1 keeps the corpus libFuzzer grew between runs (artifacts/fuzz/corpus).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
# An invariant failure aborts; the Swift backtracer then reads memory that ASan flags
# (memserver_read in CrashHandlerLinux.cpp), which hides the real report. libFuzzer prints
# its own stack.
export SWIFT_BACKTRACE=enable=no
# Leaks that are not ours (scripts/lsan-suppressions.txt says which and why).
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt:${LSAN_OPTIONS:-}"

seconds=60
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then seconds=$1; shift; fi
all="dhcp dhcp6 tftp http policy pcap config"
targets=${*:-$all}
scratch=${BOOTPOLICY_FUZZ_SCRATCH:-.build-fuzz}
rss=${BOOTPOLICY_FUZZ_RSS_MB:-2048}
build_timeout=${BOOTPOLICY_FUZZ_BUILD_TIMEOUT:-3600}
out=artifacts/fuzz
mkdir -p "$out"

product() {
  case $1 in
    dhcp) echo DHCPFuzz;; dhcp6) echo DHCPv6Fuzz;; tftp) echo TFTPFuzz;; http) echo HTTPFuzz;; policy) echo PolicyFuzz;;
    pcap) echo PcapFuzz;; config) echo ConfigFuzz;; *) return 1;;
  esac
}
max_len() {
  case $1 in dhcp|dhcp6) echo 1500;; tftp) echo 1024;; pcap) echo 65536;; config) echo 8192;; *) echo 4096;; esac
}
for t in $targets; do product "$t" >/dev/null || { echo "unknown target '$t' (known: $all)"; exit 2; }; done

echo "== fuzz build (release, --sanitize=fuzzer --sanitize=address, -D FUZZING, $scratch)"
build_start=$(date +%s)
products=""
for t in $targets; do products="$products $(product "$t")"; done
for p in $products; do
  # One product at a time (a plain `swift build` would also link Host and the test bundles
  # with libFuzzer); everything they share is built once.
  # swift-driver 6.3.1 hands the frontend only -sanitize=address for Swift code, so Swift
  # modules got no coverage counters: the DHCP target ran 2.9 million inputs at cov 0 (C code,
  # instrumented by clang, had counters that DHCP decoding never reaches). The frontend flag
  # asks for both itself.
  if ! timeout "$build_timeout" swift build -c release --scratch-path "$scratch" \
      --sanitize=fuzzer --sanitize=address -Xswiftc -DFUZZING \
      -Xswiftc -Xfrontend -Xswiftc -sanitize=fuzzer,address --product "$p" >"$out/build-$p.log" 2>&1; then
    grep -E "error|timed out" "$out/build-$p.log" | head -n 20
    echo "build of $p failed (log: $out/build-$p.log)"
    echo "0 passed, 1 failed"
    exit 1
  fi
done
bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path 2>/dev/null)
echo "built in $(( $(date +%s) - build_start )) s: $bin"

# The seed writer is a plain program: linked with libFuzzer, its main would clash with
# libFuzzer's. It is built in the normal debug build (scripts/test.sh has built it already).
if ! timeout "$build_timeout" swift build --product FuzzSeeds >"$out/build-FuzzSeeds.log" 2>&1; then
  grep -E "error" "$out/build-FuzzSeeds.log" | head -n 20
  echo "build of FuzzSeeds failed (log: $out/build-FuzzSeeds.log)"
  echo "0 passed, 1 failed"
  exit 1
fi
seeds="$out/seeds"
rm -rf "$seeds"
shared=../shared/fixtures/captures   # public captures, read in place (licences: its MANIFEST.md)
timeout 120 "$(swift build --show-bin-path)/FuzzSeeds" "$seeds" fixtures Tests/ProtocolsTests/Fixtures/captures \
  $( [ -d "$shared" ] && echo "$shared" ) examples | sed 's/^/seeds: /'

passed=0; failed=0; findings=""
printf '%-8s %12s %9s %7s %7s %7s %8s\n' target execs exec/s cov ft corpus crashes | tee "$out/summary.txt"
for t in $targets; do
  p=$(product "$t")
  corpus="$out/corpus/$t"
  [ "${BOOTPOLICY_FUZZ_KEEP_CORPUS:-0}" = 1 ] || rm -rf "$corpus"
  mkdir -p "$corpus" "$seeds/$t"
  before=$(ls "$out" | grep -cE "^$t-(crash|leak|timeout|oom|slow-unit)-" || true)
  log="$out/$t.log"
  # -max_total_time is libFuzzer's clock; timeout(1) is the backstop if it does not stop.
  BOOTPOLICY_ROOT="$PWD" timeout --kill-after=10 $((seconds + 120)) "$bin/$p" "$corpus" "$seeds/$t" \
    -max_total_time="$seconds" -rss_limit_mb="$rss" -timeout=10 -max_len="$(max_len "$t")" \
    -print_final_stats=1 -artifact_prefix="$out/$t-" >"$log" 2>&1
  st=$?
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  cov=$(echo "$last" | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+' || echo 0)
  ft=$(echo "$last" | grep -oE 'ft: [0-9]+' | grep -oE '[0-9]+' || echo 0)
  corp=$(echo "$last" | grep -oE 'corp: [0-9]+' | grep -oE '[0-9]+' || echo 0)
  after=$(ls "$out" | grep -cE "^$t-(crash|leak|timeout|oom|slow-unit)-" || true)
  crashes=$((after - before))
  [ "$st" -ne 0 ] && [ "$crashes" -eq 0 ] && crashes="?"   # failed without an artifact
  # A run without coverage fuzzed nothing (Swift code built without counters, see the build
  # step). Fail, do not pass.
  if [ "$st" -eq 0 ] && [ "${cov:-0}" = 0 ]; then
    st=1
    echo "-- $t: no coverage: its Swift code has no coverage counters (see the build step)"
  fi
  printf '%-8s %12s %9s %7s %7s %7s %8s\n' "$t" "${execs:-0}" "${rate:-0}" "${cov:-0}" "${ft:-0}" "${corp:-0}" "$crashes" | tee -a "$out/summary.txt"
  if [ "$st" -eq 0 ] && [ "$crashes" = 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); findings="$findings $t"
    echo "-- $t: exit $st (log: $log)"
    grep -E "ERROR: |fuzz invariant failed|Fatal error|SUMMARY|Test unit written|Deadly signal" "$log" | head -n 10
  fi
done
[ -z "$findings" ] || echo "findings:$findings (inputs in $out/)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
