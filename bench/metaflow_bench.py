"""nbscale vs Metaflow, flow-level (issue 10). Runs in the bench venv (bench/.venv).

Measures, each REPS times on this machine, in this run:

1. Linear flows of 10 trivial steps: `python flow.py run` (Metaflow local
   runtime) vs `nbscale run flow.ts`. Wall time of the whole command minus the
   flows' compute (trivial steps: each adds 1 to a number, well under 1 ms in
   total, taken as 0), divided by 10 = per-step overhead. nbscale's timed
   runs find the flow in its compile cache (NBSCALE_CACHE_DIR, a temp dir
   filled by an untimed run), as Metaflow's Python finds its bytecode cached;
   runs with an empty cache are reported apart (nbscale_wall_cold_cache_s).
2. Metaflow foreach of 8 x 1 s CPU items with `--max-workers 2`: the foreach
   span is from the end of the `start` body (stamped inside the task) to the
   beginning of the `join` body, so it includes launching the 8 tasks, as a
   %%step --foreach measurement includes dispatch. Efficiency = 4 s / span.
3. Metaflow artifact save/load of a 256 MiB float64 numpy array (the same
   values as record_bench.js's Float64Array), against raw write+fsync / read
   of the same bytes measured here. Metaflow persists artifacts after a step
   body returns, so save time = the gap between two steps' bodies with the
   big array minus the same gap with a tiny array; load time = first access
   of `self.big` in the next step (artifacts load lazily).
4. nbscale resume: 10 steps of 0.2 s CPU each, the last one failing (it throws
   while BENCH_FAIL is set in the environment, which is neither code nor an
   input, so resume reuses steps 1-9). Ratio = `nbscale resume` wall after
   the failure / a full successful run's wall from an empty datastore.

    bench/.venv/bin/python bench/metaflow_bench.py [REPS]   # writes bench/results/metaflow_bench.json
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any
from results_io import write_result

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NBSCALE = [ "node", os.path.join(ROOT, "kernel", "bin", "nbscale.js")]
STEPS = 10
MiB = 1 << 20
BIG_ELEMS = 256 * MiB // 8


def stats(xs: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(xs), 4), "min": round(min(xs), 4), "max": round(max(xs), 4), "runs": [round(x, 4) for x in xs]}


def timed(cmd: list[str], cwd: str, env: dict[str, str] | None = None, ok: bool = True) -> float:
    """Wall seconds of a command; raise with its output if its exit status is not as expected."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if (p.returncode == 0) != ok:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return wall


def metaflow_env() -> dict[str, str]:
    # Metaflow's local runtime refuses to run without a user name.
    return {"USERNAME": os.environ.get("USERNAME") or os.environ.get("USER") or "bench", "METAFLOW_DEFAULT_DATASTORE": "local"}


# ---------------------------------------------------------------- flow sources

def metaflow_linear(steps: int = STEPS) -> str:
    names = ["start"] + [f"s{i}" for i in range(1, steps - 1)] + ["end"]
    body = ["from metaflow import FlowSpec, step", "", "class Linear(FlowSpec):"]
    for i, n in enumerate(names):
        body += ["    @step", f"    def {n}(self):"]
        body.append("        self.x = 0" if i == 0 else "        self.x = self.x + 1")
        if i + 1 < len(names):
            body.append(f"        self.next(self.{names[i + 1]})")
        else:
            body.append("        pass")
    return "\n".join(body + ["", "if __name__ == '__main__':", "    Linear()", ""])


def nbscale_linear(cpu_ms: int = 0, fail_last: bool = False, steps: int = STEPS) -> str:
    """10 chained steps; optionally each burns cpu_ms of CPU, the last throws while BENCH_FAIL is set."""
    lines = ['import { flow, step } from "nbscale";', ""]
    burn = (f"const t0 = process.cpuUsage(); for (;;) {{ const u = process.cpuUsage(t0); if (u.user + u.system >= {cpu_ms * 1000}) break; }}\n"
            if cpu_ms else "")
    for i in range(steps):
        fail = 'if (process.env.BENCH_FAIL) throw new Error("injected failure");\n' if fail_last and i == steps - 1 else ""
        if i == 0:
            lines.append(f's0 = step("s0", {{}}, () => {{\n{burn}const x = 0;\nreturn {{ x }};\n}});')
        else:
            lines.append(f's{i} = step("s{i}", {{ inputs: {{ x: s{i - 1}.x }} }}, ({{ x }}) => {{\n{burn}{fail}const y = x + 1;\nreturn {{ x: y }};\n}});')
        lines[-1] = "const " + lines[-1]
    lines.append(f'export default flow("linear", [{", ".join(f"s{i}" for i in range(steps))}]);')
    return "\n".join(lines) + "\n"


