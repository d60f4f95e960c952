"""The setup command stops with a message naming what to install when a prerequisite is missing."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_setup_with_path(tmp_path: Path, tools: list[str]) -> subprocess.CompletedProcess[str]:
    """Runs scripts/setup.sh with a PATH holding only the named tools."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ["dirname", "mkdir", "cat", "sha256sum", "cut", "id", *tools]:
        found = shutil.which(tool)
        assert found, tool
        (bindir / tool).symlink_to(found)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)}
    env["PATH"] = str(bindir)
    return subprocess.run(["/bin/bash", str(ROOT / "scripts" / "setup.sh")], env=env, capture_output=True, text=True, timeout=60)


def test_missing_node_is_named(tmp_path: Path) -> None:
    r = run_setup_with_path(tmp_path, [])
    assert r.returncode != 0
    assert "Node.js 20 or newer is required" in r.stderr


def test_missing_python_is_named(tmp_path: Path) -> None:
    r = run_setup_with_path(tmp_path, ["node", "npm"])
    assert r.returncode != 0
    assert "Python 3.10 or newer is required" in r.stderr, r.stderr


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    r = subprocess.run(["/bin/bash", str(ROOT / "scripts" / "setup.sh"), "--tset"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown option --tset" in r.stderr
