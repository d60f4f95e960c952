"""One step runtime (issue 16): the same step body, failing or succeeding, run as a
`%%step` cell in the real kernel and as a step of `nbscale run`, on local workers
and on the real single-node Slurm (scripts/slurm.sh), ends the same way: the same
failure name, the same message (a cell adds its fix in `%%step` terms, a flow in
its own), the same number of attempts by the same retry policy.

Each body appends a line to a marks file per attempt: the side effect that proves
how often it ran, whichever surface ran it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import ANSI, KernelSession, stderr
from test_flow_remote import cli, last_json

# A body per case, written once: `MARKS` is replaced by the marks file's path.
# Memory-hungry bodies keep their data in a function, so nothing big is declared
# (a cell step would ship its declared names back).
CASES: dict[str, dict[str, Any]] = {
    "exception": {
        "options": {"retries": 2},
        "body": 'mark(MARKS);\nif (Date.now() > 0) throw new RangeError("bad input 7");\nconst out = 1;',
        "name": "RangeError",
        "attempts": 1,
    },
    "oom": {
        "options": {"memory": "256M"},
        "body": "mark(MARKS);\nconst out = (() => { const keep: number[][] = []; for (let i = 0; i < 1e6; i++) keep.push(new Array(100000).fill(i + 0.5)); return keep.length; })();",
        "name": "StepOutOfMemory",
        "attempts": 1,
    },
    "oom-retried-with-more-memory": {
        # 320 MB of numbers: over the heap of a 256M request, well inside that of the 512M+ the failure suggests.
        "options": {"memory": "256M", "retries": 1},
        "body": "mark(MARKS);\nconst out = (() => { const keep: number[][] = []; for (let i = 0; i < 40; i++) keep.push(new Array(1e6).fill(i + 0.5)); return keep.length; })();",
        "name": None,
        "attempts": 2,
        "notice": r"retrying with --memory \d+[MG]",
    },
    "timeout": {
        "options": {"timeout": "2s"},
        "body": "mark(MARKS);\nawait new Promise((r) => setTimeout(r, 600_000));\nconst out = 1;",
        "name": "StepTimeout",
        "attempts": 1,
    },
    "worker-killed": {
        "options": {},
        "body": 'mark(MARKS);\nprocess.kill(process.pid, "SIGKILL");\nawait new Promise((r) => setTimeout(r, 600_000));\nconst out = 1;',
        "name": "WorkerDied",
        "attempts": 1,
    },
    "killed-then-retried": {
        "options": {"retries": 2},
        "body": 'if (mark(MARKS) === 1) process.kill(process.pid, "SIGKILL");\nawait new Promise((r) => setTimeout(r, 200));\nconst out = 2;',
        "name": None,
        "attempts": 2,
        "notice": r"attempt 1 of 3 failed \(.*\); retrying",
    },
}

# `mark` counts the attempts: the marks file's lines, after this one is added.
HELPER = (
    'import * as fs from "fs";\n'
    "function mark(file: string): number {\n"
    '  fs.appendFileSync(file, "x\\n");\n'
    '  return fs.readFileSync(file, "utf8").split("\\n").filter(Boolean).length;\n'
    "}"
)

TARGETS = ["local", pytest.param("slurm", marks=pytest.mark.slurm)]


def flags(options: dict[str, Any]) -> str:
    return " ".join(f"--{k} {v}" for k, v in options.items())


def settings(options: dict[str, Any], on: str) -> str:
    parts = [f'on: "{on}"'] + [f"{k}: {json.dumps(v)}" for k, v in options.items()]
    return "{ " + ", ".join(parts) + " }"


def normalized(text: str) -> str:
    """The message with what differs from run to run (pids, job ids, MiB seen, sizes) made equal."""
    return re.sub(r"\d+(\.\d+)?", "N", ANSI.sub("", text))


CELL_FIX = re.compile(r"; (re-run with `--memory [^`]+`|run the cell again|give it more time with --timeout.*)$")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelSession]:
    session = KernelSession(cwd=str(tmp_path_factory.mktemp("parity-kernel")))
    reply, _ = session.run(HELPER, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    yield session
    session.close()


def run_cell(k: KernelSession, name: str, on: str, case: dict[str, Any], marks: Path) -> dict[str, Any]:
    code = f"%%step {name} --on {on} {flags(case['options'])}\n{case['body'].replace('MARKS', json.dumps(str(marks)))}"
    reply, msgs = k.run(code, timeout=240)
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    return {"status": reply["content"]["status"], "error": errors[0] if errors else None, "stderr": stderr(msgs)}


def run_flow(work: Path, name: str, on: str, case: dict[str, Any], marks: Path) -> dict[str, Any]:
    body = case["body"].replace("MARKS", json.dumps(str(marks)))
    (work / "flow.ts").write_text(
        f'import {{ flow, step }} from "nbscale";\n{HELPER}\n'
        f"const s = step({json.dumps(name)}, {settings(case['options'], on)}, async () => {{\n{body}\nreturn {{ out }};\n}});\n"
        f'export default flow("parity", [s]);\n'
    )
    r = cli("run", "flow.ts", "--json", cwd=work, timeout=240)
    out = last_json(r)
    show = cli("show", out["run"], "--json", cwd=work)
    assert show.returncode == 0, show.stderr
    rec = last_json(show)["steps"][name]
    logs = cli("logs", f"{out['run']}/{name}", cwd=work)
    return {"status": out["status"], "record": rec, "stderr": r.stderr, "log": logs.stdout}


def attempts_made(marks: Path) -> int:
    return len(marks.read_text().split()) if marks.exists() else 0


@pytest.mark.parametrize("on", TARGETS)
@pytest.mark.parametrize("case_name", list(CASES))
def test_a_step_ends_the_same_as_a_cell_and_as_a_flow_step(kernel: KernelSession, tmp_path: Path, case_name: str, on: str) -> None:
    case = CASES[case_name]
    name = f"p_{case_name.replace('-', '_')}"
    cell_marks, flow_marks = tmp_path / "cell-marks", tmp_path / "flow-marks"
    cell = run_cell(kernel, name, on, case, cell_marks)
    work = tmp_path / "flow"
    work.mkdir()
    flow = run_flow(work, name, on, case, flow_marks)

    # The same number of attempts, by the same policy.
    assert attempts_made(cell_marks) == case["attempts"], (cell, attempts_made(cell_marks))
    assert attempts_made(flow_marks) == case["attempts"], (flow, attempts_made(flow_marks))
    assert flow["record"]["attempts"] == case["attempts"], flow["record"]

    if case["name"] is None:
        assert cell["status"] == "ok", cell
        assert flow["status"] == "succeeded" and flow["record"]["status"] == "succeeded", flow
        assert re.search(case["notice"], cell["stderr"]), cell["stderr"]
        assert re.search(case["notice"], flow["log"]), flow["log"]
        return

    assert cell["status"] == "error" and flow["status"] == "failed", (cell, flow)
    error = flow["record"]["error"]
    assert cell["error"]["ename"] == case["name"] and error["name"] == case["name"], (cell["error"], error)
    if case_name == "exception":
        # A thrown error is the step's own: its name and message, on both surfaces.
        assert cell["error"]["evalue"] == "bad input 7" and error["message"].startswith("RangeError: bad input 7"), (cell["error"], error)
        return
    # The same sentence; each surface then says the fix in its own terms.
    core = CELL_FIX.sub("", cell["error"]["evalue"])
    assert normalized(error["message"]).startswith(normalized(core)), (core, error["message"])
    assert "the kernel and its variables" not in error["message"] and "re-run with" not in error["message"], error
    if case_name == "oom":
        cell_size = re.search(r"--memory (\d+[MG])", cell["error"]["evalue"])
        assert cell_size and f'memory: "' in error["advice"], (cell["error"], error)


@pytest.mark.parametrize("on", TARGETS)
def test_a_foreach_with_one_failing_item_fails_the_same_way_in_a_cell_and_a_flow(kernel: KernelSession, tmp_path: Path, on: str) -> None:
    marks = {"cell": tmp_path / "cell-marks", "flow": tmp_path / "flow-marks"}
    body = 'mark(MARKS);\nif (item === 2) throw new RangeError(`item ${item} is bad`);\nconst sq = item * item;'
    reply, msgs = kernel.run(f"%%step p_each --on {on} --foreach [1,2,3] --retries 1\n{body.replace('MARKS', json.dumps(str(marks['cell'])))}", timeout=240)
    assert reply["content"]["status"] == "error", reply["content"]
    cell = next(m["content"] for m in msgs if m["msg_type"] == "error")
    work = tmp_path / "flow"
    work.mkdir()
    (work / "flow.ts").write_text(
        f'import {{ flow, step }} from "nbscale";\n{HELPER}\n'
        f'const s = step("p_each", {{ on: "{on}", retries: 1, foreach: () => [1, 2, 3] }}, async ({{ item }}) => {{\n'
        f"{body.replace('MARKS', json.dumps(str(marks['flow'])))}\nreturn {{ sq }};\n}});\n"
        'export default flow("parity", [s]);\n'
    )
    r = cli("run", "flow.ts", "--json", cwd=work, timeout=240)
    run = last_json(r)["run"]
    error = last_json(cli("show", run, "--json", cwd=work))["steps"]["p_each"]["error"]
    assert marks["cell"].exists(), cell
    # Every item ran once: an exception is not retried, and the failing item does not re-run the others.
    assert len(marks["cell"].read_text().split()) == 3 and len(marks["flow"].read_text().split()) == 3
    assert cell["ename"] == error["name"] == "ForeachItemsFailed", (cell, error)
    for text in (cell["evalue"], error["message"]):
        assert re.search(r"1 of 3 items of step `p_each`.* failed: index 1", text), text
    assert "item 1:" in ANSI.sub("", "\n".join(cell["traceback"])) and "item 2 is bad" in "\n".join(cell["traceback"])
    assert "item 1: RangeError: item 2 is bad" in error["message"], error
