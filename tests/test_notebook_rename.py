"""A notebook renamed or moved in JupyterLab keeps its history.

The JupyterLab extension tells the kernel the notebook's current path over
the `nbscale.notebook` comm (src/session/...); here the same comm is driven
from jupyter_client, as the extension does, against the real kernel.
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from conftest import KernelSession, ok, value
from test_history import cli_json

ROOT = Path(__file__).resolve().parent.parent


def text(msgs: list[dict[str, Any]]) -> str:
    """Everything the cell showed as text: streams and the text/plain of results."""
    out = []
    for m in msgs:
        if m["msg_type"] == "stream":
            out.append(m["content"]["text"])
        elif m["msg_type"] in ("execute_result", "display_data"):
            out.append(m["content"]["data"].get("text/plain", ""))
    return "\n".join(out)


def comm(k: KernelSession, path: Any, comm_id: str | None = None) -> dict[str, Any]:
    """Opens (or messages) the nbscale.notebook comm with a path; returns the kernel's answer."""
    cid = comm_id or str(uuid.uuid4())
    if comm_id is None:
        msg = k.kc.session.msg("comm_open", {"comm_id": cid, "target_name": "nbscale.notebook", "data": {"path": path}})
    else:
        msg = k.kc.session.msg("comm_msg", {"comm_id": cid, "data": {"path": path}})
    k.kc.shell_channel.send(msg)
    for m in k.collect(msg["header"]["msg_id"]):
        if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == cid:
            return {**m["content"]["data"], "comm_id": cid}
    raise AssertionError("the kernel did not answer on the nbscale.notebook comm")


def test_history_and_versions_follow_a_renamed_notebook(tmp_path: Path) -> None:
    root = tmp_path
    nbdir = root / "proj"
    nbdir.mkdir()
    env = {"JPY_SESSION_NAME": "proj/analysis.ipynb"}
    k = KernelSession(cwd=str(nbdir), env=env)
    try:
        ok(k, "let model = [1, 2, 3]")
        answer = comm(k, "proj/final.ipynb")
        assert answer.get("path") == str(nbdir / "final.ipynb"), answer
        ok(k, "model.length")  # read only: no new version under the new name either
        ok(k, "let score = 0.9")
        table = text(ok(k, "%history"))
        assert "final.ipynb" in table and "analysis.ipynb" not in table, table
        assert table.count("\n") >= 3  # header + the 3 executions (both names)
        # Moved to another folder of the server, by the same comm.
        answer = comm(k, "archive/final.ipynb", answer["comm_id"])
        assert answer.get("path") == str(root / "archive" / "final.ipynb"), answer
        ok(k, "model.push(4)")
        assert value(k, "model.length") == "4"
        # Hostile paths are refused, and the name stays.
        bad = comm(k, "../../etc/passwd")
        assert "relative to the Jupyter server root" in bad.get("error", ""), bad
    finally:
        k.close()

    execs = cli_json("history", cwd=nbdir)["executions"]
    versions = sorted({e["outputs"]["model"]["version"] for e in execs if "model" in e["outputs"]})
    assert versions == [1, 2], "unchanged after the rename, a new version only after push(4)"

    # A kernel started later under the new name sees the whole history, names included.
    (root / "archive").mkdir(exist_ok=True)
    k2 = KernelSession(cwd=str(root / "archive"), env={"JPY_SESSION_NAME": "archive/final.ipynb", "NBSCALE_DATASTORE": str(nbdir / ".nbscale")})
    try:
        out = text(ok(k2, "%history model"))
        assert "model@1" in out and "model@2" in out, out
        restored = text(ok(k2, "%restore model"))
        assert "@2" in restored, restored
        assert value(k2, "model.length") == "4"
        table = text(ok(k2, "%history"))
        assert len([l for l in table.splitlines() if "kernel" in l]) >= 4, table
    finally:
        k2.close()

    # The CLI's --notebook filter follows the renames too.
    by_new_name = cli_json("history", "--notebook", str(root / "archive" / "final.ipynb"), cwd=nbdir)["executions"]
    assert len(by_new_name) == len(cli_json("history", cwd=nbdir)["executions"]) >= 5
    assert cli_json("history", "--notebook", str(nbdir / "nothing.ipynb"), cwd=nbdir)["executions"] == []
