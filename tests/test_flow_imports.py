"""`nbscale resume` and the local modules a flow imports: a step's code hash
covers the files of the flow's folder its code runs (transitively), so an
edit to `./lib` re-runs the steps that use it, and only those; unchanged
modules let every finished step be reused — through the real CLI."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CLI = str(REPO / "kernel" / "bin" / "nbscale.js")
ABORT_TEXT = ("terminate called", "Napi::Error")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", CLI, *args], cwd=cwd, env=os.environ.copy(), capture_output=True, text=True, timeout=90)


def last_json(r: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(r.stdout.strip().splitlines()[-1])


# `left` uses ./lib (which uses ./util, which reads ./config.json); `right`
# fails while the file `broken` exists, so the run can be resumed; `load`
# and `right` use no local module.
FLOW = """import { flow, step } from "nbscale";
import * as fs from "fs";
import * as path from "path";
import { scale } from "./lib";

function mark(name: string): void {
  fs.appendFileSync(path.join(__dirname, "ran.txt"), `${name}\\n`);
}

const load = step("load", {}, () => {
mark("load");
const data = [1, 2, 3];
return { data };
});

const left = step("left", { inputs: { data: load.data } }, ({ data }) => {
mark("left");
const scaled = data.map(scale);
return { scaled };
});

const right = step("right", { inputs: { data: load.data } }, ({ data }) => {
mark("right");
if (fs.existsSync(path.join(__dirname, "broken"))) throw new Error("right is broken");
const total = data.length;
return { total };
});

export default flow("imports", [load, left, right]);
"""

LIB = 'const { factor } = require("./util");\nexports.scale = (x) => x * factor();\n'
UTIL = 'const config = require("./config.json");\nexports.factor = () => config.factor;\n'


@pytest.fixture()
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NBSCALE_DATASTORE", str(tmp_path / "store"))
    monkeypatch.setenv("NBSCALE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "flow.ts").write_text(FLOW)
    (tmp_path / "lib.js").write_text(LIB)
    (tmp_path / "util.js").write_text(UTIL)
    (tmp_path / "config.json").write_text('{"factor": 2}')
    return tmp_path


def ran(work: Path) -> list[str]:
    p = work / "ran.txt"
    lines = p.read_text().split() if p.exists() else []
    p.unlink(missing_ok=True)
    return lines


def failed_run(work: Path) -> dict[str, Any]:
    (work / "broken").write_text("")
    r = cli("run", "flow.ts", "--json", cwd=work)
    assert r.returncode != 0 and not any(t in r.stderr for t in ABORT_TEXT), r.stderr
    out = last_json(r)
    assert out["steps"]["left"]["status"] == "succeeded" and out["steps"]["right"]["status"] == "failed", out
    assert sorted(ran(work)) == ["left", "load", "right"]
    (work / "broken").unlink()
    return out


def resume(work: Path, run_id: str) -> dict[str, Any]:
    r = cli("resume", run_id, "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    assert not any(t in r.stderr for t in ABORT_TEXT), r.stderr
    out = last_json(r)
    assert out["status"] == "succeeded"
    return out


def executed(out: dict[str, Any]) -> dict[str, bool]:
    return {k: v["executed"] for k, v in out["steps"].items()}


def test_unchanged_local_modules_let_finished_steps_be_reused(work: Path) -> None:
    first = failed_run(work)
    out = resume(work, first["run"])
    assert executed(out) == {"load": False, "left": False, "right": True}
    assert ran(work) == ["right"]
    assert out["steps"]["left"]["artifacts"] == first["steps"]["left"]["artifacts"]


def test_an_edit_to_an_imported_module_reruns_the_steps_that_use_it(work: Path) -> None:
    first = failed_run(work)
    (work / "lib.js").write_text(LIB.replace("x * factor()", "x * factor() * 10"))
    out = resume(work, first["run"])
    assert executed(out) == {"load": False, "left": True, "right": True}
    assert sorted(ran(work)) == ["left", "right"]
    assert out["steps"]["left"]["artifacts"]["scaled"] != first["steps"]["left"]["artifacts"]["scaled"]
    show = cli("artifact", "get", "scaled", "--json", cwd=work)
    assert show.returncode == 0 and last_json(show)["value"] == [20, 40, 60], show.stdout + show.stderr


@pytest.mark.parametrize("edit", ["util.js", "config.json"])
def test_an_edit_to_a_module_imported_through_another_reruns_the_step(work: Path, edit: str) -> None:
    first = failed_run(work)
    if edit == "util.js":
        (work / "util.js").write_text(UTIL.replace("config.factor", "config.factor + 1"))
    else:
        (work / "config.json").write_text('{"factor": 5}')
    out = resume(work, first["run"])
    assert executed(out) == {"load": False, "left": True, "right": True}
    assert sorted(ran(work)) == ["left", "right"]


def test_a_module_no_step_imports_changes_nothing(work: Path) -> None:
    first = failed_run(work)
    (work / "unrelated.js").write_text("exports.x = 1;\n")
    (work / "notes.json").write_text('{"a": 1}')
    out = resume(work, first["run"])
    assert executed(out) == {"load": False, "left": False, "right": True}
