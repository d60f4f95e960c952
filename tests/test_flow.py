"""Issue 5 end to end: export a notebook to a flow, run it headlessly, resume
after a failure without redoing finished steps, reproduce the notebook's
artifacts by hash — through the real `nbscale` CLI (and, for %export and the
hash comparison, a real nbscale kernel)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import KERNEL_NAME, KernelSession

REPO = Path(__file__).resolve().parent.parent
CLI = str(REPO / "kernel" / "bin" / "nbscale.js")
SHA = re.compile(r"^[0-9a-f]{64}$")


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", CLI, *args], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=90)


def last_json(r: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_headless_and_latest_hashes(nb_path: Path, work: Path, timeout: int) -> dict[str, str]:
    """Executes the notebook under nbclient; the sha256 of each name's latest recorded version."""
    nb = nbformat.read(str(nb_path), as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name=KERNEL_NAME, resources={"metadata": {"path": str(work)}}).execute()
    recorded: dict[str, str] = {}
    for ex in last_json(cli("history", "--json", cwd=work))["executions"]:  # newest first
        for name, out in ex["outputs"].items():
            recorded.setdefault(name, out["sha256"])
    return recorded


@pytest.fixture()
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NBSCALE_DATASTORE", str(tmp_path / "store"))
    monkeypatch.setenv("FLOW_COUNTER", str(tmp_path / "counter.txt"))
    return tmp_path


def notebook(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "nbscale", "display_name": "TypeScript (nbscale)", "language": "typescript"}
    nb.cells = [nbformat.v4.new_markdown_cell(c[3:]) if c.startswith("md:") else nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))
    return path


# A flow with two independent branches joined at the end. Every executed step
# appends its name to $FLOW_COUNTER (the side effect that proves what ran);
# `report` fails while the file `broken` exists next to the flow.
FLOW = """import { flow, step } from "nbscale";
import * as fs from "fs";
import * as path from "path";

function mark(name: string): void {
  fs.appendFileSync(process.env.FLOW_COUNTER!, `${name} ${Date.now()}\\n`);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Waits up to FLOW_MEET_MS (default 0) for the other branch to start.
async function meet(other: string): Promise<void> {
  const until = Date.now() + Number(process.env.FLOW_MEET_MS ?? 0);
  while (Date.now() < until && !fs.readFileSync(process.env.FLOW_COUNTER!, "utf8").includes(`${other}-start `)) await sleep(10);
}

const load = step("load", {}, () => {
mark("load");
const data = [1, 2, 3, 4];
return { data };
});

const left = step("left", { inputs: { data: load.data } }, async ({ data }) => {
mark("left-start");
await meet("right");
const squares = data.map((x) => x * x);
mark("left-end");
return { squares };
});

const right = step("right", { inputs: { data: load.data } }, async ({ data }) => {
mark("right-start");
await meet("left");
const total = data.reduce((a, b) => a + b, 0);
mark("right-end");
return { total };
});

const report = step("report", { inputs: { squares: left.squares, total: right.total } }, ({ squares, total }) => {
mark("report");
console.log("reporting");
if (fs.existsSync(path.join(__dirname, "broken"))) throw new Error("report is broken");
const summary = `${squares.join(",")}|${total}`;
return { summary };
});

export default flow("branches", [load, left, right, report]);
"""


def counter(work: Path) -> list[str]:
    p = work / "counter.txt"
    return [line.split()[0] for line in p.read_text().splitlines()] if p.exists() else []


def order(work: Path) -> dict[str, int]:
    """Each mark's position in $FLOW_COUNTER: the order the steps wrote them in (appends from
    every process go to the end of the one file)."""
    return {name: i for i, name in enumerate(counter(work))}


