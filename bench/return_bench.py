"""Returning large values from a `%%step` (issue 16): peak worker RSS / the
value's size, for each shape a step commonly returns. Target: <= 1.2.

For each shape, in the same run:
- baseline: plain Node (`node -e`) builds the same value and reports its peak
  RSS (`process.resourceUsage().maxRSS`): what holding the value costs;
- nbscale: a `%%step --memory M` builds it and returns it; the pool's own
  sampler's peak for the worker comes back in the step status
  (`memory.peakBytes`), and the worker's RSS once the value was built is
  printed by the cell.
The ratio reported is peak worker RSS / plain Node's peak for the value
(`vs_node`), and / the worker's own RSS holding it (`vs_held`). Values this big
go to the datastore as `Lazy` (over NBSCALE_LAZY_BYTES); NBSCALE_RECORD=0.

    .venv/bin/python bench/return_bench.py [GIB]   # default 2; writes bench/results/return_bench.json
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

from jupyter_client.manager import start_new_kernel

from results_io import write_result

GIB = 1 << 30
STEP_STATUS = "application/vnd.nbscale.step+json"


def shapes(gib: float) -> dict[str, str]:
    """JavaScript (also valid TypeScript) that builds `v`, about `gib` GiB held."""
    arrays = int(gib * 128)  # arrays of 1M doubles: 8 MiB each
    rows = int(gib * 7500 / 4)  # groups of 4000 rows, ~143 bytes a row
    return {
        "Float64Array[]": f"const v = Array.from({{ length: {arrays} }}, (_, i) => new Float64Array(1 << 20).fill(i));",
        "number[][]": f"const v = Array.from({{ length: {arrays} }}, (_, i) => Array.from({{ length: 1 << 20 }}, (_, j) => i + j / 3));",
        "string[]": f"const v = Array.from({{ length: {int(gib * 26_000_000)} }}, (_, i) => `s-${{i}}`);",
        "Map<string, object[]>": (
            "const v = new Map();"
            f"for (let g = 0; g < {rows}; g++) {{ const rows = []; for (let r = 0; r < 4000; r++) rows.push({{ id: g * 4000 + r, name: `row-${{r}}`, score: r * 0.25, tags: ['a', 'b'] }}); v.set(`group-${{g}}`, rows); }}"
        ),
        "nested {matrix, map}": (
            f"const v = {{ matrix: Array.from({{ length: {arrays // 2} }}, (_, i) => Array.from({{ length: 1 << 20 }}, (_, j) => i + j)),"
            f" byKey: new Map(Array.from({{ length: {arrays // 2} }}, (_, i) => [`k${{i}}`, new Float64Array(1 << 20).fill(i)])) }};"
        ),
    }


def node_peak(build: str) -> int:
    r = subprocess.run(
        ["node", "--max-old-space-size=16384", "-e", f"{build}\nprocess.stdout.write(String(process.resourceUsage().maxRSS * 1024));"],
        capture_output=True, text=True, timeout=900, check=True,
    )
    return int(r.stdout.strip())


def run_step(kc: Any, code: str, timeout: float = 1800) -> tuple[dict[str, Any], str, float]:
    t0 = time.perf_counter()
    msg_id = kc.execute(code)
    status: dict[str, Any] = {}
    out = ""
    while True:
        m = kc.get_iopub_msg(timeout=timeout)
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        if m["msg_type"] in ("display_data", "update_display_data") and STEP_STATUS in m["content"]["data"]:
            status = m["content"]["data"][STEP_STATUS]
        elif m["msg_type"] == "stream":
            out += m["content"]["text"]
        elif m["msg_type"] == "error":
            raise RuntimeError(f"{code.splitlines()[0]}: {m['content']['ename']}: {m['content']['evalue']}")
        elif m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            return status, out, time.perf_counter() - t0


def main() -> None:
    gib = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    memory = f"{int(gib * 1.6) + 2}G"
    result: dict[str, Any] = {"gib": gib, "memory": memory, "target_ratio": 1.2, "shapes": {}, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="nbscale-return-") as cwd:
        env = {k: v for k, v in os.environ.items() if k not in ("NBSCALE_DATASTORE", "NBSCALE_LAZY_BYTES")}
        env["NBSCALE_RECORD"] = "0"
        for name, build in shapes(gib).items():
            # A fresh kernel (and worker) per shape: a warm worker keeps the memory its last step grew
            # to, and the pool's peak for the next step starts from there.
            km, kc = start_new_kernel(kernel_name="nbscale", cwd=cwd, env=env)
            try:
                baseline = node_peak(build)
                code = f"%%step make --memory {memory}\n{build}\nconsole.log(`held ${{process.memoryUsage.rss()}}`);"
                status, out, seconds = run_step(kc, code)
                held = int(re.search(r"held (\d+)", out).group(1))  # type: ignore[union-attr]
                peak = status["memory"]["peakBytes"]
                row = {
                    "node_peak_bytes": baseline,
                    "worker_held_bytes": held,
                    "worker_peak_bytes": peak,
                    "vs_node": round(peak / baseline, 3),
                    "vs_held": round(peak / held, 3),
                    "step_s": round(seconds, 1),
                    "state": status.get("state"),
                    "lazy": "stays in the datastore" in out,
                }
                result["shapes"][name] = row
                print(f"{name}: {json.dumps(row)}", file=sys.stderr)
            finally:
                km.shutdown_kernel(now=True)
    result["load_after"] = os.getloadavg()
    ratios = [r["vs_node"] for r in result["shapes"].values()]
    result["worst_vs_node"] = max(ratios)
    print(json.dumps(result, indent=2))
    write_result("return_bench", result)


if __name__ == "__main__":
    main()
