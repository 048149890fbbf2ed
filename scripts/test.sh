#!/usr/bin/env bash
# The whole test suite: installs what is missing (scripts/setup.sh), type-checks, then runs the
# unit tests and (as root) the integration tests against the real kernel. Ends with the line
# `N passed, N failed`. Exit status is non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
npm run --silent typecheck || status=1

projects=(--project unit)
if [ "$(id -u)" = 0 ]; then
  projects+=(--project integration)
else
  echo "test: not root: integration tests (real namespaces) are skipped" >&2
fi
npx vitest run "${projects[@]}" --reporter=default --reporter=json --outputFile.json="$out/results.json" || status=1

node -e '
  const fs = require("fs");
  let passed = 0, failed = 0, skipped = 0;
  try {
    const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    passed = r.numPassedTests; failed = r.numFailedTests; skipped = r.numPendingTests + r.numTodoTests;
    // A file that failed to load has no tests but is a failure.
    failed += r.testResults.filter((f) => f.status === "failed" && f.assertionResults.length === 0).length;
  } catch { failed += 1; }
  if (process.argv[2] !== "0" && failed === 0) failed = 1;
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$out/results.json" "$status"
exit $status
