#!/usr/bin/env bash
# Regenerates the README's screenshots (docs/screenshots/*.png) from the Galata
# tests that take them, in Debian's Chromium: `npm run screenshots`.
# The test run itself (scripts/test.sh) writes its screenshots to
# .test-reports/screenshots and never touches docs/.
#
#   scripts/screenshots.sh                 # all of them
#   scripts/screenshots.sh -g toolbar      # extra arguments go to `playwright test`
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh --test
export PATH="$ROOT/.venv/bin:$PATH" PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export NBSCALE_SCREENSHOTS="$ROOT/docs/screenshots"
mkdir -p "$NBSCALE_SCREENSHOTS"
# The spec files whose tests write a screenshot (grep screenshotPath ui-tests/tests).
mapfile -t SPECS < <(grep -l "screenshotPath(" ui-tests/tests/*.spec.ts | sed 's#^ui-tests/##')
cd ui-tests
npx playwright test --reporter=list "${SPECS[@]}" "$@"
echo "screenshots written to docs/screenshots:"
ls -l "$NBSCALE_SCREENSHOTS"
