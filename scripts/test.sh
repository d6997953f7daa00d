#!/usr/bin/env bash
# Every test bootpolicy has, in order: build, unit and real-socket tests (swift test: codecs,
# servers over loopback and namespaces, real curl/atftp/tftp-hpa/dnsmasq/chromium), the policy
# tests (bootpolicy test), and the QEMU lab (real firmware through bootpolicy, in namespaces).
# It installs what it needs first. Needs root (namespaces). Set BOOTPOLICY_SKIP_LAB=1 to skip
# the lab, BOOTPOLICY_SKIP_PACKAGE=1 the packaging stage (the .deb and the image, booted), BOOTPOLICY_FUZZ=0 to skip the fuzz stage (BOOTPOLICY_FUZZ_SECONDS: its time per
# target, default 45). Starts a throwaway PostgreSQL (scripts/pg.sh) for the store tests. Ends with
# "N passed, N failed" over all stages; exit 1 on any failure. Everything the tests need is
# installed first, so a test that would skip for want of a tool, root or a data folder fails
# instead (BOOTPOLICY_REQUIRE_ALL=1): a run cannot go green with half its tests skipped. Each
# target's skipped tests (benchmarks, without BOOTPOLICY_BENCH=1) are counted and named.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

# Dependencies, BOOTPOLICY_REQUIRE_ALL and a throwaway PostgreSQL (stopped at exit).
. scripts/test-env.sh
passed=0; failed=0; skipped=0; bad_stages=""
stage() { echo; echo "== $*"; }
# count NAME STATUS PASSED FAILED: adds a stage's test counts to the totals.
count() {
  passed=$((passed + ${3:-0})); failed=$((failed + ${4:-0}))
  if [ "$2" -ne 0 ]; then
    bad_stages="$bad_stages $1"
    # A stage that failed without counting a failed test still fails the run.
    [ "${4:-0}" -gt 0 ] || failed=$((failed + 1))
  fi
}
# The last "N passed, N failed" line of a log.
tally() { grep -oE '[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1 | awk '{print $1, $3}'; }

stage "build"
swift build --build-tests 2>&1 | grep -E "error|warning: unre|Compiling|Build complete" | grep -v "^\[.*Compiling" | tail -n 20
build=${PIPESTATUS[0]}
[ "$build" -eq 0 ] || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

# One `swift test` per test target, one after another. In one process the targets' tests share
# Swift's cooperative thread pool, which has one thread per core: on a 2-core machine two
# HostTests that wait synchronously for a server process (up to 20 s) held both threads, and
# the async TFTP tests of ProtocolsTests stalled past their own timeouts. Run alone, each
# target's timing holds.
mkdir -p artifacts
for target in $(ls Tests | grep 'Tests$'); do   # TestSupport is a helper library, not tests
  [ -d "Tests/$target" ] || continue
  stage "swift test $target (unit, real sockets, namespaces)"
  log="artifacts/swift-test-$target.log"
  swift test --skip-build --filter "^$target\\." 2>&1 | tee "$log" | grep -E "^(✘|􀢄)|Test run with|error:|Test Suite .* failed" | tail -n 60
  grep -qE 'Test run with [0-9]+ tests? .*passed' "$log" && ! grep -q '✘ Test run' "$log"
  st=$?
  if [ "$st" != 0 ]; then   # an issue's message (the server's log, say) follows its ✘ line
    echo "-- what the failing tests recorded (full log: $log)"
    grep -A 25 -E '^✘ .* recorded an issue' "$log" | head -n 200
  fi
  total=$(grep -oE 'Test run with [0-9]+ test' "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
  # A test fails with "failed after", or, when its condition threw (an unmet requirement
  # under BOOTPOLICY_REQUIRE_ALL), with only "recorded an issue".
  nfail=$(grep -E '^✘ Test .* (failed after|recorded an issue)' "$log" | grep -v '^✘ Test run' \
    | sed -E 's/^✘ Test (.*) (failed after|recorded an issue).*/\1/' | sort -u | grep -c . || true)
  # Swift Testing says `➜ Test NAME skipped: "reason"` (`􀙟` on macOS) for each skipped test.
  skips=$(grep -E '^[^ ]+ Test .* skipped' "$log" | sed -E 's/^[^ ]+ Test (.*) skipped(: |\.$)/\1 /' || true)
  nskip=$(printf '%s' "$skips" | grep -c . || true)
  echo "-- $target: $nskip skipped"
  [ "$nskip" -eq 0 ] || printf '%s\n' "$skips" | sed 's/^/   skipped: /'
  skipped=$((skipped + nskip))
  count "swift-test-$target" "$st" "$((total - nfail - nskip))" "$nfail"
done

stage "policy tests (bootpolicy test policies examples)"
.build/debug/bootpolicy test policies examples | tee artifacts/policy-tests.log
st=${PIPESTATUS[0]}
read -r p f < <(tally artifacts/policy-tests.log || echo "0 0")
count policy-tests "$st" "${p:-0}" "${f:-0}"

# The libFuzzer targets, each for a bounded time (docs/fuzzing.md): one sanitized release
# build into .build-fuzz (about 10 minutes on 2 cores), then one target after another. A
# target that runs without coverage fails (scripts/fuzz.sh says why that once happened).
if [ "${BOOTPOLICY_FUZZ:-1}" = 1 ]; then
  fuzz_seconds=${BOOTPOLICY_FUZZ_SECONDS:-45}
  stage "fuzz: 7 libFuzzer targets, $fuzz_seconds s each (scripts/fuzz.sh)"
  fuzz_start=$(date +%s)
  scripts/fuzz.sh "$fuzz_seconds" 2>&1 | tee artifacts/fuzz.log | grep -vE '^(seeds|INFO|#)'
  st=${PIPESTATUS[0]}
  echo "fuzz stage: $(( $(date +%s) - fuzz_start )) s"
  read -r p f < <(tally artifacts/fuzz.log || echo "0 0")
  count fuzz "$st" "${p:-0}" "${f:-0}"
fi

if [ "${BOOTPOLICY_SKIP_LAB:-0}" != 1 ]; then
  stage "lab: real firmware (QEMU iPXE, OVMF PXE, HTTP and HTTPS boot, Secure Boot) through bootpolicy"
  scripts/deps.sh demo >/dev/null || true
  BOOTPOLICY=.build/debug/bootpolicy scripts/lab.sh --ci --server bootpolicy --budget 1500 2>&1 | tee artifacts/lab.log
  st=${PIPESTATUS[0]}
  read -r p f < <(tally artifacts/lab.log || echo "0 0")
  count lab "$st" "${p:-0}" "${f:-0}"
fi

# The Debian package and the OCI image (docs/install.md): built from this checkout, installed,
# the unit verified, and the lab's BIOS VM booted through each. About 15 minutes on 2 cores,
# most of it the release build. BOOTPOLICY_SKIP_PACKAGE=1 skips it.
if [ "${BOOTPOLICY_SKIP_PACKAGE:-0}" != 1 ]; then
  stage "packaging: the .deb, the unit and the OCI image (Tests/Packaging/run.sh)"
  Tests/Packaging/run.sh 2>&1 | tee artifacts/packaging.log | grep -vE '^lab: \['
  st=${PIPESTATUS[0]}
  read -r p f < <(tally artifacts/packaging.log || echo "0 0")
  count packaging "$st" "${p:-0}" "${f:-0}"
fi

echo
[ -z "$bad_stages" ] || echo "failed stages:$bad_stages"
echo "all: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ -z "$bad_stages" ]
