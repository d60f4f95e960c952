"""The README's main-job command starts JupyterLab with the extension and the
nbscale kernel on the example notebook."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from moto_server import free_port

ROOT = Path(__file__).resolve().parents[1]


def get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_start_command_serves_the_quickstart_on_the_nbscale_kernel() -> None:
    port = free_port()
    proc = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "start.sh"), "--no-browser", f"--port={port}", "--IdentityProvider.token="],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "BROWSER": "true"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        specs = None
        while time.monotonic() < deadline:
            try:
                specs = get(f"{base}/api/kernelspecs")
                break
            except OSError:
                time.sleep(0.5)
        assert specs is not None, "JupyterLab did not start within 120 s"
        assert "nbscale" in specs["kernelspecs"]  # type: ignore[index]
        assert specs["kernelspecs"]["nbscale"]["spec"]["display_name"] == "TypeScript (nbscale)"  # type: ignore[index]
        nb = get(f"{base}/api/contents/quickstart.ipynb")
        assert nb["content"]["metadata"]["kernelspec"]["name"] == "nbscale"  # type: ignore[index]
        exts = get(f"{base}/lab/api/extensions")
        names = [e["name"] for e in exts] if isinstance(exts, list) else [e["name"] for e in exts.get("extensions", [])]  # type: ignore[union-attr]
        assert "jupyterlab-nbscale" in names
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
