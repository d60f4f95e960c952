#!/usr/bin/env bash
# One benchmark command (issue 10): `npm run bench` or `bash bench/run.sh`.
# Not a test: it prints numbers and never fails on a slow machine; it fails
# only when a benchmark cannot run at all.
#
# Writes bench/results/*.json (per benchmark), bench/results.json (all of
# them + machine), bench/results/table.md, bench/results/kernels_table.md,
# docs/benchmarks.png and docs/kernels.png; prints the Markdown tables.
# About 8-11 minutes on 2 cores.
#
#   bash bench/run.sh kernels   # only the kernel comparison (about 3-4 minutes):
#                               # bench/results/kernels.json, kernels_table.md, docs/kernels.png
#
# REPS (default 3): repetitions of the Metaflow and flow-level measurements.
# RETURN_GIB (default 2): size of each value return_bench.py returns from a step
# (it needs about 2.5x that in free memory).
# KERNEL_REPS (default 5): fresh kernels per kernel in kernels_bench.py
# (nbscale vs Deno vs tslab; tslab's ~10 s loop cells make each rep ~30 s).
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

# The other TypeScript kernels, side by side with nbscale's (kernels_bench.py):
# Deno 2.9 and Node 24 (a 4th column: nbscale's kernel on Node 24) from the npm
# registry, each from its own committed lockfile; tslab is already in
# node_modules (a kernel dependency). Their kernelspecs go to a temporary
# JUPYTER_PATH that kernels_bench.py writes.
for tool in deno node24; do
  [ -f "tools/$tool/package-lock.json" ] || continue
  if [ ! -d "tools/$tool/node_modules" ] || [ "tools/$tool/package-lock.json" -nt "tools/$tool/node_modules/.package-lock.json" ]; then
    echo "bench: installing tools/$tool from its lockfile" >&2
    npm ci --prefix "tools/$tool" --no-audit --no-fund --loglevel=error >&2
  fi
done

mkdir -p bench/results bench/.tmp
log() { echo "bench: $* ($(date -u +%H:%M:%S))" >&2; }
# Their own output goes to stderr: stdout carries only the table.
KERNEL_REPS="${KERNEL_REPS:-5}"
if [ "${1:-}" = kernels ]; then
  log "nbscale vs Deno vs tslab kernels (kernels_bench.py, $KERNEL_REPS fresh kernels each)"; "$PY" bench/kernels_bench.py "$KERNEL_REPS" 30 >&2
  rm -rf bench/.tmp
  "$BPY" bench/kernels_report.py --chart docs/kernels.png | tee bench/results/kernels_table.md
  exit 0
fi
log "step overhead (step_bench.py, 40 cells each way)"; "$PY" bench/step_bench.py 40 >&2
log "foreach efficiency (foreach_bench.py, 3 runs)";    "$PY" bench/foreach_bench.py 3 >&2
log "modules loaded by nbscale run (startup_modules.js)"; node bench/startup_modules.js >&2
log "artifact record/restore (record_bench.js)";        node bench/record_bench.js --mb 256 >&2
log "returning large values from steps (return_bench.py, ${RETURN_GIB:-2} GiB each)"; "$PY" bench/return_bench.py "${RETURN_GIB:-2}" >&2
log "interrupt, control during a flood (responsiveness_bench.py)"; "$PY" bench/responsiveness_bench.py 3 >&2
log "nbscale vs Deno vs tslab kernels (kernels_bench.py, $KERNEL_REPS fresh kernels each)"; "$PY" bench/kernels_bench.py "$KERNEL_REPS" 30 >&2
log "Metaflow comparison + resume ($REPS reps)";        "$BPY" bench/metaflow_bench.py "$REPS"
rm -rf bench/.tmp
log "report"
"$BPY" bench/report.py --chart docs/benchmarks.png --kernels-chart docs/kernels.png
