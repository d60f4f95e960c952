#!/usr/bin/env bash
# One benchmark command (issue 10): `npm run bench` or `bash bench/run.sh`.
# Not a test: it prints numbers and never fails on a slow machine; it fails
# only when a benchmark cannot run at all.
#
# Writes bench/results/*.json (per benchmark), bench/results.json (all of
# them + machine), bench/results/table.md and docs/benchmarks.png; prints the
# Markdown table. About 5-8 minutes on 2 cores.
#
# REPS (default 3): repetitions of the Metaflow and flow-level measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS="${REPS:-3}"

# The project venv runs the Jupyter-protocol benchmarks (jupyter_client);
# Metaflow lives in its own venv so it never touches the project's.
PY=.venv/bin/python
[ -x "$PY" ] || { echo "bench: project venv .venv missing (see README: install)" >&2; exit 1; }
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c "import metaflow, numpy, matplotlib" 2>/dev/null; then
  echo "bench: creating bench/.venv (metaflow, numpy, matplotlib)" >&2
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q metaflow numpy matplotlib
fi
BPY=bench/.venv/bin/python

# The record and step benchmarks load the kernel's compiled code.
[ -d kernel/dist/src ] || (cd kernel && npx tsc -p tsconfig.json)

mkdir -p bench/results bench/.tmp
log() { echo "bench: $* ($(date -u +%H:%M:%S))" >&2; }
# Their own output goes to stderr: stdout carries only the table.
log "step overhead (step_bench.py, 40 cells each way)"; "$PY" bench/step_bench.py 40 >&2
log "foreach efficiency (foreach_bench.py, 3 runs)";    "$PY" bench/foreach_bench.py 3 >&2
log "artifact record/restore (record_bench.js)";        node bench/record_bench.js --mb 256 >&2
log "Metaflow comparison + resume ($REPS reps)";        "$BPY" bench/metaflow_bench.py "$REPS"
rm -rf bench/.tmp
log "report"
"$BPY" bench/report.py --chart docs/benchmarks.png
