"""Lazy step outputs (issue 3): an output too big for the kernel stays in the
datastore; the session gets a typed `Lazy<T>` handle, later steps read the
value straight from the datastore, and `await x.load()` reads it in the kernel.

NBSCALE_LAZY_BYTES is set to 1 MiB so a 16 MB array is "too big" and the
tests stay fast (the default is a quarter of the kernel's heap limit)."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import KernelSession

REPO = Path(__file__).resolve().parent.parent
CLI = str(REPO / "kernel" / "bin" / "nbscale.js")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def nb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lazy")


@pytest.fixture(scope="module")
def k(nb: Path) -> Iterator[KernelSession]:
    mp = pytest.MonkeyPatch()
    mp.setenv("NBSCALE_LAZY_BYTES", "1M")
    mp.delenv("NBSCALE_DATASTORE", raising=False)
    try:
        session = KernelSession(cwd=str(nb))
    finally:
        mp.undo()  # the kernel has its environment; later tests don't inherit this
    yield session
    session.close()


def ok(k: KernelSession, code: str, timeout: float = 60) -> list[dict[str, Any]]:
    reply, msgs = k.run(code, timeout=timeout)
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert reply["content"]["status"] == "ok", (code, errors)
    return msgs


def fails(k: KernelSession, code: str) -> str:
    reply, msgs = k.run(code, timeout=60)
    assert reply["content"]["status"] == "error", reply["content"]
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    return ANSI.sub("", "\n".join(e["evalue"] + "\n" + "\n".join(e["traceback"]) for e in errors))


def value(k: KernelSession, expr: str) -> str:
    msgs = ok(k, expr)
    results = [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"]
    assert len(results) == 1, msgs
    return results[0]


def cli_json(*args: str, cwd: Path) -> Any:
    env = {k: v for k, v in os.environ.items() if k != "NBSCALE_DATASTORE"}
    r = subprocess.run(["node", CLI, *args, "--json"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def made(k: KernelSession) -> list[dict[str, Any]]:
    """The step that makes `big` (once per module, for whichever test asks first): its messages."""
    ok(k, "const ab0 = process.memoryUsage().arrayBuffers;")
    return ok(k, "%%step make\nconst big = Float64Array.from({ length: 2_000_000 }, (_, i) => i * 0.5);\nconst small = [1, 2, 3];")


def test_big_output_stays_in_the_datastore_as_a_typed_handle(k: KernelSession, made: list[dict[str, Any]]) -> None:
    out = k.stdout(made)
    assert "`big` (15 MiB Float64Array) stays in the datastore as big@1; load it with `await big.load()` or use it in another %%step" in out, out
    # Only big is lazy: a small output comes back as a value.
    assert value(k, "small.length") == "3"
    assert value(k, "big instanceof Float64Array") == "false"
    assert value(k, "big.constructor.name") == "'Lazy'"
    assert value(k, "[big.name, big.version, big.bytes > 16_000_000]") == "[ 'big', 1, true ]"
    assert value(k, "big").startswith("Lazy<Float64Array(2000000)> big@1 (")
    # The kernel never held the array's 16 MB.
    grown = int(value(k, "process.memoryUsage().arrayBuffers - ab0"))
    assert grown < 8_000_000, grown


def test_handle_is_typed_with_the_value_type(k: KernelSession, made: list[dict[str, Any]]) -> None:
    ok(k, "const p: Promise<Float64Array> = big.load(); void p;")
    err = fails(k, "const wrong: Promise<string> = big.load();")
    assert "Float64Array" in err, err


def test_a_later_step_reads_the_value_from_the_datastore(k: KernelSession, made: list[dict[str, Any]]) -> None:
    ok(k, "const ab1 = process.memoryUsage().arrayBuffers;")
    # The body sees `big` as a Float64Array (type-checked as such) and gets its values.
    ok(k, "%%step use\nconst picked: number = big[5] + big[1_999_999];\nconst n = big.length;\nconst kind = big.constructor.name;")
    assert value(k, "picked") == "1000002"  # 2.5 + 999999.5
    assert value(k, "n") == "2000000"
    assert value(k, "kind") == "'Float64Array'"
    assert int(value(k, "process.memoryUsage().arrayBuffers - ab1")) < 8_000_000
    # ... and is type-checked with the value's type, not the handle's.
    err = fails(k, "%%step wrong\nconst s: string = big[0];")
    assert "number" in err and "string" in err, err


def test_load_in_a_plain_cell(k: KernelSession, made: list[dict[str, Any]]) -> None:
    ok(k, "const arr = await big.load();")
    assert value(k, "[arr instanceof Float64Array, arr.length, arr[3]]") == "[ true, 2000000, 1.5 ]"


def test_the_value_is_in_the_history(k: KernelSession, nb: Path, made: list[dict[str, Any]]) -> None:
    sha = value(k, "big.sha256").strip("'")
    ok(k, "%%step reads_big\nconst read_back = big[7];")
    ok(k, "const loaded = await big.load();")
    got = cli_json("artifact", "get", "big", cwd=nb)
    assert got["name"] == "big" and got["version"] == 1 and got["sha256"] == sha
    # The step that read it names that version as its input.
    hist = cli_json("history", cwd=nb)["executions"]
    use = [e for e in hist if "read_back" in e.get("outputs", {})]
    assert use and use[0]["inputs"]["big"] == {"version": 1, "sha256": sha}, use
    # Reading the handle in a plain cell did not record the handle as a new version of big.
    assert len([e for e in hist if "big" in e["outputs"]]) == 1, hist
    # The worker's blob and the kernel's records agree (fsck re-hashes every blob).
    cli_json("fsck", cwd=nb)


def test_on_kernel_step_gets_the_value(k: KernelSession, made: list[dict[str, Any]]) -> None:
    ok(k, "%%step --on kernel\nconst first = big[1];")
    assert value(k, "first") == "0.5"


def test_foreach_items_read_the_value_from_the_datastore(k: KernelSession, made: list[dict[str, Any]]) -> None:
    ok(k, "%%step pick --foreach [1,3]\nconst v: number = big[item];")
    assert value(k, "v") == "[ 0.5, 1.5 ]"


def test_a_datastore_that_cannot_take_the_value_sends_it_back(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("x")
    mp = pytest.MonkeyPatch()
    mp.setenv("NBSCALE_LAZY_BYTES", "1M")
    mp.setenv("NBSCALE_DATASTORE", str(tmp_path / "not-a-dir" / "store"))
    try:
        s = KernelSession(cwd=str(tmp_path))
    finally:
        mp.undo()
    try:
        msgs = ok(s, "%%step make\nconst big = new Float64Array(2_000_000).fill(2);")
        err = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
        assert "`big` could not be kept in the datastore" in err and "sent to the kernel instead" in err, err
        assert value(s, "[big instanceof Float64Array, big[7]]") == "[ true, 2 ]"
    finally:
        s.close()


def corrupt_blob(store: Path, sha: str) -> None:
    """Flips one byte in the middle of a blob: same size, wrong content."""
    blob = store / "blobs" / "sha256" / sha[:2] / sha
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))


def test_a_corrupted_blob_behind_a_lazy_input_is_refused_by_the_worker(tmp_path: Path) -> None:
    session = KernelSession(cwd=str(tmp_path), env={"NBSCALE_LAZY_BYTES": "1M"})
    try:
        ok(session, "%%step make\nconst big2 = Float64Array.from({ length: 2_000_000 }, (_, i) => i);")
        sha = cli_json("artifact", "get", "big2", cwd=tmp_path)["sha256"]
        corrupt_blob(tmp_path / ".nbscale", sha)
        for target in ["local", "kernel"]:
            err = fails(session, f"%%step read_{target} --on {target}\nconst s = big2[7];")
            assert "big2" in err and sha[:12] in err, (target, err)
        # The session is intact: a value not read from the damaged blob still works.
        ok(session, "%%step fine\nconst t = 1 + 1;")
    finally:
        session.close()