def test_export_keeps_step_options_and_derives_a_dag(work: Path) -> None:
    nb = notebook(
        work / "analysis.ipynb",
        "md:# Analysis",
        'import * as os from "os";\nfunction double(x: number): number {\n  return 2 * x;\n}',
        "const raw = [1, 2, 3];",
        "const factor = 10;",
        "%%step train --on local --memory 512M --cpu 2 --retries 1 --timeout 5m --env MODE=fast\nconst model = raw.map(double).map((x) => x * factor);",
        "%%step side --memory 1G\nconst host = os.hostname().length > 0 ? raw.length : 0;",
        "const final = model.length + host;",
    )
    r = cli("export", str(nb), "-o", "analysis.flow.ts", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    out = last_json(r)
    assert out["path"] == str(work / "analysis.flow.ts")
    assert {s["name"]: s["needs"] for s in out["steps"]} == {
        "raw": [], "factor": [], "train": ["raw", "factor"], "side": ["raw"], "final": ["train", "side"],
    }
    assert out["shared"] == [2]
    src = (work / "analysis.flow.ts").read_text()
    assert 'step("train", { on: "local", memory: "512M", cpu: 2, retries: 1, timeout: "5m", env: { MODE: "fast" }, inputs: { raw: raw.raw, factor: factor.factor } }, ({ raw, factor }) => {' in src
    assert 'step("side", { memory: "1G", inputs: { raw: raw.raw } }, ({ raw }) => {' in src
    assert '\nimport * as os from "os";\n' in src
    # The cell code is in the step verbatim, and the flow runs.
    assert "\nconst model = raw.map(double).map((x) => x * factor);\nreturn { model };\n" in src
    run = cli("run", "analysis.flow.ts", "--json", cwd=work)
    assert run.returncode == 0, run.stderr
    assert last_json(run)["status"] == "succeeded"


def test_export_bad_input_names_the_cell(work: Path) -> None:
    empty = notebook(work / "empty.ipynb", "md:just text")
    r = cli("export", str(empty), cwd=work)
    assert r.returncode != 0 and "has no code cells" in r.stderr
    shared = notebook(work / "shared.ipynb", "const k = 2;\nfunction f(x: number) { return x * k; }", "const y = f(3);")
    r = cli("export", str(shared), cwd=work)
    assert r.returncode != 0 and "cell 2: uses `f`, which cell 1 declares" in r.stderr
    undefined_name = notebook(work / "undef.ipynb", "const y = notDefinedAnywhere + 1;")
    r = cli("export", str(undefined_name), cwd=work)
    assert r.returncode == 0 and "warning: cell 1: `notDefinedAnywhere` is not defined in this notebook" in r.stderr


def test_run_json_shape_and_independent_branches_run_concurrently(work: Path) -> None:
    (work / "flow.ts").write_text(FLOW)
    r = cli("run", "flow.ts", "--json", cwd=work, env={"FLOW_MEET_MS": "60000"})
    assert r.returncode == 0, r.stderr
    out = last_json(r)
    assert set(out) == {"run", "status", "steps"}
    assert out["status"] == "succeeded" and out["run"].startswith("run-")
    assert list(out["steps"]) == ["load", "left", "right", "report"]
    for step in out["steps"].values():
        assert set(step) == {"status", "executed", "artifacts"}
        assert step["status"] == "succeeded" and step["executed"] is True
        assert all(SHA.match(h) for h in step["artifacts"].values())
    assert set(out["steps"]["report"]["artifacts"]) == {"summary"}
    t = order(work)
    # The two branches overlapped: each started before the other ended. (Each waited for the
    # other to start, up to 60 s: with no overlap, the first would have ended alone.)
    assert t["left-start"] < t["right-end"] and t["right-start"] < t["left-end"], counter(work)
    # --max-workers 1: they don't. (Each waits 1 s for the other: a second one running
    # alongside would have started meanwhile.)
    (work / "counter.txt").unlink()
    r = cli("run", "flow.ts", "--max-workers", "1", cwd=work, env={"FLOW_MEET_MS": "1000"})
    assert r.returncode == 0, r.stderr
    t = order(work)
    assert t["left-end"] < t["right-start"] or t["right-end"] < t["left-start"], counter(work)
    # Plain progress lines when stdout is not a terminal.
    assert "started  left" in r.stdout and re.search(r"done     report in [0-9.]+s", r.stdout)
    # Same inputs, same code → same hashes.
    runs = last_json(cli("runs", "--json", cwd=work))["runs"]
    assert len(runs) == 2 and runs[0]["steps"]["report"]["artifacts"] == runs[1]["steps"]["report"]["artifacts"]


def test_failure_then_resume_reruns_only_the_failed_step(work: Path) -> None:
    (work / "flow.ts").write_text(FLOW)
    (work / "broken").write_text("")
    r = cli("run", "flow.ts", "--json", cwd=work)
    assert r.returncode != 0
    out = last_json(r)
    run_id = out["run"]
    assert out["status"] == "failed" and out["steps"]["report"]["status"] == "failed"
    assert f"step report failed: Error: report is broken" in r.stderr
    assert f"nbscale logs {run_id}/report" in r.stderr
    logs = cli("logs", f"{run_id}/report", cwd=work)
    assert logs.returncode == 0 and "reporting" in logs.stdout and "report is broken" in logs.stdout
    assert counter(work).count("load") == 1

    (work / "broken").unlink()
    r = cli("resume", run_id, "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    out = last_json(r)
    assert out["status"] == "succeeded" and out["run"] != run_id
    assert {k: v["executed"] for k, v in out["steps"].items()} == {"load": False, "left": False, "right": False, "report": True}
    assert all(v["status"] == "succeeded" for v in out["steps"].values())
    ran = counter(work)
    assert ran.count("load") == 1 and ran.count("left-start") == 1 and ran.count("right-start") == 1 and ran.count("report") == 2
    # Reused steps keep their artifacts.
    assert out["steps"]["load"]["artifacts"]["data"] and SHA.match(out["steps"]["load"]["artifacts"]["data"])
    show = cli("show", out["run"], cwd=work)
    assert f"reused from {run_id}" in show.stdout


def test_an_edited_upstream_step_is_detected_and_rerun(work: Path) -> None:
    (work / "flow.ts").write_text(FLOW)
    (work / "broken").write_text("")
    first = last_json(cli("run", "flow.ts", "--json", cwd=work))
    (work / "broken").unlink()
    (work / "flow.ts").write_text(FLOW.replace("data.map((x) => x * x)", "data.map((x) => x * x * 10)"))
    r = cli("resume", first["run"], "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    out = last_json(r)
    assert {k: v["executed"] for k, v in out["steps"].items()} == {"load": False, "left": True, "right": False, "report": True}
    assert out["steps"]["left"]["artifacts"]["squares"] != first["steps"]["left"]["artifacts"]["squares"]
    # --from re-runs a step of a succeeded run and what is downstream of it.
    r = cli("resume", out["run"], "--from", "right", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    assert {k: v["executed"] for k, v in last_json(r)["steps"].items()} == {"load": False, "left": False, "right": True, "report": True}


def test_resume_bad_input_lists_the_choices(work: Path) -> None:
    (work / "flow.ts").write_text(FLOW)
    ok = last_json(cli("run", "flow.ts", "--json", cwd=work))
    r = cli("resume", "run-20990101T000000-abcdef", cwd=work)
    assert r.returncode != 0 and "no run run-20990101T000000-abcdef" in r.stderr and ok["run"] in r.stderr
    r = cli("resume", ok["run"], cwd=work)
    assert r.returncode != 0 and "succeeded; there is nothing to resume" in r.stderr and "load, left, right, report" in r.stderr
    r = cli("resume", ok["run"], "--from", "nope", cwd=work)
    assert r.returncode != 0 and "has no step nope; its steps: load, left, right, report" in r.stderr


def test_out_of_memory_names_the_step_and_the_memory_to_ask_for(work: Path) -> None:
    (work / "oom.ts").write_text("""import { flow, step } from "nbscale";
const hog = step("hog", { memory: "64M" }, () => {
const keep: number[][] = [];
for (let i = 0; i < 1e6; i++) keep.push(new Array(100000).fill(i));
return { n: keep.length };
});
export default flow("oom", [hog]);
""")
    r = cli("run", "oom.ts", cwd=work)
    assert r.returncode != 0
    # The same words as a cell's step that runs out (backends/step-failure.ts), and the same advice, as a flow setting.
    assert re.search(r"step hog failed: step `hog` ran out of memory: it used about \d+ MiB of the 64 MiB it asked for", r.stderr), r.stderr
    assert re.search(r'memory: give it more memory: memory: "\d+[MG]" in step\("hog"', r.stderr) and "nbscale logs run-" in r.stderr, r.stderr


def test_flow_reproduces_the_notebooks_artifacts_by_hash(work: Path) -> None:
    """The notebook runs headlessly under nbclient on the real kernel (which
    records every execution), then its exported flow runs; both hash their
    artifacts with the same serializer."""
    nb_path = notebook(
        work / "repro.ipynb",
        "function mean(xs: number[]): number {\n  return xs.reduce((a, b) => a + b, 0) / xs.length;\n}",
        "const data = Array.from({ length: 1000 }, (_, i) => Math.sin(i));\nconst weights = new Float64Array(100000).map((_, i) => i / 7);",
        "const scale = 2.5;",
        "const scaled = data.map((x) => x * scale);\nconst m = mean(scaled);\nconst cfg = { m, n: scaled.length, tags: new Map([[\"a\", 1]]) };",
        "const total = weights.reduce((a, b) => a + b, 0);\nfunction helper(x: number) { return x + 1; }",
        "const summary = `m=${m.toFixed(6)} total=${total}`;\nsummary",
    )
    recorded = run_headless_and_latest_hashes(nb_path, work, timeout=60)
    assert cli("export", str(nb_path), cwd=work).returncode == 0
    r = cli("run", "repro.flow.ts", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    run = last_json(r)
    produced = {name: sha for step in run["steps"].values() for name, sha in step["artifacts"].items()}
    assert set(produced) == {"data", "weights", "scale", "scaled", "m", "cfg", "total", "helper", "summary"}
    assert produced == {name: recorded[name] for name in produced}
    cmp = last_json(cli("show", run["run"], "--compare", "repro.ipynb", "--json", cwd=work))
    assert cmp["matched"] == 9 and cmp["differ"] == 0
    assert cmp["only_in_notebook"] == ["mean"]


def test_export_magic_writes_next_to_the_notebook(work: Path) -> None:
    nb_path = notebook(work / "magic.ipynb", "const a = 1;", "const b = a + 1;")
    k = KernelSession.__new__(KernelSession)
    from jupyter_client.manager import start_new_kernel
    k.km, k.kc = start_new_kernel(kernel_name=KERNEL_NAME, cwd=str(work), env={**os.environ, "NBSCALE_NOTEBOOK": str(nb_path)})
    try:
        reply, msgs = k.run("%export")
        assert reply["content"]["status"] == "ok", reply["content"]
        assert str(work / "magic.flow.ts") in k.stdout(msgs)
        assert (work / "magic.flow.ts").exists()
        reply, msgs = k.run("%export flows/other.ts")
        assert reply["content"]["status"] == "error"  # the folder doesn't exist: a clear error, not a crash
        (work / "flows").mkdir()
        reply, msgs = k.run("%export flows/other.ts")
        assert reply["content"]["status"] == "ok" and (work / "flows" / "other.ts").exists()
    finally:
        k.close()


def test_a_foreach_step_stays_a_foreach_in_the_flow_and_matches_the_notebook(work: Path) -> None:
    """`--foreach` cells export as foreach steps; the run gathers the items in
    order and its artifacts hash like the notebook's own execution."""
    nb_path = notebook(
        work / "fan.ipynb",
        "const configs = [1, 2, 3, 4];",
        "%%step fit --foreach configs --parallel 2\nconst score = item * 10 + index;",
        "const total = score.reduce((a, b) => a + b, 0);",
    )
    recorded = run_headless_and_latest_hashes(nb_path, work, timeout=120)
    assert cli("export", str(nb_path), cwd=work).returncode == 0
    flow_text = (work / "fan.flow.ts").read_text()
    assert re.search(r'step\("fit", \{[^\n]*foreach:', flow_text), flow_text
    r = cli("run", "fan.flow.ts", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    run = last_json(r)
    assert run["status"] == "succeeded"
    total = last_json(cli("artifact", "get", "total", "--json", cwd=work))
    assert total["value"] == 10 + 21 + 32 + 43
    assert run["steps"]["fit"]["artifacts"]["score"] == recorded["score"]
    assert run["steps"]["total"]["artifacts"]["total"] == recorded["total"]
