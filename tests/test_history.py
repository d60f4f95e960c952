"""Issue 4 end to end: every execution recorded, versions, %history,
%restore with types, the client library and the CLI — through a real nbscale
kernel (jupyter_client) and the real `nbscale` CLI."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import KernelSession

REPO = Path(__file__).resolve().parent.parent
CLI = str(REPO / "kernel" / "bin" / "nbscale.js")


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", CLI, *args], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def cli_json(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    r = cli(*args, "--json", cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def ok(k: KernelSession, code: str, timeout: float = 60) -> list[dict[str, Any]]:
    reply, msgs = k.run(code, timeout=timeout)
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert reply["content"]["status"] == "ok", (code, errors)
    return msgs


def fails(k: KernelSession, code: str) -> dict[str, Any]:
    reply, _ = k.run(code)
    assert reply["content"]["status"] == "error", code
    return reply["content"]


def result(msgs: list[dict[str, Any]]) -> dict[str, Any]:
    data = [m["content"]["data"] for m in msgs if m["msg_type"] in ("execute_result", "display_data")]
    assert data, msgs
    return data[-1]


def stderr(msgs: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")


def store_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in (store / "blobs").rglob("*") if p.is_file())




def test_versions_change_only_when_bytes_change_including_in_place(fresh_kernel: KernelSession, tmp_path: Path) -> None:
    k = fresh_kernel
    ok(k, "let arr = [1, 2, 3]")
    ok(k, "arr.push(4)")        # in place, no assignment
    ok(k, "arr.length")         # read only: no new version
    ok(k, "const obj = { k: 0 }")
    ok(k, "obj.k = 1")          # property write
    ok(k, "let n = 1")
    ok(k, "n = 1")              # same value assigned again: no new version

    execs = cli_json("history", cwd=tmp_path)["executions"][::-1]  # oldest first
    assert [e["outputs"].get("arr", {}).get("version") for e in execs[:3]] == [1, 2, None]
    assert execs[2]["inputs"]["arr"]["version"] == 2
    assert execs[1]["inputs"]["arr"]["version"] == 1
    assert execs[4]["outputs"]["obj"]["version"] == 2
    assert execs[6]["outputs"]["n"]["version"] == 1
    assert [v["version"] for v in _versions(tmp_path, "arr")] == [1, 2]
    assert [v["version"] for v in _versions(tmp_path, "n")] == [1]

    data = result(ok(k, "%history arr"))
    assert "arr@2 *" in data["text/plain"] and "arr@1" in data["text/plain"]
    assert "<table" in data["text/html"] and "arr@1" in data["text/html"]
    table = result(ok(k, "%history"))
    assert "text/html" in table and "arr@2" in table["text/plain"] and "(n@1)" in table["text/plain"]


def _versions(cwd: Path, name: str) -> list[dict[str, Any]]:
    r = subprocess.run(["node", "-e", f"""
        const {{ Datastore }} = require({json.dumps(str(REPO / 'kernel/dist/src/store'))});
        Datastore.open({json.dumps(str(cwd / '.nbscale'))}).then(ds => ds.versions({json.dumps(name)}))
          .then(v => console.log(JSON.stringify(v)));
    """], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_history_json_shape_matches_the_contract(fresh_kernel: KernelSession, tmp_path: Path) -> None:
    ok(fresh_kernel, "const a = 1")
    ok(fresh_kernel, "const b = a + 1")
    out = cli_json("history", cwd=tmp_path)
    assert list(out) == ["executions"]
    for e in out["executions"]:
        assert sorted(e) == sorted(["id", "cell", "code_sha256", "target", "status", "started", "finished", "inputs", "outputs"])
        for ref in [*e["inputs"].values(), *e["outputs"].values()]:
            assert sorted(ref) == ["sha256", "version"]
    newest = out["executions"][0]
    assert newest["target"] == "kernel" and newest["status"] == "ok"
    assert newest["outputs"]["b"]["version"] == 1
    got = cli_json("artifact", "get", "b", cwd=tmp_path)
    assert got == {"name": "b", "version": 1, "sha256": newest["outputs"]["b"]["sha256"], "value": 2}

    shown = cli_json("show", newest["id"], cwd=tmp_path)
    for field in ["notebook", "cell", "execution_count", "code", "code_sha256", "step", "inputs", "outputs", "stdout",
                  "stderr", "display", "status", "error", "started", "finished", "target", "worker", "memory", "environment"]:
        assert field in shown, field
    assert shown["code"] == "const b = a + 1" and shown["execution_count"] == 2
    assert shown["cell"] == "headless-2"  # no cell id from jupyter_client: stable fallback
    assert shown["environment"]["node"].startswith("v") and shown["environment"]["nbscale"]


def test_cell_id_logs_and_rich_outputs_are_recorded(fresh_kernel: KernelSession, tmp_path: Path) -> None:
    k = fresh_kernel
    msg_id = k.kc.execute('console.log("hello out"); console.error("hello err"); 6 * 7')
    # JupyterLab sends the cell id in the request metadata; jupyter_client lets us do the same.
    k.shell_reply(msg_id)
    k.collect(msg_id)
    msg = k.kc.session.msg("execute_request", {"code": "const z = 3", "silent": False, "store_history": True,
                                               "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
    msg["metadata"]["cellId"] = "cell-abc-123"
    k.kc.shell_channel.send(msg)
    k.shell_reply(msg["header"]["msg_id"])
    k.collect(msg["header"]["msg_id"])
    execs = cli_json("history", cwd=tmp_path)["executions"]
    assert execs[0]["cell"] == "cell-abc-123"
    first = cli_json("show", execs[1]["id"], cwd=tmp_path)
    assert "hello out" in first["stdout"]["text"] and "hello err" in first["stderr"]["text"]
    assert first["display"]["outputs"][0]["output_type"] == "execute_result"
    assert first["display"]["outputs"][0]["data"]["text/plain"] == "42"


def test_failed_cells_are_recorded_with_status_error(fresh_kernel: KernelSession, tmp_path: Path) -> None:
    ok(fresh_kernel, "let v = [1]")
    fails(fresh_kernel, 'v.push(2); throw new Error("boom")')
    fails(fresh_kernel, "const bad: string = 1")
    execs = cli_json("history", cwd=tmp_path)["executions"]
    assert [e["status"] for e in execs[:2]] == ["error", "error"]
    assert execs[1]["inputs"]["v"]["version"] == 1 and execs[1]["outputs"] == {}
    shown = cli_json("show", execs[1]["id"], cwd=tmp_path)
    assert shown["error"]["ename"] == "Error" and shown["error"]["evalue"] == "boom"
    assert cli_json("show", execs[0]["id"], cwd=tmp_path)["error"]["ename"] == "TSError"
    # Line magics act on the history and are not executions themselves.
    ok(fresh_kernel, "%history")
    assert len(cli_json("history", cwd=tmp_path)["executions"]) == 3


def test_restore_binds_the_version_with_its_type(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    ok(k, "let n = 1")
    ok(k, "n = 2")
    ok(k, 'let rows = [{ id: 1, name: "a" }]')
    ok(k, 'rows.push({ id: 2, name: "b" })')
    msgs = ok(k, "%restore n@1")
    assert "restored n@1" in k.stdout(msgs)
    assert result(ok(k, "n"))["text/plain"] == "1"
    err = fails(k, "const s: string = n")
    assert err["ename"] == "TSError" and "not assignable to type 'string'" in err["evalue"]
    ok(k, "%restore rows@1")
    assert result(ok(k, "rows.map(r => r.name.toUpperCase()).join()"))["text/plain"] == "'A'"
    err = fails(k, "rows[0].nope")
    assert "nope" in err["evalue"]
    ok(k, "%restore n")  # latest of this notebook
    assert result(ok(k, "n"))["text/plain"] == "2"
    # Restoring doesn't create versions; reading the restored value doesn't either.
    assert "rows@3" not in result(ok(k, "%history rows"))["text/plain"]


def test_functions_are_versioned_as_source_and_restored(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    ok(k, "function f(a: number): number { return a * 2 }")
    ok(k, "function f(a: number): number { return a * 3 }")
    ok(k, "function f(a: number): number { return a * 3 }")  # same source: no new version
    text = result(ok(k, "%history f"))["text/plain"]
    assert "f@2" in text and "f@3" not in text
    ok(k, "%restore f@1")
    assert result(ok(k, "f(5)"))["text/plain"] == "10"
    assert "not assignable" in fails(k, 'const s: string = f(1)')["evalue"]


def test_restore_errors_name_close_variables_and_existing_versions(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    ok(k, "let model = [1]")
    ok(k, "model.push(2)")
    err = fails(k, "%restore modle")
    assert "`model`" in err["evalue"] and "Did you mean" in err["evalue"]
    err = fails(k, "%restore model@7")
    assert "model@1, model@2" in err["evalue"]
    ok(k, 'const em = new (require("events").EventEmitter)()')  # unserializable: a stub, cell still ok
    err = fails(k, "%restore em")
    assert "stub" in err["evalue"] and "EventEmitter" in err["evalue"]


def test_client_library_in_cells_reads_the_same_store(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    ok(k, "let xs = [1, 2]")
    ok(k, "xs.push(3)")
    msgs = ok(k, 'import { history, artifact } from "nbscale";\n'
                 'const h = await history({ variable: "xs" });\n'
                 'const a = await artifact("xs", 1);\n'
                 'JSON.stringify({ n: h.length, v: a.value, version: a.version })')
    text = result(msgs)["text/plain"]
    assert '"n":2' in text and '"v":[1,2]' in text and '"version":1' in text


def test_rerunning_a_32mb_cell_adds_no_blob_bytes(fresh_kernel: KernelSession, tmp_path: Path) -> None:
    cell = "const big = new Float64Array(4 << 20).map((_, i) => i % 1000)"
    ok(fresh_kernel, cell)
    store = tmp_path / ".nbscale"
    before = store_bytes(store)
    assert before >= 32 << 20
    ok(fresh_kernel, cell)
    ok(fresh_kernel, "big[0]")
    assert store_bytes(store) == before
    execs = cli_json("history", cwd=tmp_path)["executions"]
    assert execs[1]["outputs"]["big"]["version"] == 1
    ok(fresh_kernel, "big[0] = 7")  # in-place change of 32 MB: one new version
    assert store_bytes(store) >= before + (32 << 20)
    assert cli_json("history", cwd=tmp_path)["executions"][0]["outputs"]["big"]["version"] == 2


def test_a_corrupted_blob_is_refused_naming_the_artifact(fresh_kernel: KernelSession, tmp_path: Path) -> None:
    ok(fresh_kernel, "const arr8 = new Float64Array(1 << 18).fill(2.5)")
    sha = cli_json("history", cwd=tmp_path)["executions"][0]["outputs"]["arr8"]["sha256"]
    blob = tmp_path / ".nbscale" / "blobs" / "sha256" / sha[:2] / sha
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    r = cli("artifact", "get", "arr8", "--json", cwd=tmp_path)
    assert r.returncode != 0
    assert "arr8@1 is corrupt" in r.stderr and sha in r.stderr
    err = fails(fresh_kernel, "%restore arr8")
    assert err["ename"] == "CorruptArtifactError" and "arr8@1 is corrupt" in err["evalue"]
    assert cli("fsck", cwd=tmp_path).returncode != 0


def test_kernel_sigkilled_while_writing_a_large_artifact_leaves_a_consistent_store(tmp_path: Path) -> None:
    k = KernelSession(cwd=str(tmp_path))
    try:
        ok(k, "const small = 1")
        tmp = tmp_path / ".nbscale" / "tmp"
        msg_id = k.kc.execute("const huge = new Float64Array(8 << 20).map((_, i) => i)")  # 64 MB
        k.shell_reply(msg_id, timeout=60)  # the reply goes out before the write finishes
        deadline = time.monotonic() + 30
        while not any(tmp.glob("*.tmp")):
            assert time.monotonic() < deadline, "no temp file appeared"
            time.sleep(0.002)
        pid = k.km.provisioner.process.pid  # the launcher exec()s node: this is the kernel
        os.kill(pid, signal.SIGKILL)
    finally:
        try:
            k.kc.stop_channels()
            k.km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001 - it is dead already
            pass
    r = cli("fsck", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "leftover" in r.stdout and "removable with --clean" in r.stdout
    execs = cli_json("history", cwd=tmp_path)["executions"]
    assert all("huge" not in e["outputs"] for e in execs)  # never half-recorded
    assert cli("fsck", "--clean", "--grace", "0s", cwd=tmp_path).returncode == 0
    assert not any(tmp.glob("*.tmp"))


def test_two_kernels_writing_into_one_store_lose_nothing(tmp_path: Path) -> None:
    store = tmp_path / "shared-store"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    env = {"NBSCALE_DATASTORE": str(store)}
    ka = KernelSession(cwd=str(tmp_path / "a"), env=env)
    kb = KernelSession(cwd=str(tmp_path / "b"), env=env)
    n = 12
    try:
        ids = []
        for i in range(n):
            ids.append((ka, ka.kc.execute(f"let v = [{i}, 'a']")))
            ids.append((kb, kb.kc.execute(f"let v = [{i}, 'b']")))
        for k, msg_id in ids:
            assert k.shell_reply(msg_id, timeout=120)["content"]["status"] == "ok"
        for k, msg_id in ids:
            k.collect(msg_id, timeout=120)
    finally:
        ka.close()
        kb.close()
    execs = cli_json("history", cwd=tmp_path, env=env)["executions"]
    assert len(execs) == 2 * n
    versions = sorted(e["outputs"]["v"]["version"] for e in execs)
    assert versions == list(range(1, 2 * n + 1))
    assert cli("fsck", cwd=tmp_path, env=env).returncode == 0
    for e in execs:
        got = cli_json("artifact", "get", f"v@{e['outputs']['v']['version']}", cwd=tmp_path, env=env)
        assert got["sha256"] == e["outputs"]["v"]["sha256"]


def test_storage_failure_is_a_warning_never_a_failed_cell(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the datastore should be")
    k = KernelSession(cwd=str(tmp_path), env={"NBSCALE_DATASTORE": str(blocker)})
    try:
        msgs = ok(k, "const q = 1; q + 1")
        assert result(msgs)["text/plain"] == "2"
        warning = stderr(msgs)
        assert "not recorded" in warning and warning.count("\n") == 1
    finally:
        k.close()


@pytest.mark.timeout(600)  # records and restores 1 GiB
def test_long_recording_and_restore_show_a_live_line_that_ends_with_what_was_done(tmp_path: Path) -> None:
    # The lines appear once a recording (0.5 s) or a read (0.4 s) has run long enough to notice;
    # NBSCALE_PROGRESS_AFTER_MS=0 shows them whatever this machine's speed.
    k = KernelSession(cwd=str(tmp_path), env={"NBSCALE_PROGRESS_AFTER_MS": "0"})
    try:
        long_recording_and_restore(k)
    finally:
        k.close()


def long_recording_and_restore(k: KernelSession) -> None:
    made = ok(k, "let huge = new Float64Array(2 ** 27).map((_, i) => i / 3)", timeout=120)
    # Recording runs after the reply: the cell says so while the kernel is still busy with it.
    notes = [m["content"]["data"]["text/plain"] for m in made if m["msg_type"] in ("display_data", "update_display_data")]
    assert notes and re.fullmatch(r"recording huge \(1\.0 GiB\) to .+…", notes[0]), notes
    assert re.fullmatch(r"recorded huge@1 \(1\.0 GiB\) in [\d.]+ s", notes[-1]), notes
    msgs = ok(k, "%restore huge@1", timeout=120)
    lines = [(m["msg_type"], m["content"]["data"]["text/plain"]) for m in msgs if m["msg_type"] in ("display_data", "update_display_data")]
    assert lines and lines[0][0] == "display_data" and lines[0][1].startswith("reading huge@1  ["), lines
    assert all(t == "update_display_data" for t, _ in lines[1:])
    assert re.fullmatch(r"read huge@1: 1\.0 GiB in [\d.]+ s \([\d.]+ [MG]iB/s\), every chunk verified", lines[-1][1]), lines[-1]
    assert "restored huge@1" in k.stdout(msgs)
    assert result(ok(k, "huge[3]"))["text/plain"] == "1"
