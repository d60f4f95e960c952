"""`nbscale run` on warm workers and the compiled-flow cache, through the real
CLI: steps of a run share a worker process but not the flow's top-level
state, a timed-out worker is replaced, a changed flow is recompiled and a
syntax error is reported on every run, never cached."""
from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_flow import CLI, cli, last_json


@pytest.fixture()
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NBSCALE_DATASTORE", str(tmp_path / "store"))
    monkeypatch.setenv("NBSCALE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FLOW_COUNTER", str(tmp_path / "counter.txt"))
    return tmp_path


def marks(work: Path) -> list[list[str]]:
    return [line.split() for line in (work / "counter.txt").read_text().splitlines()]


def execution_pids(work: Path) -> dict[str, int]:
    """Step (cell) → the worker pid its execution record names."""
    out = {}
    for f in (work / "store" / "executions").glob("*.json"):
        rec = json.loads(f.read_text())
        out[rec["cell"]] = rec["worker"]["pid"]
    return out


# Three chained steps; each bumps a top-level counter and a counter in a
# helper module of the user's, and notes both with its pid.
CHAIN = """import { flow, step } from "nbscale";
import * as fs from "fs";
import { bump } from "./helper";

let calls = 0;
function mark(name: string): void {
  calls++;
  fs.appendFileSync(process.env.FLOW_COUNTER!, `${name} ${process.pid} ${calls} ${bump()}\\n`);
}

const a = step("a", {}, () => {
mark("a");
const x = 1;
return { x };
});
const b = step("b", { inputs: { x: a.x } }, ({ x }) => {
mark("b");
const y = x + 1;
return { y };
});
const c = step("c", { inputs: { y: b.y } }, ({ y }) => {
mark("c");
const z = y + 1;
return { z };
});
export default flow("chain", [a, b, c]);
"""

def test_steps_of_a_run_reuse_one_worker_but_start_from_fresh_module_state(work: Path) -> None:
    (work / "flow.ts").write_text(CHAIN)
    # Flow files import plain JavaScript modules (there is no TypeScript loader for imports).
    (work / "helper.js").write_text("let n = 0;\nexports.bump = function () { return ++n; };\n")
    r = cli("run", "flow.ts", "--json", "--max-workers", "1", cwd=work)
    assert r.returncode == 0, r.stderr
    rows = marks(work)
    assert [row[0] for row in rows] == ["a", "b", "c"]
    pids = {row[1] for row in rows}
    assert len(pids) == 1, f"one warm worker should run every step: {rows}"
    # The flow's top-level `calls` and the helper module's `n` start over in every step.
    assert all(row[2] == "1" and row[3] == "1" for row in rows), rows
    # The execution records name that worker.
    recorded = execution_pids(work)
    assert set(recorded) == {"a", "b", "c"} and set(map(str, recorded.values())) == pids
    # And the worker is gone once the run is over.
    pid = int(next(iter(pids)))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_timed_out_worker_is_replaced_and_the_retry_runs(work: Path) -> None:
    (work / "flow.ts").write_text("""import { flow, step } from "nbscale";
import * as fs from "fs";
import * as path from "path";

const first = step("first", {}, () => {
fs.appendFileSync(process.env.FLOW_COUNTER!, `first ${process.pid}\\n`);
const v = 1;
return { v };
});
const slow = step("slow", { inputs: { v: first.v }, timeout: "1s", retries: 1 }, async ({ v }) => {
fs.appendFileSync(process.env.FLOW_COUNTER!, `slow ${process.pid}\\n`);
const flag = path.join(__dirname, "hung-once");
if (!fs.existsSync(flag)) {
  fs.writeFileSync(flag, "");
  await new Promise((r) => setTimeout(r, 60000));
}
const w = v + 1;
return { w };
});
const after = step("after", { inputs: { w: slow.w } }, ({ w }) => {
fs.appendFileSync(process.env.FLOW_COUNTER!, `after ${process.pid}\\n`);
const u = w + 1;
return { u };
});
export default flow("hang", [first, slow, after]);
""")
    r = cli("run", "flow.ts", "--json", "--max-workers", "1", cwd=work)
    assert r.returncode == 0, r.stderr
    out = last_json(r)
    assert all(s["status"] == "succeeded" for s in out["steps"].values()), out
    rows = marks(work)
    assert [row[0] for row in rows] == ["first", "slow", "slow", "after"]
    # The hung attempt ran on the warm worker, which was killed; the retry got a new one.
    assert rows[0][1] == rows[1][1] and rows[2][1] != rows[1][1] and rows[3][1] == rows[2][1]
    with pytest.raises(ProcessLookupError):
        os.kill(int(rows[1][1]), 0)
    show = cli("show", out["run"], cwd=work)
    assert show.returncode == 0, show.stderr


