"""Trivial-cell overhead of recording, seen by a Jupyter client.

Runs `i + 1` N times in a real nbscale kernel with recording on and off
(NBSCALE_RECORD=0) and reports the p50 time to execute_reply (what the user
waits for) and to the idle status (when the record has committed).

    .venv/bin/python bench/record_kernel_latency.py [N]
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

from jupyter_client.manager import start_new_kernel
from results_io import write_result


def measure(record: bool, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as cwd:
        env = {**os.environ, "NBSCALE_RECORD": "1" if record else "0"}
        km, kc = start_new_kernel(kernel_name="nbscale", cwd=cwd, env=env)
        try:
            replies, idles = [], []
            for i in range(n + 5):
                t0 = time.perf_counter()
                msg_id = kc.execute(f"{i} + 1")
                while True:
                    r = kc.get_shell_msg(timeout=30)
                    if r["parent_header"].get("msg_id") == msg_id:
                        break
                t_reply = time.perf_counter() - t0
                while True:
                    m = kc.get_iopub_msg(timeout=30)
                    if (m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status"
                            and m["content"]["execution_state"] == "idle"):
                        break
                t_idle = time.perf_counter() - t0
                if i >= 5:  # warm-up
                    replies.append(t_reply * 1000)
                    idles.append(t_idle * 1000)
            return {"reply_p50_ms": round(statistics.median(replies), 2), "idle_p50_ms": round(statistics.median(idles), 2)}
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    off = measure(False, n)
    on = measure(True, n)
    result = {
        "cells": n,
        "recording_off": off,
        "recording_on": on,
        "overhead_reply_p50_ms": round(on["reply_p50_ms"] - off["reply_p50_ms"], 2),
        "overhead_idle_p50_ms": round(on["idle_p50_ms"] - off["idle_p50_ms"], 2),
    }
    write_result("record_kernel_latency", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
