#!/usr/bin/env bash
# `npm test`: installs what is missing, builds the bookworm fixture, typechecks,
# then runs every test/**/*.test.ts with node's test runner, one file at a time
# (the e2e and integration tests share the machine's registry ports and caches).
#   PATCHD_TEST_FILTER=substring   only run test files whose path contains it
# Ends with a line `N passed, N failed` and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Everything below runs on Node.js 24, the supported LTS (installed when the machine's node is older).
export PATH="$(bash scripts/node-lts.sh):$PATH"
bash scripts/install-deps.sh

echo "test: bookworm fixture: $(bash test/fixtures/build-bookworm.sh)"
echo "test: app layer fixtures: $(bash test/fixtures/build-app-layers.sh)"

echo "test: typecheck (tsc -p tsconfig.json --noEmit)"
npx --no-install tsc -p tsconfig.json --noEmit

mapfile -t files < <(find test -type f -name '*.test.ts' | LC_ALL=C sort | grep -F -- "${PATCHD_TEST_FILTER:-}" || true)
if [ "${#files[@]}" -eq 0 ]; then
  echo "test: no test files match PATCHD_TEST_FILTER='${PATCHD_TEST_FILTER:-}'" >&2
  echo "0 passed, 0 failed"
  exit 1
fi
echo "test: ${#files[@]} test files"

tap=$(mktemp)
trap 'rm -f "$tap"' EXIT
status=0
node --import tsx --test --test-concurrency=1 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" \
  "${files[@]}" </dev/null || status=$?

# The tap reporter's closing summary: `# pass N`, `# fail N`, `# cancelled N`, `# skipped N`, `# todo N`.
count() { awk -v key="$1" '$1 == "#" && $2 == key { n = $3 } END { print n + 0 }' "$tap"; }
passed=$(count pass)
failed=$(( $(count fail) + $(count cancelled) ))
skipped=$(( $(count skipped) + $(count todo) ))
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # The runner itself failed (a file that does not load counts as a failed test
  # normally; this is for a runner that died before reporting).
  failed=1
fi
summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