def test_a_step_that_exits_its_worker_fails_alone(work: Path) -> None:
    (work / "flow.ts").write_text("""import { flow, step } from "nbscale";
const boom = step("boom", {}, () => {
process.exit(3);
return {};
});
const fine = step("fine", {}, () => {
const ok = 1;
return { ok };
});
export default flow("exit", [boom, fine]);
""")
    r = cli("run", "flow.ts", "--json", "--max-workers", "1", cwd=work)
    assert r.returncode != 0
    out = last_json(r)
    assert out["steps"]["boom"]["status"] == "failed" and out["steps"]["fine"]["status"] == "succeeded"
    assert re.search(r"step boom failed: step `boom`: its worker \(pid \d+\) exited with code 3 while the step ran", r.stderr), r.stderr


def cache_entries(work: Path) -> set[str]:
    d = work / "cache" / "flows"
    return {p.name for p in d.glob("*.json")} if d.exists() else set()


SMALL = """import { flow, step } from "nbscale";
const only = step("only", {}, () => {
console.log("value is", VALUE);
const v = VALUE;
return { v };
});
export default flow("small", [only]);
"""


def test_the_compile_cache_serves_unchanged_flows_and_recompiles_changed_ones(work: Path) -> None:
    (work / "flow.ts").write_text(SMALL.replace("VALUE", "1"))
    r = cli("run", "flow.ts", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    first = cache_entries(work)
    assert len(first) == 1
    r = cli("run", "flow.ts", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    assert cache_entries(work) == first
    # An edit makes a new entry, and the run uses the new code.
    (work / "flow.ts").write_text(SMALL.replace("VALUE", "2"))
    r = cli("run", "flow.ts", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    assert len(cache_entries(work) - first) == 1
    run = last_json(r)["run"]
    assert "value is 2" in cli("logs", f"{run}/only", cwd=work).stdout
    # A damaged entry is a miss, not an error.
    for name in cache_entries(work):
        (work / "cache" / "flows" / name).write_text("{not json")
    r = cli("run", "flow.ts", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "value is 2" in cli("logs", f"{last_json(r)['run']}/only", cwd=work).stdout


def test_a_syntax_error_is_reported_on_every_run_and_never_cached(work: Path) -> None:
    (work / "flow.ts").write_text(SMALL.replace("VALUE", "1").replace("const v = 1;", "const v = = 1;"))
    for _ in range(2):
        r = cli("run", "flow.ts", cwd=work)
        assert r.returncode == 1
        assert "flow.ts has syntax errors" in r.stderr and "flow.ts:4:" in r.stderr
        assert cache_entries(work) == set()
    # An unwritable cache directory costs the compile, not the run.
    (work / "cache").mkdir()
    (work / "cache" / "flows").write_text("a file where the cache's folder would go")
    (work / "flow.ts").write_text(SMALL.replace("VALUE", "3"))
    r = cli("run", "flow.ts", "--json", cwd=work)
    assert r.returncode == 0, r.stderr


def test_ctrl_c_stops_the_running_step_and_starts_no_other(work: Path) -> None:
    (work / "flow.ts").write_text("""import { flow, step } from "nbscale";
import * as fs from "fs";

const slow = step("slow", {}, async () => {
fs.appendFileSync(process.env.FLOW_COUNTER!, `slow ${process.pid}\\n`);
await new Promise((r) => setTimeout(r, 60000));
const v = 1;
return { v };
});
const other = step("other", {}, () => {
fs.appendFileSync(process.env.FLOW_COUNTER!, `other ${process.pid}\\n`);
const w = 2;
return { w };
});
export default flow("stop", [slow, other]);
""")
    p = subprocess.Popen(["node", CLI, "run", "flow.ts", "--max-workers", "1"], cwd=work, env=os.environ.copy(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (work / "counter.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (work / "counter.txt").exists(), "the slow step never started"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 1, (out, err)
    rows = marks(work)
    assert [row[0] for row in rows] == ["slow"], "no step starts after Ctrl-C"
    with pytest.raises(ProcessLookupError):
        os.kill(int(rows[0][1]), 0)
    assert "step slow failed: step `slow` was interrupted" in err, err
    assert "ran out of memory" not in err
