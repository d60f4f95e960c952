"""Headless clients (nbclient via nbconvert) run notebooks on the nbscale kernel."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)  # nbconvert is allowed 300 s
def test_nbconvert_executes_the_quickstart(tmp_path: Path) -> None:
    nb = tmp_path / "quickstart.ipynb"
    shutil.copy(ROOT / "examples" / "quickstart.ipynb", nb)
    jupyter = Path(sys.executable).with_name("jupyter")
    subprocess.run(
        [str(jupyter), "nbconvert", "--to", "notebook", "--execute", "--inplace", "--ExecutePreprocessor.timeout=120", str(nb)],
        check=True,
        cwd=tmp_path,
        timeout=300,
    )
    cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in cells)
    errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, errors
    first = cells[0]["outputs"][0]
    text = first["data"]["text/plain"]
    assert first["output_type"] == "execute_result" and "".join(text) == "42"
    kinds = {k for c in cells for o in c["outputs"] for k in o.get("data", {})}
    assert {"text/html", "image/svg+xml", "text/markdown"} <= kinds
