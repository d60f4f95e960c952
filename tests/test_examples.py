"""The notebooks a new user opens first (examples/, what scripts/start.sh
shows) run top to bottom on the real kernel without an error, headlessly
under nbclient as in JupyterLab; the flow demo's `%export` writes a flow that
`nbscale run` runs and that reproduces the notebook's artifacts by hash."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from test_flow import cli, last_json, run_headless_and_latest_hashes

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture()
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The default datastore: .nbscale/ next to the notebook, as a user gets it.
    monkeypatch.delenv("NBSCALE_DATASTORE", raising=False)
    return tmp_path


def outputs_of(nb: Any) -> list[dict[str, Any]]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def test_the_quickstart_runs_top_to_bottom_with_its_outputs(work: Path) -> None:
    path = work / "quickstart.ipynb"
    shutil.copy(EXAMPLES / "quickstart.ipynb", path)
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="nbscale", resources={"metadata": {"path": str(work)}}).execute()
    outs = outputs_of(nb)
    assert not [o for o in outs if o.output_type == "error"], [o for o in outs if o.output_type == "error"]
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "") for o in outs)
    assert "42" in text, "scale(4.2) with base 10"
    assert "'deeper'" in text, "the best run"
    assert "computed in worker process" in text, "the %%step cell ran in a worker"
    assert "23.20" in text, "total came back from the worker as a number"
    assert any("text/html" in o.get("data", {}) for o in outs) and any("image/svg+xml" in o.get("data", {}) for o in outs)
    # %history listed the notebook's executions, which the CLI sees in the default datastore.
    history = last_json(cli("history", "--json", cwd=work))["executions"]
    assert len(history) >= 8 and any(e["target"] == "local" for e in history)
    assert cli("fsck", cwd=work).returncode == 0


def test_the_flow_demo_exports_a_flow_that_runs_and_reproduces_it(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = work / "flow-demo.ipynb"
    shutil.copy(EXAMPLES / "flow-demo.ipynb", path)
    # nbclient doesn't tell the kernel which file it runs (JupyterLab does); NBSCALE_NOTEBOOK is the documented way.
    monkeypatch.setenv("NBSCALE_NOTEBOOK", str(path))
    recorded = run_headless_and_latest_hashes(path, work, timeout=120)
    flow = work / "flow-demo.flow.ts"
    assert flow.exists(), "the notebook's last cell, %export, wrote the flow next to it"
    r = cli("run", flow.name, "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    out = last_json(r)
    assert out["status"] == "succeeded" and all(s["executed"] for s in out["steps"].values())
    produced = {name: sha for step in out["steps"].values() for name, sha in step["artifacts"].items()}
    assert {"summary", "high", "report"} <= set(produced), produced
    assert produced == {name: recorded[name] for name in produced}
    # Resuming from the last step re-runs it alone; the steps before it are reused, not re-run.
    again = last_json(cli("resume", out["run"], "--from", "report", "--json", cwd=work))
    assert again["status"] == "succeeded", again
    assert [n for n, s in again["steps"].items() if s["executed"]] == ["report"], again["steps"]
    assert again["steps"]["report"]["artifacts"] == out["steps"]["report"]["artifacts"]
