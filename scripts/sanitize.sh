#!/usr/bin/env bash
# The test suite under a sanitizer: scripts/sanitize.sh address|thread [FILTER]
# Builds everything with `swift build --build-tests --sanitize=...` into its own scratch path
# (.build-asan / .build-tsan), then runs the test targets one by one as scripts/test.sh does
# (`swift test --skip-build --filter '^Target\.'`, a throwaway PostgreSQL, the same env).
# FILTER (a regex on test target names, e.g. ProtocolsTests) picks targets; default all.
# Every process the tests start (the bootpolicy binary included, built with the same
# sanitizer) writes its reports to artifacts/sanitize-KIND/report.PID (log_path), so none is
# lost in a child's stderr. Ends with the reports found ("ERROR: AddressSanitizer",
# "WARNING: ThreadSanitizer", "ERROR: LeakSanitizer") and "N passed, N failed" over the tests;
# exit 1 on any report or failed target. Bounded: the build by BOOTPOLICY_SANITIZE_BUILD_TIMEOUT
# (default 3600 s), each target by BOOTPOLICY_SANITIZE_TARGET_TIMEOUT (default 2400 s).
# Needs root (namespaces), as scripts/test.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

kind=${1:-}
filter=${2:-.}
case "$kind" in
  address) scratch=.build-asan ;;
  thread) scratch=.build-tsan ;;
  *) echo "usage: scripts/sanitize.sh address|thread [FILTER]"; exit 2 ;;
esac
out="$PWD/artifacts/sanitize-$kind"
rm -rf "$out"; mkdir -p "$out"

# Dependencies, BOOTPOLICY_REQUIRE_ALL and a throwaway PostgreSQL (stopped at exit).
. scripts/test-env.sh
# Timing tests widen their bounds under a sanitizer (it slows C code several times).
export BOOTPOLICY_SANITIZER="$kind"
# Reports go to files, one per process; the first ASan error ends that process (its default).
export ASAN_OPTIONS="log_path=$out/report:detect_leaks=1:${ASAN_OPTIONS:-}"
export TSAN_OPTIONS="log_path=$out/report:${TSAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt:${LSAN_OPTIONS:-}"

echo "== build (--sanitize=$kind, $scratch)"
start=$(date +%s)
timeout "${BOOTPOLICY_SANITIZE_BUILD_TIMEOUT:-3600}" swift build --build-tests --sanitize="$kind" --scratch-path "$scratch" \
  >"$out/build.log" 2>&1
build=$?
grep -E "error:" "$out/build.log" | head -n 20
[ "$build" -eq 0 ] || { echo "build failed (exit $build, log: $out/build.log)"; echo "0 passed, 1 failed"; exit 1; }
echo "built in $(( $(date +%s) - start )) s"

passed=0; failed=0; bad=""
for target in $(ls Tests | grep 'Tests$' | grep -E "$filter"); do
  echo; echo "== swift test $target (--sanitize=$kind)"
  log="$out/swift-test-$target.log"
  t0=$(date +%s)
  timeout --kill-after=30 "${BOOTPOLICY_SANITIZE_TARGET_TIMEOUT:-2400}" \
    swift test --skip-build --sanitize="$kind" --scratch-path "$scratch" --filter "^$target\\." >"$log" 2>&1
  st=$?
  total=$(grep -oE 'Test run with [0-9]+ test' "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
  nfail=$(grep -E '^✘ Test .* failed after' "$log" | grep -cv '^✘ Test run' || true)
  grep -E "^✘ Test .* failed after|Test run with" "$log" | tail -n 20
  echo "$target: exit $st, $total tests, $nfail failed, $(( $(date +%s) - t0 )) s"
  passed=$((passed + total - nfail)); failed=$((failed + nfail))
  if [ "$st" -ne 0 ]; then bad="$bad $target"; [ "$nfail" -gt 0 ] || failed=$((failed + 1)); fi
done

echo; echo "== sanitizer reports ($out/report.*)"
reports=0
for f in "$out"/report.*; do
  [ -e "$f" ] || continue
  reports=$((reports + 1))
  echo "-- $f"
  grep -E "ERROR: AddressSanitizer|WARNING: ThreadSanitizer|ERROR: LeakSanitizer|SUMMARY:" "$f" | head -n 5
done
echo "$reports report files"
[ -z "$bad" ] || echo "failed targets:$bad"
echo "$passed passed, $failed failed"
[ "$reports" -eq 0 ] && [ -z "$bad" ]
