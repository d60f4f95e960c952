"""`%%step` on the local pool, seen by a Jupyter client (issue 3's performance targets).

1. Dispatch overhead: a trivial cell (`const v_i = i;`) run N times in the
   kernel and as `%%step` on a warm local worker; p50 time to idle (reply and
   all output), and the difference. Target: step p50 - kernel p50 <= 15 ms.
2. Large data: a 512 MiB Float64Array sent to a worker and back
   (`%%step --memory 3G` with `const back = big;`), against the machine's raw
   file write+fsync throughput of the same 512 MiB measured in the same run.
   Target: round-trip throughput >= 0.7x raw write+fsync.

Recording is off (NBSCALE_RECORD=0) so the numbers are the dispatch path
alone; the recorder's cost is measured by record_kernel_latency.py.

The machine is shared and both its disk and CPU speed drift, so the round
trip is repeated REPS times (env, default 5), each right after its own raw
write+fsync; the ratio is taken per pair and its median, min and max are
reported with the load averages before and after.

    .venv/bin/python bench/step_bench.py [N]      # writes bench/results/step_bench.json
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from jupyter_client.manager import start_new_kernel
from results_io import write_result

MiB = 1 << 20
BIG = 512 * MiB


def run(kc: Any, code: str, timeout: float = 300) -> tuple[float, dict[str, Any]]:
    """Seconds from execute to the idle status, and the reply."""
    t0 = time.perf_counter()
    msg_id = kc.execute(code)
    reply = None
    while reply is None:
        r = kc.get_shell_msg(timeout=timeout)
        if r["parent_header"].get("msg_id") == msg_id:
            reply = r
    while True:
        m = kc.get_iopub_msg(timeout=timeout)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            break
    elapsed = time.perf_counter() - t0
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"{code!r} failed: {reply['content'].get('ename')}: {reply['content'].get('evalue')}")
    return elapsed, reply


def raw_write_fsync(directory: str, size: int) -> float:
    """Seconds to write `size` bytes to a new file and fsync it."""
    block = os.urandom(8 * MiB)
    path = os.path.join(directory, "raw.bin")
    t0 = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        for _ in range(size // len(block)):
            f.write(block)
        os.fsync(f.fileno())
    elapsed = time.perf_counter() - t0
    os.unlink(path)
    return elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    with tempfile.TemporaryDirectory() as cwd:
        # The round trip is what is measured: the 512 MiB result must come back even
        # where a quarter of the kernel's heap limit (the lazy-output default) is smaller.
        env = {**os.environ, "NBSCALE_RECORD": "0", "NBSCALE_LAZY_BYTES": "8G"}
        km, kc = start_new_kernel(kernel_name="nbscale", cwd=cwd, env=env)
        try:
            kernel_ms, step_ms = [], []
            for i in range(n + 5):
                t_kernel, _ = run(kc, f"const k_{i} = {i};")
                t_step, _ = run(kc, f"%%step trivial_{i}\nconst s_{i} = {i};")
                if i >= 5:  # warm-up: compiler caches, the first worker
                    kernel_ms.append(t_kernel * 1000)
                    step_ms.append(t_step * 1000)
            k50, s50 = statistics.median(kernel_ms), statistics.median(step_ms)

            run(kc, f"const big = new Float64Array({BIG // 8}).fill(1.5);")
            # Warm a worker of that size first, so the round trip does not include its start.
            run(kc, "%%step warm_big --memory 3G\nconst warmed = 1;")
            trips = []
            raws = []
            load_before = os.getloadavg()[0]
            for _ in range(int(os.environ.get("REPS", "5"))):  # interleaved: the machine is shared and its disk speed drifts
                raws.append(raw_write_fsync(cwd, BIG))
                t, _ = run(kc, "%%step big_trip --memory 3G\nconst back = big;")
                trips.append(t)
            load_after = os.getloadavg()[0]
            run(kc, "if (back.length !== big.length || back[12345] !== 1.5) throw new Error('bad round trip');")
            trip, raw = statistics.median(trips), statistics.median(raws)
            ratios = [r / t for r, t in zip(raws, trips)]
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)

    result = {
        "trivial_cell": {
            "n": n,
            "kernel_p50_ms": round(k50, 2),
            "step_p50_ms": round(s50, 2),
            "extra_p50_ms": round(s50 - k50, 2),
            "target_extra_ms": 15,
        },
        "large_array_round_trip": {
            "bytes": BIG,
            "round_trip_s": round(trip, 3),
            "round_trip_mb_s": round(BIG / MiB / trip, 1),
            "raw_write_fsync_s": round(raw, 3),
            "raw_write_fsync_mb_s": round(BIG / MiB / raw, 1),
            "ratio": round(statistics.median(ratios), 2),
            "ratio_min": round(min(ratios), 2),
            "ratio_max": round(max(ratios), 2),
            "reps": len(ratios),
            "round_trips_s": [round(t, 3) for t in trips],
            "raw_write_fsync_runs_s": [round(r, 3) for r in raws],
            "loadavg_1m_before": round(load_before, 2),
            "loadavg_1m_after": round(load_after, 2),
            "target_ratio": 0.7,
        },
    }
    print(json.dumps(result, indent=2))
    write_result("step_bench", result)


if __name__ == "__main__":
    main()
