"""Tests of the kernelspec and its launcher (no kernel is started here)."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from jupyterlab_nbscale import kernel_launcher as kl

PACKAGE = Path(kl.__file__).resolve().parent


def make_exe(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def no_checkout(monkeypatch, tmp_path):
    monkeypatch.setattr(kl, "repo_kernel_js", lambda: tmp_path / "nope" / "nbscale.js")


def test_kernel_json_is_the_contract():
    spec = json.loads((PACKAGE / "kernelspec" / "kernel.json").read_text())
    assert spec["display_name"] == "TypeScript (nbscale)"
    assert spec["language"] == "typescript"
    assert spec["interrupt_mode"] == "message"
    assert spec["argv"] == [
        "python", "-m", "jupyterlab_nbscale.kernel_launcher", "-f", "{connection_file}",
    ]
    for logo in ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg"):
        assert (PACKAGE / "kernelspec" / logo).is_file()


def test_env_var_wins(tmp_path, monkeypatch):
    script = tmp_path / "k.js"
    script.write_text("")
    node = make_exe(tmp_path / "mynode")
    env = {"NBSCALE_KERNEL_JS": str(script), "NBSCALE_NODE": str(node), "PATH": ""}
    assert kl.kernel_command("c.json", env=env) == [
        str(node), str(script), "kernel", "--connection-file", "c.json",
    ]


def test_env_var_pointing_nowhere_is_an_error(tmp_path):
    env = {"NBSCALE_KERNEL_JS": str(tmp_path / "missing.js"), "PATH": ""}
    with pytest.raises(kl.LaunchError, match="does not exist"):
        kl.kernel_command("c.json", env=env)


def test_checkout_is_used(tmp_path, monkeypatch):
    script = tmp_path / "kernel" / "bin" / "nbscale.js"
    script.parent.mkdir(parents=True)
    script.write_text("")
    monkeypatch.setattr(kl, "repo_kernel_js", lambda: script)
    node = make_exe(tmp_path / "node")
    env = {"PATH": str(tmp_path)}
    with pytest.raises(kl.LaunchError, match="not built"):
        kl.kernel_command("c.json", env=env)
    main = tmp_path / "kernel" / "dist" / "src" / "cli" / "main.js"
    main.parent.mkdir(parents=True)
    main.write_text("")
    assert kl.kernel_command("c.json", env=env) == [
        str(node), str(script), "kernel", "--connection-file", "c.json",
    ]


def test_nbscale_on_path(tmp_path, no_checkout):
    exe = make_exe(tmp_path / "nbscale")
    cmd = kl.kernel_command("c.json", ["--extra"], env={"PATH": str(tmp_path)})
    assert cmd == [str(exe), "kernel", "--connection-file", "c.json", "--extra"]


def test_nothing_found_exits_2_with_a_hint(tmp_path, no_checkout, monkeypatch, capsys):
    monkeypatch.setattr(os, "environ", {"PATH": str(tmp_path)})
    assert kl.main(["-f", "c.json"]) == 2
    err = capsys.readouterr().err
    assert "npm install -g nbscale" in err
    assert "NBSCALE_KERNEL_JS" in err


def test_missing_node_is_named(tmp_path):
    script = tmp_path / "k.js"
    script.write_text("")
    with pytest.raises(kl.LaunchError, match="'node' was not found"):
        kl.kernel_command("c.json", env={"NBSCALE_KERNEL_JS": str(script), "PATH": ""})


def test_exec_replaces_the_process(tmp_path):
    """The launched pid is the kernel's pid: the launcher execs, not spawns."""
    script = tmp_path / "k.js"
    script.write_text("")
    fake_node = make_exe(tmp_path / "node", "#!/bin/sh\necho \"$$ $*\"\n")
    env = dict(os.environ, NBSCALE_KERNEL_JS=str(script), NBSCALE_NODE=str(fake_node))
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab_nbscale.kernel_launcher", "-f", "c.json"],
        env=env, stdout=subprocess.PIPE, text=True,
    )
    out, _ = proc.communicate(timeout=30)
    pid, args = out.strip().split(" ", 1)
    assert int(pid) == proc.pid
    assert args == f"{script} kernel --connection-file c.json"
