#!/usr/bin/env bash
# Every test bootpolicy has: unit tests, real-socket tests, policy tests, namespace tests.
# It installs what it needs first. Needs root for the namespace tests (ip netns).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

scripts/deps.sh test
echo "== build"
swift build --build-tests 2>&1 | tail -n 3
echo "== swift test"
swift test --skip-build 2>&1 | tee .build/swift-test.log | grep -E '^(✘|✔ Test run|✘ Test run)|error:|failed' || true
grep -qE '✔ Test run with [0-9]+ tests? .*passed' .build/swift-test.log || { echo "swift test failed"; exit 1; }
