"""`--foreach` parallel efficiency (issue 6's performance target).

8 items of 1 s of CPU each (a busy loop that stops when the worker's own
`process.cpuUsage()` reaches 1 s), `--parallel 2`, on the local pool after
it is warm (a first foreach of trivial items starts the second worker).
Ideal wall time on 2 free cores: 8 x 1 s / 2 = 4 s. Parallel efficiency =
ideal / measured, target >= 0.85. Measured from the client: execute_request
to the reply, and to the idle status (recording of the 9 executions
included, as a user sees it).

The machine is shared with other processes: the load average before each
run is reported next to its time, and the best of N runs is the headline.

Per-item overhead (issue 16): a foreach of 1,000 trivial items against one of
1 item, on the same warm pool, (wall(1000) - wall(1)) / 999, target <= 2 ms;
the same for a flow's foreach step through `nbscale run` (compile cache warm).

    .venv/bin/python bench/foreach_bench.py [N]    # writes bench/results/foreach_bench.json
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from jupyter_client.manager import start_new_kernel
from results_io import write_result

ITEMS = 8
CPU_S = 1.0
PARALLEL = 2
IDEAL_S = ITEMS * CPU_S / PARALLEL

BODY = f"""%%step burn --foreach jobs --parallel {PARALLEL}
const t0 = process.cpuUsage();
let x = 0;
for (;;) {{
  for (let i = 0; i < 100_000; i++) x += i;
  const u = process.cpuUsage(t0);
  if (u.user + u.system >= {int(CPU_S * 1e6)}) break;
}}
const used = process.cpuUsage(t0);
const cpu = (used.user + used.system) / 1e6;
const pid = process.pid;"""


def run(kc: Any, code: str, timeout: float = 300) -> tuple[float, float, dict[str, Any], list[dict[str, Any]]]:
    """Seconds to the reply and to the idle status, the reply, the iopub messages."""
    t0 = time.perf_counter()
    msg_id = kc.execute(code)
    reply = None
    while reply is None:
        r = kc.get_shell_msg(timeout=timeout)
        if r["parent_header"].get("msg_id") == msg_id:
            reply = r
    t_reply = time.perf_counter() - t0
    msgs = []
    while True:
        m = kc.get_iopub_msg(timeout=timeout)
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            break
        msgs.append(m)
    t_idle = time.perf_counter() - t0
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"{code.splitlines()[0]!r} failed: {reply['content'].get('ename')}: {reply['content'].get('evalue')}")
    return t_reply, t_idle, reply, msgs


def value(kc: Any, expr: str) -> Any:
    _, _, _, msgs = run(kc, f"JSON.stringify({expr})")
    text = [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"][0]
    return json.loads(json.loads(text.replace("'", '"')))


MANY = 1000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "kernel", "bin", "nbscale.js")


def cell_item_overhead(kc: Any, reps: int) -> list[float]:
    """ms per item beyond a 1-item foreach, for 1,000 trivial items on the warm pool."""
    run(kc, f"const many = Array.from({{ length: {MANY} }}, (_, i) => i); const one = [0];")
    run(kc, f"%%step warm_many --foreach many --parallel {PARALLEL}\nconst w = item + 1;", timeout=900)
    out = []
    for r in range(reps):
        t_one = run(kc, f"%%step t_one_{r} --foreach one --parallel {PARALLEL}\nconst y = item * 2;", timeout=900)[0]
        t_many = run(kc, f"%%step t_many_{r} --foreach many --parallel {PARALLEL}\nconst y = item * 2;", timeout=900)[0]
        out.append(round((t_many - t_one) / (MANY - 1) * 1000, 3))
        print(json.dumps({"cell_per_item_ms": out[-1], "one_s": round(t_one, 3), "many_s": round(t_many, 3)}), flush=True)
    return out


def flow_item_overhead(reps: int) -> list[float]:
    """The same through `nbscale run`: a flow whose foreach step has 1,000 items vs 1."""
    work = tempfile.mkdtemp(prefix="foreach-flow-bench-")
    env = {**os.environ, "NBSCALE_DATASTORE": os.path.join(work, "store"), "NBSCALE_CACHE_DIR": os.path.join(work, "cache")}
    walls: dict[int, list[float]] = {1: [], MANY: []}
    for n in (1, MANY):
        with open(os.path.join(work, f"each{n}.ts"), "w") as f:
            f.write('import { flow, step } from "nbscale";\n'
                    f'const each = step("each", {{ parallel: {PARALLEL}, foreach: () => Array.from({{ length: {n} }}, (_, i) => i) }}, ({{ item }}) => {{ const y = item * 2; return {{ y }}; }});\n'
                    'export default flow("each", [each]);\n')
        subprocess.run(["node", CLI, "run", f"each{n}.ts", "--max-workers", str(PARALLEL)], cwd=work, env=env, check=True, capture_output=True)  # fills the cache
    out = []
    for _ in range(reps):
        for n in (1, MANY):
            t0 = time.perf_counter()
            subprocess.run(["node", CLI, "run", f"each{n}.ts", "--max-workers", str(PARALLEL)], cwd=work, env=env, check=True, capture_output=True)
            walls[n].append(time.perf_counter() - t0)
        out.append(round((walls[MANY][-1] - walls[1][-1]) / (MANY - 1) * 1000, 3))
        print(json.dumps({"flow_per_item_ms": out[-1], "one_s": round(walls[1][-1], 3), "many_s": round(walls[MANY][-1], 3)}), flush=True)
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    cwd = tempfile.mkdtemp(prefix="foreach-bench-")
    km, kc = start_new_kernel(kernel_name="nbscale", cwd=cwd)
    runs = []
    try:
        run(kc, f"const jobs = Array.from({{ length: {ITEMS} }}, (_, i) => i);")
        # Warm-up: both workers started and the step path compiled once.
        run(kc, f"%%step warm --foreach jobs --parallel {PARALLEL}\nconst w = process.pid;")
        for _ in range(n):
            load = os.getloadavg()[0]
            t_reply, t_idle, _, msgs = run(kc, BODY)
            cpu = value(kc, "cpu")
            pids = value(kc, "pid")
            runs.append({
                "reply_s": round(t_reply, 3),
                "idle_s": round(t_idle, 3),
                "efficiency": round(IDEAL_S / t_reply, 3),
                "load_avg_1m_before": round(load, 2),
                "item_cpu_s": [round(c, 3) for c in cpu],
                "workers": len(set(pids)),
                "progress_updates": sum(1 for m in msgs if m["msg_type"] == "update_display_data"),
            })
            print(json.dumps(runs[-1]), flush=True)
        cell_items = cell_item_overhead(kc, n)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    flow_items = flow_item_overhead(n)
    best = min(runs, key=lambda r: r["reply_s"])
    result = {
        "benchmark": "foreach: 8 items x 1 s CPU, --parallel 2, warm pool",
        "cores": os.cpu_count(),
        "ideal_s": IDEAL_S,
        "runs": runs,
        "best_reply_s": best["reply_s"],
        "median_reply_s": round(statistics.median(r["reply_s"] for r in runs), 3),
        "parallel_efficiency": best["efficiency"],
        "median_parallel_efficiency": round(IDEAL_S / statistics.median(r["reply_s"] for r in runs), 3),
        "target": 0.85,
        "meets_target": best["efficiency"] >= 0.85,
        "item_overhead": {
            "items": MANY,
            "cell_per_item_ms": {"median": statistics.median(cell_items), "runs": cell_items},
            "flow_per_item_ms": {"median": statistics.median(flow_items), "runs": flow_items},
            "target_ms": 2,
        },
    }
    print(json.dumps(result, indent=2))
    write_result("foreach_bench", result)


if __name__ == "__main__":
    main()