METAFLOW_FOREACH = """
import time
from metaflow import FlowSpec, step

class Fan(FlowSpec):
    @step
    def start(self):
        self.items = list(range(8))
        self.t_fork = time.time()
        self.next(self.burn, foreach="items")

    @step
    def burn(self):
        t0 = time.process_time()
        while time.process_time() - t0 < 1.0:
            sum(range(10000))
        self.next(self.join)

    @step
    def join(self, inputs):
        self.t_join = time.time()
        self.t_fork = inputs[0].t_fork
        self.next(self.end)

    @step
    def end(self):
        print("SPAN", self.t_join - self.t_fork)

if __name__ == "__main__":
    Fan()
"""

METAFLOW_ARTIFACT = """
import os, time
import numpy as np
from metaflow import FlowSpec, step

N = int(os.environ["BENCH_ELEMS"])

class Art(FlowSpec):
    @step
    def start(self):
        self.big = np.arange(N, dtype=np.float64) * 1.000001 - 7
        self.t_end = time.time()
        self.next(self.load)

    @step
    def load(self):
        t1 = time.time()
        s = float(self.big[-1])
        t2 = time.time()
        print("GAP", t1 - self.t_end, "LOAD", t2 - t1, s)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    Art()
"""


def run_metaflow_capture(src: str, args: list[str], env: dict[str, str] | None = None) -> str:
    """Run a Metaflow flow in a fresh temp dir (it writes .metaflow/ in the cwd); return stdout+stderr."""
    d = tempfile.mkdtemp(prefix="mfbench-")
    try:
        with open(os.path.join(d, "flow.py"), "w") as f:
            f.write(src)
        p = subprocess.run([sys.executable, "flow.py", "--no-pylint", "run", *args], cwd=d,
                           env={**os.environ, **metaflow_env(), **(env or {})}, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"metaflow run failed\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return p.stdout + p.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def grab(out: str, key: str, idx: int = 1) -> float:
    for line in out.splitlines():
        parts = line.split()
        if key in parts:
            return float(parts[parts.index(key) + idx])
    raise RuntimeError(f"{key} not found in:\n{out[-2000:]}")


# ---------------------------------------------------------------- measurements

def nbscale_linear_wall(steps: int, cache: str) -> float:
    """Wall seconds of one `nbscale run` of a linear flow (fresh datastore) with the compile cache in `cache`."""
    d = tempfile.mkdtemp(prefix="nblin-")
    with open(os.path.join(d, "flow.ts"), "w") as f:
        f.write(nbscale_linear(steps=steps))
    nb = timed([*NBSCALE, "run", "flow.ts", "--json", "--datastore", os.path.join(d, "ds")], d, {"NBSCALE_CACHE_DIR": cache})
    shutil.rmtree(d, ignore_errors=True)
    return nb


def linear_walls(steps: int, cache: str) -> tuple[float, float]:
    """Wall seconds of one Metaflow and one nbscale linear flow of `steps` trivial steps."""
    d = tempfile.mkdtemp(prefix="mflin-")
    with open(os.path.join(d, "flow.py"), "w") as f:
        f.write(metaflow_linear(steps))
    mf = timed([sys.executable, "flow.py", "--no-pylint", "run"], d, metaflow_env())
    shutil.rmtree(d, ignore_errors=True)
    return mf, nbscale_linear_wall(steps, cache)


def linear(reps: int) -> dict[str, Any]:
    # nbscale caches compiled flows (as Python caches bytecode): the timed runs
    # use a warm cache, filled by an untimed first run; the cost of a first
    # run (empty cache: the TypeScript compiler loads) is reported apart.
    cache = tempfile.mkdtemp(prefix="nbcache-")
    cold = []
    for _ in range(reps):
        shutil.rmtree(cache, ignore_errors=True)
        cold.append(nbscale_linear_wall(STEPS, cache))
    nbscale_linear_wall(2, cache)  # the 10-step flow is cached by now; this caches the 2-step one
    mf, nb, mf2, nb2 = [], [], [], []
    for _ in range(reps):
        m, n = linear_walls(STEPS, cache)
        mf.append(m)
        nb.append(n)
        # Where the time goes: the same flows with 2 steps (Metaflow's minimum,
        # start -> end); (wall10 - wall2) / 8 is the marginal cost of a step
        # without the command's fixed start-up (interpreter, flow compile).
        m, n = linear_walls(2, cache)
        mf2.append(m)
        nb2.append(n)
    mf_step = [w / STEPS for w in mf]  # compute of trivial steps taken as 0
    nb_step = [w / STEPS for w in nb]
    result = {
        "steps": STEPS,
        "metaflow_wall_s": stats(mf),
        "nbscale_wall_s": stats(nb),
        "metaflow_per_step_ms": stats([x * 1000 for x in mf_step]),
        "nbscale_per_step_ms": stats([x * 1000 for x in nb_step]),
        "ratio": stats([m / n for m, n in zip(mf_step, nb_step)]),
        "metaflow_wall_2_steps_s": stats(mf2),
        "nbscale_wall_2_steps_s": stats(nb2),
        "metaflow_marginal_step_ms": stats([(a - b) / (STEPS - 2) * 1000 for a, b in zip(mf, mf2)]),
        "nbscale_marginal_step_ms": stats([(a - b) / (STEPS - 2) * 1000 for a, b in zip(nb, nb2)]),
        "marginal_ratio": stats([(a - b) / max(1e-3, c - d) for a, b, c, d in zip(mf, mf2, nb, nb2)]),
        "nbscale_wall_cold_cache_s": stats(cold),
    }
    shutil.rmtree(cache, ignore_errors=True)
    return result


def foreach(reps: int) -> dict[str, Any]:
    spans = [grab(run_metaflow_capture(METAFLOW_FOREACH, ["--max-workers", "2"]), "SPAN") for _ in range(reps)]
    return {"items": 8, "cpu_s": 1.0, "max_workers": 2, "ideal_s": 4.0, "span_s": stats(spans),
            "efficiency": stats([4.0 / s for s in spans])}


def raw_io(size: int) -> tuple[float, float]:
    """Seconds to write+fsync then read `size` bytes (same bytes as the array)."""
    import numpy as np
    data = (np.arange(size // 8, dtype=np.float64) * 1.000001 - 7).tobytes()
    d = tempfile.mkdtemp(prefix="raw-")
    path = os.path.join(d, "raw.bin")
    t0 = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        f.write(data)
        os.fsync(f.fileno())
    w = time.perf_counter() - t0
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        f.read()
    r = time.perf_counter() - t0
    shutil.rmtree(d, ignore_errors=True)
    return w, r


def artifacts(reps: int) -> dict[str, Any]:
    save, load, rw, rr = [], [], [], []
    for _ in range(reps):
        w, r = raw_io(BIG_ELEMS * 8)
        rw.append(w)
        rr.append(r)
        small = run_metaflow_capture(METAFLOW_ARTIFACT, [], {"BENCH_ELEMS": "8"})
        big = run_metaflow_capture(METAFLOW_ARTIFACT, [], {"BENCH_ELEMS": str(BIG_ELEMS)})
        save.append(max(1e-3, grab(big, "GAP") - grab(small, "GAP")))
        load.append(grab(big, "LOAD"))
    return {"bytes": BIG_ELEMS * 8, "save_s": stats(save), "load_s": stats(load),
            "raw_write_fsync_s": stats(rw), "raw_read_s": stats(rr),
            "write_vs_disk": stats([w / s for w, s in zip(rw, save)]),
            "read_vs_disk": stats([r / l for r, l in zip(rr, load)])}


def resume(reps: int) -> dict[str, Any]:
    full, res, failed = [], [], []
    for _ in range(reps):
        d = tempfile.mkdtemp(prefix="nbres-")
        with open(os.path.join(d, "flow.ts"), "w") as f:
            f.write(nbscale_linear(cpu_ms=200, fail_last=True))
        full.append(timed([*NBSCALE, "run", "flow.ts", "--json", "--datastore", os.path.join(d, "full")], d))
        ds = os.path.join(d, "ds")
        t0 = time.perf_counter()
        p = subprocess.run([*NBSCALE, "run", "flow.ts", "--json", "--datastore", ds], cwd=d,
                           env={**os.environ, "BENCH_FAIL": "1"}, capture_output=True, text=True)
        failed.append(time.perf_counter() - t0)
        if p.returncode == 0:
            raise RuntimeError("the injected failure did not fail the run")
        run_id = json.loads(p.stdout.strip().splitlines()[-1])["run"]
        res.append(timed([*NBSCALE, "resume", run_id, "--json", "--datastore", ds], d))
        shutil.rmtree(d, ignore_errors=True)
    return {"steps": STEPS, "cpu_ms_per_step": 200, "full_run_s": stats(full), "failed_run_s": stats(failed),
            "resume_s": stats(res), "ratio": stats([r / f for r, f in zip(res, full)])}


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    import metaflow
    result = {"reps": reps, "metaflow_version": metaflow.__version__ if hasattr(metaflow, "__version__") else "?"}
    for name, fn in [("linear", linear), ("resume", resume), ("foreach", foreach), ("artifacts", artifacts)]:
        t0 = time.perf_counter()
        result[name] = fn(reps)
        print(f"{name}: {time.perf_counter() - t0:.1f}s {json.dumps(result[name])}", file=sys.stderr, flush=True)
    write_result("metaflow_bench", result)


if __name__ == "__main__":
    main()
