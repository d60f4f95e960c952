"""Faults and hostile input against the real kernel, CLI and store (issue 11)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import KernelSession

ROOT = Path(__file__).resolve().parents[1]
NBSCALE = ["node", str(ROOT / "kernel" / "bin" / "nbscale.js")]


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NBSCALE, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120)


def result_text(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"]


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs: a datastore that fills up."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_names_the_datastore_and_loses_nothing(small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = small_disk / "store"
    monkeypatch.setenv("NBSCALE_DATASTORE", str(store))
    nb = tmp_path / "nb"
    nb.mkdir()
    k = KernelSession(cwd=str(nb))
    try:
        assert k.run("const kept = { answer: 42 };")[0]["content"]["status"] == "ok"
        # 32 MiB cannot fit on a 24 MiB disk.
        reply, msgs = k.run("const big = new Float64Array(4 * 1024 * 1024).fill(1.5); big.length")
        assert reply["content"]["status"] == "ok", "a storage failure never fails the user's cell"
        stderr = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
        assert str(store) in stderr and ("ENOSPC" in stderr or "no space" in stderr.lower()), stderr
        # The in-memory result stays in the session.
        assert result_text(k.run("big[123] + kept.answer")[1]) == ["43.5"]
    finally:
        k.close()
    # Nothing already recorded is damaged, and no half-written execution is visible.
    got = cli("artifact", "get", "kept", "--json", cwd=nb)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout.strip().splitlines()[-1])["value"] == {"answer": 42}
    fsck = cli("fsck", "--json", cwd=nb)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_records_crafted_to_point_outside_the_store_are_refused(tmp_path: Path) -> None:
    nb = tmp_path / "nb"
    nb.mkdir()
    k = KernelSession(cwd=str(nb))
    try:
        assert k.run("const secret = 1;")[0]["content"]["status"] == "ok"
    finally:
        k.close()
    store = nb / ".nbscale"
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    tampered = 0
    # Rewrite every JSON record so any hash/key it holds points outside the store.
    for path in store.rglob("*.json"):
        text = path.read_text()
        data = json.loads(text)

        def poison(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: poison(x) for k, x in v.items()}
            if isinstance(v, list):
                return [poison(x) for x in v]
            if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
                return "../../../outside.txt"
            return v

        new = poison(data)
        if new != data:
            path.chmod(0o644)
            path.write_text(json.dumps(new))
            tampered += 1
    assert tampered > 0
    got = cli("artifact", "get", "secret", "--json", cwd=nb)
    assert got.returncode != 0
    assert "not yours" not in got.stdout
    fsck = cli("fsck", cwd=nb)
    assert fsck.returncode != 0, "fsck reports the crafted records"
