#!/usr/bin/env bash
# Sets everything up (see setup.sh --test) and runs every test suite:
# kernel unit tests (node:test), extension unit tests (jest), lint, the kernel
# protocol/behaviour/headless tests (pytest over the real Jupyter protocol),
# and the UI tests (Galata in Debian's Chromium). Ends with one summary line.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh --test || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
export PATH="$ROOT/.venv/bin:$PATH"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
REPORTS="$ROOT/.test-reports"
rm -rf "$REPORTS"; mkdir -p "$REPORTS"
SUITE_FAILURES=0

run_suite() {
  local name="$1"; shift
  printf '\n\033[1m=== %s ===\033[0m\n' "$name"
  local start=$SECONDS
  "$@"
  local rc=$?
  printf '=== %s: exit %s in %ss ===\n' "$name" "$rc" "$((SECONDS - start))"
  [ $rc = 0 ] || SUITE_FAILURES=$((SUITE_FAILURES + 1))
  echo "$name $rc" >> "$REPORTS/suites.txt"
}

run_suite "kernel unit tests (node:test)" bash -c 'cd kernel && node --test --test-concurrency=1 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="'"$REPORTS"'/kernel-unit.xml" $(find dist/test -name "*.test.js" | sort)'
run_suite "extension unit tests (jest)" npx jest --coverage=false --ci --json --outputFile="$REPORTS/jest.json"
run_suite "lint (eslint, prettier, stylelint)" npm run -s lint:check
# A single-node Slurm for the Slurm backend's tests; stopped (by PID) on exit.
if bash scripts/slurm.sh up > "$REPORTS/slurm-up.log" 2>&1; then
  export SLURM_CONF="$ROOT/.slurm/slurm.conf" NBSCALE_TEST_SLURM=1
  trap 'bash "$ROOT/scripts/slurm.sh" down' EXIT
else
  echo "warning: Slurm did not start; see $REPORTS/slurm-up.log"
fi
run_suite "kernel over the Jupyter protocol (pytest)" .venv/bin/python -m pytest -q -p no:cacheprovider \
  --junitxml="$REPORTS/pytest.xml" tests jupyterlab_nbscale/tests
run_suite "JupyterLab in Chromium (Galata)" bash -c 'cd ui-tests && PLAYWRIGHT_JUNIT_OUTPUT_NAME="'"$REPORTS"'/galata.xml" \
  npx playwright test --reporter=list,junit'

.venv/bin/python scripts/summarize_tests.py "$REPORTS"
rc=$?
[ $SUITE_FAILURES = 0 ] || rc=1
exit $rc
