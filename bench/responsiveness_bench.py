"""How quickly the kernel answers while it is busy: the timings the tests no longer assert
(they depend on the machine; the tests check what happens, these say how fast).

- interrupt: from interrupt_kernel() to the execute_reply of an endless loop, in a plain
  cell (the kernel) and in a step (a local worker); tests/test_kernel_behaviour.py and
  tests/test_steps.py check that it stops at all.
- control during a flood: kernel_info round trips on the control channel while a cell
  prints 100 MB (10^6 lines), in the kernel and in a step; tests/test_reliability.py checks
  that they are answered during the flood.

    .venv/bin/python bench/responsiveness_bench.py [REPS]

Writes bench/results/responsiveness_bench.json. Never fails on a slow machine.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

from jupyter_client.manager import start_new_kernel
from results_io import write_result

FLOOD = "for (let i = 0; i < 1_000_000; i++) console.log(String(i).padStart(99, '.'));"


def reply_to(kc: Any, msg_id: str, timeout: float = 300) -> dict[str, Any]:
    while True:
        r = kc.get_shell_msg(timeout=timeout)
        if r["parent_header"].get("msg_id") == msg_id:
            return r


def idle(kc: Any, msg_id: str, started: threading.Event | None = None, timeout: float = 300) -> None:
    while True:
        m = kc.get_iopub_msg(timeout=timeout)
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        if started is not None and m["msg_type"] == "stream":
            started.set()
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            return


def interrupt_ms(km: Any, kc: Any, code: str) -> float:
    msg_id = kc.execute(code)
    while True:  # the loop has started once it printed
        m = kc.get_iopub_msg(timeout=120)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream":
            break
    t0 = time.perf_counter()
    km.interrupt_kernel()
    reply_to(kc, msg_id, 120)
    ms = (time.perf_counter() - t0) * 1000
    idle(kc, msg_id)
    return ms


def control_during_flood_ms(kc: Any, code: str) -> list[float]:
    latencies: list[float] = []
    stop, flooding = threading.Event(), threading.Event()

    def ping() -> None:
        while not stop.is_set():
            msg = kc.session.msg("kernel_info_request")
            t0 = time.perf_counter()
            kc.control_channel.send(msg)
            while kc.control_channel.get_msg(timeout=120)["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                pass
            if flooding.is_set() and not stop.is_set():
                latencies.append((time.perf_counter() - t0) * 1000)
            stop.wait(0.05)

    msg_id = kc.execute(code)
    pinger = threading.Thread(target=ping)
    pinger.start()
    try:
        idle(kc, msg_id, flooding)  # iopub as it comes: its first output starts the count
        reply_to(kc, msg_id)
    finally:
        stop.set()
        pinger.join()
    return latencies


def summary(xs: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(xs), 1), "max": round(max(xs), 1), "n": len(xs)} if xs else {"n": 0}


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as cwd:
        km, kc = start_new_kernel(kernel_name="nbscale", cwd=cwd)
        try:
            warm = kc.execute("%%step warm\nconst warmed = 1;")
            reply_to(kc, warm, 120)
            idle(kc, warm)
            kernel_int = [interrupt_ms(km, kc, 'console.log("spinning");\nwhile (true) {}') for _ in range(reps)]
            step_int = [interrupt_ms(km, kc, '%%step spin\nconsole.log("spinning");\nwhile (true) {}') for _ in range(reps)]
            kernel_ctl = control_during_flood_ms(kc, FLOOD)
            step_ctl = control_during_flood_ms(kc, f"%%step flood\n{FLOOD}\nconst flooded = true;")
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    result = {
        "reps": reps,
        "interrupt_ms": {"kernel": summary(kernel_int), "step": summary(step_int)},
        "control_kernel_info_ms_during_100_MB_flood": {"kernel": summary(kernel_ctl), "step": summary(step_ctl)},
    }
    print(json.dumps(result, indent=2))
    print(f"wrote {write_result('responsiveness_bench', result)}", file=sys.stderr)


if __name__ == "__main__":
    main()
