"""Faults and hostile input against the real kernel, CLI and store (issue 11)."""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

import zmq

from conftest import KERNEL_NAME, KernelSession, LoggedKernel, fails, ok, stderr, value

ROOT = Path(__file__).resolve().parents[1]
NBSCALE = ["node", str(ROOT / "kernel" / "bin" / "nbscale.js")]


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NBSCALE, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120)


def result_text(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"]


def why_no_tmpfs() -> str | None:
    """Why this machine does not let the tests mount a tmpfs (root with CAP_SYS_ADMIN), or None."""
    if os.geteuid() != 0:
        return f"mounting a tmpfs needs root; the tests run as uid {os.geteuid()}"
    status = Path("/proc/self/status").read_text()
    m = re.search(r"^CapEff:\s*([0-9a-fA-F]+)$", status, re.M)
    if m and not int(m.group(1), 16) & (1 << 21):
        return "mounting a tmpfs needs CAP_SYS_ADMIN, which this container does not have"
    return None


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs: a datastore that fills up. Skips (saying why) only where the
    machine does not allow a tmpfs; where it does, a failed mount fails the test."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True, text=True, timeout=30)
        error = r.stderr.strip() if r.returncode != 0 else None
    except FileNotFoundError as e:
        error = f"{e.filename} is not installed (util-linux)"
    if error is not None:
        why = why_no_tmpfs()
        if why is None:
            pytest.fail(f"this machine allows a tmpfs (root, CAP_SYS_ADMIN) but mounting one failed: {error}", pytrace=False)
        pytest.skip(f"cannot mount a tmpfs here ({why}): {error}")
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


# --- a worker SIGKILLed mid-step ------------------------------------------------


def worker_pids(k: KernelSession) -> list[int]:
    """Pids of the local pool's workers, from `%workers`."""
    rows = k.stdout(ok(k, "%workers")).splitlines()[2:]
    return [int(r.split()[1]) for r in rows if len(r.split()) > 1 and r.split()[1].isdigit()]


def test_a_worker_sigkilled_mid_step_fails_the_cell_and_the_pool_replaces_it(tmp_path: Path) -> None:
    k = KernelSession(cwd=str(tmp_path))
    try:
        ok(k, "const before = { kept: [1, 2, 3] };")
        ok(k, "%%step warm\nconst warmed = 1;")
        pool_before = worker_pids(k)
        assert pool_before, "the pool has a warm worker"
        # The step is busy in synchronous code when it dies: nothing in it can answer.
        msg_id = k.kc.execute(
            "%%step victim\nconsole.log(`pid ${process.pid}`);\n"
            "const until = Date.now() + 60_000; let spins = 0; while (Date.now() < until) spins++;\nconst never = spins;"
        )
        pid = None
        while pid is None:
            msg = k.kc.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                m = re.search(r"pid (\d+)", msg["content"]["text"])
                pid = int(m.group(1)) if m else None
        os.kill(pid, signal.SIGKILL)
        # A dead worker sends nothing: the reply can only come from the kernel noticing the death.
        reply = k.shell_reply(msg_id, timeout=60, waiting_for="the cell did not fail after its worker was SIGKILLed")
        k.collect(msg_id)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "WorkerDied", reply["content"]
        assert str(pid) in reply["content"]["evalue"] and "SIGKILL" in reply["content"]["evalue"]
        # The kernel and its state stay; the step's name was never bound.
        assert value(k, "before.kept.length") == "3"
        assert "never" in fails(k, "never")["evalue"]
        # The pool replaced the dead worker, and the next step runs on a live one.
        # The pool keeps NBSCALE_WARM_WORKERS (1) idle workers ready whatever died.
        deadline = time.monotonic() + 60
        while (pids := worker_pids(k)) and (pid in pids or not pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pid not in pids and len(pids) >= 1, (pool_before, pids)
        for p in pids:
            os.kill(p, 0)  # alive
        out = k.stdout(ok(k, "%%step after\nconsole.log(process.pid);\nconst fine = before.kept.length * 2;"))
        assert int(out) != pid
        assert value(k, "fine") == "6"
    finally:
        k.close()


# --- a cell that floods 100 MB of output -------------------------------------

FLOOD_LINES = 1_000_000
PINGS_DURING_FLOOD = 3


def flood(release: Path) -> str:
    """1e6 lines of 100 bytes: 100 MB. Each line ends with its number, so the log can be checked.
    Halfway the cell waits (up to 120 s) for `release`, which the test creates once the control
    channel has answered PINGS_DURING_FLOOD requests sent after the flood's output began."""
    r = json.dumps(str(release))
    half = FLOOD_LINES // 2
    return (
        'import * as fs from "fs";\n'
        f"for (let i = 0; i < {half}; i++) console.log(String(i).padStart(99, '.'));\n"
        f"{{ const until = Date.now() + 120_000; while (!fs.existsSync({r}) && Date.now() < until) {{}} }}\n"
        f"if (!fs.existsSync({r})) throw new Error('the control channel did not answer {PINGS_DURING_FLOOD} kernel_info requests during the flood');\n"
        f"for (let i = {half}; i < {FLOOD_LINES}; i++) console.log(String(i).padStart(99, '.'));"
    )


def ping_control(k: KernelSession, stop: threading.Event, flooding: threading.Event, release: Path, latencies: list[float]) -> None:
    """kernel_info on the control channel, again and again; once PINGS_DURING_FLOOD requests sent
    after the flood's output began were answered, creates `release`. The latencies are reported
    only (a speed on this machine, not a property of the kernel)."""
    answered_during = 0
    while not stop.is_set():
        msg = k.kc.session.msg("kernel_info_request")
        sent_while_flooding = flooding.is_set()
        t0 = time.monotonic()
        k.kc.control_channel.send(msg)
        while True:
            try:
                reply = k.kc.control_channel.get_msg(timeout=60)
            except queue.Empty:
                return  # the cell waits for `release` in vain and fails, naming the control channel
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                break
        latencies.append(time.monotonic() - t0)
        if sent_while_flooding:
            answered_during += 1
            if answered_during == PINGS_DURING_FLOOD:
                release.write_text("")
        stop.wait(0.1)


@pytest.mark.timeout(600)  # a 100 MB flood, 240 s allowed for the reply
@pytest.mark.parametrize("where", ["kernel", "local"])
def test_a_100_mb_output_flood_is_bounded_in_the_cell_and_whole_in_nbscale_logs(tmp_path: Path, where: str) -> None:
    k = KernelSession(cwd=str(tmp_path))
    try:
        release = tmp_path / "release"
        code = flood(release) if where == "kernel" else f"%%step flood\n{flood(release)}\nconst flooded = true;"
        if where == "local":
            ok(k, "%%step warm\nconst warmed = 1;")
        stop, flooding, latencies = threading.Event(), threading.Event(), []
        pinger = threading.Thread(target=ping_control, args=(k, stop, flooding, release, latencies))
        t0 = time.monotonic()
        msg_id = k.kc.execute(code)
        pinger.start()
        msgs: list[dict[str, Any]] = []
        try:
            # Every iopub message of the cell; its first output marks the start of the flood.
            deadline = time.monotonic() + 300
            while True:
                try:
                    msg = k.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    raise TimeoutError("the flood did not end within 300 s") from None
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
                msgs.append(msg)
                if msg["msg_type"] == "stream":
                    flooding.set()
            reply = k.shell_reply(msg_id, timeout=60)
        finally:
            stop.set()
            pinger.join()
        elapsed = time.monotonic() - t0
        assert reply["content"]["status"] == "ok", reply["content"]
        print(f"\n{where}: 100 MB flood took {elapsed:.1f} s; control kernel_info answered {len(latencies)} times, max {max(latencies) * 1000:.0f} ms")
        # The cell ended normally, so it was released: the control channel answered during the flood.
        assert release.exists()

        shown = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
        shown_bytes = len(shown.encode())
        assert shown_bytes < 1.1 * 2**20, f"the cell got {shown_bytes} bytes"
        assert shown.startswith("." * 98 + "0\n")
        note = re.search(r"output truncated: ([\d.]+) MB more; full log: `nbscale logs (\S+)`", stderr(msgs))
        assert note, stderr(msgs)[-500:]
        hidden_mb, execution = float(note.group(1)), note.group(2)
        assert abs(hidden_mb - (100 - shown.count("\n") * 100 / 1e6)) < 1.5, hidden_mb

        # RSS of the kernel after the flood: the shown part is bounded; the log was held to be recorded.
        rss_mb = int(value(k, "Math.round(process.memoryUsage.rss() / 1e6)"))
        print(f"{where}: kernel RSS after the flood {rss_mb} MB")

        logs = subprocess.run([*NBSCALE, "logs", execution], cwd=tmp_path, capture_output=True, timeout=120)
        assert logs.returncode == 0, logs.stderr[-2000:]
        lines = logs.stdout.decode().splitlines()
        assert len(lines) == FLOOD_LINES
        assert lines[0] == "." * 98 + "0" and lines[-1].endswith(str(FLOOD_LINES - 1)) and len(lines[-1]) == 99
        assert all(int(lines[i].lstrip(".")) == i for i in range(0, FLOOD_LINES, 9973))
        hist = subprocess.run([*NBSCALE, "history", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert execution in {e["id"] for e in json.loads(hist.stdout.strip().splitlines()[-1])["executions"]}
    finally:
        k.close()
    assert cli("fsck", cwd=tmp_path).returncode == 0


# --- 200 steps in a loop ---------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


ROUNDS = 5


@pytest.mark.timeout(1200)  # 5 rounds of 200 items, each round allowed 600 s
def test_200_foreach_items_all_complete_and_kernel_memory_stays_bounded(tmp_path: Path) -> None:
    k = KernelSession(cwd=str(tmp_path))
    try:
        kernel_pid = int(value(k, "process.pid"))
        ok(k, "const items = Array.from({ length: 200 }, (_, i) => ({ i, name: `item-${i}` }));")
        code = ("%%step many --foreach items --parallel 2\n"
                "console.log(`item ${item.i}`);\n"
                "const square = item.i * item.i;\nconst label = item.name.toUpperCase();")
        rss, times = [], []
        for round_ in range(ROUNDS):
            t0 = time.monotonic()
            msgs = ok(k, code, timeout=600)
            times.append(time.monotonic() - t0)
            assert value(k, "square.length") == "200"
            assert value(k, "square.every((s, i) => s === i * i) && label[199] === 'ITEM-199'") == "true"
            out = k.stdout(msgs)
            assert sum(1 for l in out.splitlines() if re.fullmatch(r"\[\d+\] item \d+", l)) == 200
            rss.append(rss_mb(kernel_pid))
        print(f"\n200-item foreach: {', '.join(f'{t:.1f} s' for t in times)}; kernel RSS after each round {', '.join(f'{r:.0f} MB' for r in rss)}")
        # After the first round warmed everything up, more rounds must not keep growing the kernel.
        assert rss[-1] - rss[0] < 60, rss
    finally:
        k.close()
    hist = cli("history", "--json", cwd=tmp_path)
    executions = json.loads(hist.stdout.strip().splitlines()[-1])["executions"]
    # Each round: one execution for the foreach and one per item.
    assert sum(1 for e in executions if e["status"] == "ok" and "square[199]" in e["outputs"]) == ROUNDS
    assert cli("fsck", cwd=tmp_path).returncode == 0


# --- hostile protocol messages: huge and missing frames ---------------------------


def signed(k: KernelSession, parts: list[Any]) -> list[bytes]:
    """Frames after the delimiter, validly signed with the session's key: only their shape is wrong."""
    body = [json.dumps(p).encode() if not isinstance(p, bytes) else p for p in parts]
    return [b"<IDS|MSG>", k.kc.session.sign(body), *body]


def test_huge_and_missing_frames_are_dropped_and_logged_and_nothing_runs(tmp_path: Path) -> None:
    k = LoggedKernel(tmp_path)
    try:
        pid = int(value(k, "process.pid"))
        s = k.kc.session
        execute = s.msg("execute_request", {"code": "(globalThis as any).pwned = true", "silent": False, "store_history": True,
                                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
        header, parent, metadata, content = (execute["header"], {}, {}, execute["content"])
        header = json.loads(json.dumps(header, default=str))
        shell = k.kc.shell_channel.socket
        # Missing frames, each message correctly signed over the frames it has.
        shell.send_multipart(signed(k, [header, parent, metadata]))
        shell.send_multipart(signed(k, [header]))
        shell.send_multipart([b"<IDS|MSG>", k.kc.session.sign([])])
        shell.send_multipart([b"<IDS|MSG>"])
        # Frames that are there but hold the wrong thing.
        shell.send_multipart(signed(k, [{**header, "msg_type": None}, parent, metadata, content]))
        shell.send_multipart(signed(k, [[header], parent, metadata, content]))
        # A huge frame: a validly signed request over the kernel's 256 MiB limit, on its own connection.
        huge = s.msg("execute_request", {**execute["content"], "code": "(globalThis as any).pwned = true //" + "x" * (257 << 20)})
        attacker = zmq.Context.instance().socket(zmq.DEALER)
        attacker.linger = 0
        attacker.connect(f"tcp://{k.km.ip}:{k.km.shell_port}")
        try:
            s.send(attacker, huge)
            # Until the kernel has dropped that connection (it logs so), not for a guessed 3 s.
            deadline = time.monotonic() + 120
            while not ("shell: a client connection closed" in k.log() and "256 MiB" in k.log()):
                assert time.monotonic() < deadline, f"the kernel did not drop the oversized request within 120 s: {k.log()[-2000:]}"
                time.sleep(0.1)
        finally:
            attacker.close()
        del huge
        # The kernel is the same process, it answers, and nothing of the above ran.
        assert value(k, "typeof (globalThis as any).pwned") == "'undefined'"
        assert int(value(k, "process.pid")) == pid and k.km.is_alive()
        log = k.log()
        assert log.count("dropped message on shell: expected 5 frames after the delimiter") == 4, log
        assert log.count("dropped message on shell: header lacks msg_id/msg_type") == 2, log
        assert "shell: a client connection closed" in log and "256 MiB" in log, log
    finally:
        k.close()
        k.log_file.close()


# --- hostile names, values and paths -------------------------------------------


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_hostile_names_values_and_paths_are_refused_or_taken_literally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = tmp_path / "nb"
    nb.mkdir()
    notebook = nb / "demo.ipynb"
    cells = [{"cell_type": "code", "id": "c1", "metadata": {}, "source": "const xs = [1, 2, 3];", "outputs": [], "execution_count": None}]
    notebook.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}))
    notebook_bytes = notebook.read_bytes()
    (nb / "helpers.ts").write_text("export const mine = 1;\n")
    (tmp_path / "outside.txt").write_text("not yours")
    canary = tmp_path / "pwned"
    monkeypatch.setenv("NBSCALE_NOTEBOOK", str(notebook))
    before_outside = tree(tmp_path) - {str(p.relative_to(tmp_path)) for p in nb.rglob("*")} - {"nb"}
    shell_tricks = [f"$(touch {canary})", f"`touch {canary}`", f"x;touch {canary}", f"x|touch {canary}", f"x&&touch {canary}"]

    k = KernelSession(cwd=str(nb))
    try:
        ok(k, "const secret = 1;")
        # Step names: a name, never a path or a command.
        for name in ["../x", "a/b", "..", "a\x00b", *shell_tricks]:
            err = fails(k, f'%%step "{name}"\nconsole.log("ran");')
            assert "step name" in err["evalue"] and "ran" not in k.stdout(err["msgs"]), err["evalue"]
        # %restore names and versions.
        for spec in ["../../outside", "secret/../../outside", "se\x00cret", "secret@../1", "secret@1/../2", *(f'"{t}"' for t in shell_tricks)]:
            err = fails(k, f"%restore {spec}")
            assert "%restore" in err["evalue"], err["evalue"]
        # --env values: passed to the step as they are, never through a shell.
        for trick in shell_tricks:
            out = k.stdout(ok(k, f"%%step envy --env 'V={trick}'\nconsole.log(JSON.stringify(process.env.V));"))
            assert json.loads(out) == trick
        assert "NUL byte" in fails(k, '%%step envy --env "V=a\x00b"\nconsole.log(1);')["evalue"]
        for key in ["../K", "K/1", "K;x", "1K"]:
            assert "--env" in fails(k, f'%%step envy --env "{key}=1"\nconsole.log(1);')["evalue"]
        # %export paths: inside the notebook's folder only, never over the notebook or a file of the user's.
        for path in ["../outside.ts", str(tmp_path / "abs.ts"), "a\x00b.ts", "sub/../../outside.ts"]:
            assert "inside the notebook's folder" in fails(k, f'%export "{path}"')["evalue"]
        assert "is the notebook itself" in fails(k, "%export demo.ipynb")["evalue"]
        assert "not a flow nbscale exported" in fails(k, "%export helpers.ts")["evalue"]
        assert "ending in .ts" in fails(k, "%export notes.txt")["evalue"]
        literal = "x;y $(z) `w`.ts"
        ok(k, f"%export '{literal}'")
        assert (nb / literal).read_text().startswith("/**"), "a file of exactly that name, in the notebook's folder"
        ok(k, f"%export '{literal}'")  # an earlier export may be replaced
    finally:
        k.close()
    # Artifact names on the command line.
    for spec in ["../../outside", "secret/../../outside", "../outside.txt", "secret@../1", *shell_tricks]:
        got = cli("artifact", "get", spec, cwd=nb)
        assert got.returncode != 0 and "not yours" not in got.stdout and "Traceback" not in got.stderr, (spec, got.stderr)
        assert "    at " not in got.stderr, got.stderr
    assert not canary.exists(), "nothing ran as shell code"
    assert notebook.read_bytes() == notebook_bytes and (nb / "helpers.ts").read_text() == "export const mine = 1;\n"
    after_outside = tree(tmp_path) - {str(p.relative_to(tmp_path)) for p in nb.rglob("*")} - {"nb"}
    assert after_outside == before_outside, "no file was created outside the notebook's folder"


def test_a_display_flood_is_bounded_like_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBSCALE_LOG_BYTES", "4M")
    k = KernelSession(cwd=str(tmp_path))
    try:
        # 20 000 displays of ~1 kB: 20 MB the notebook would otherwise have to hold.
        msgs = ok(k, 'import { display } from "nbscale";\nfor (let i = 0; i < 20_000; i++) display.html(`<b>${i}</b>` + "x".repeat(1000));', timeout=120)
        shown = [m for m in msgs if m["msg_type"] == "display_data"]
        assert 0 < len(shown) < 1100, len(shown)
        note = re.search(r"output truncated: [\d.]+ MB more; full log: `nbscale logs (\S+)`", stderr(msgs))
        assert note, stderr(msgs)
        # The next cell has a budget of its own: its step status shows.
        msgs = ok(k, "%%step after_flood\nconst fine = 1;")
        assert any("application/vnd.nbscale.step+json" in m["content"].get("data", {}) for m in msgs if m["msg_type"] == "display_data")
    finally:
        k.close()
    # The record keeps displays up to NBSCALE_LOG_BYTES, then says how many it left out.
    record = json.loads((tmp_path / ".nbscale" / "executions" / f"{note.group(1)}.json").read_text())
    blob = record["display"]["blob"]
    outputs = json.loads((tmp_path / ".nbscale" / "blobs" / "sha256" / blob[:2] / blob).read_text())
    per_display = sum(len(v) for v in outputs[0]["data"].values())
    assert abs((len(outputs) - 1) - (4 << 20) / per_display) < 0.05 * (4 << 20) / per_display, (len(outputs), per_display)
    assert re.fullmatch(r"\[nbscale: \d+ more displays were not recorded \(NBSCALE_LOG_BYTES\)\]\n", outputs[-1]["text"])


def test_a_package_installed_mid_session_is_importable_with_its_types(tmp_path: Path) -> None:
    # `npm install` in the notebook folder while the kernel runs: the files the TypeScript
    # service watches change under it, and the next cell must see the new package and its types.
    k = KernelSession(cwd=str(tmp_path))
    try:
        ok(k, "const before = 1")
        err = fails(k, 'import { triple } from "late-lib";')
        assert "late-lib" in err["evalue"], err
        pkg = tmp_path / "node_modules" / "late-lib"
        pkg.mkdir(parents=True)
        (pkg / "package.json").write_text('{"name": "late-lib", "version": "1.0.0", "main": "index.js", "types": "index.d.ts"}')
        (pkg / "index.js").write_text("exports.triple = (x) => x * 3;\n")
        (pkg / "index.d.ts").write_text("export declare function triple(x: number): number;\n")
        (tmp_path / "package-lock.json").write_text('{"name": "nb", "lockfileVersion": 3, "packages": {}}\n')
        ok(k, 'import { triple } from "late-lib";\nconst t = triple(before + 13);')
        assert value(k, "t") == "42"
        bad = fails(k, 'const s: string = triple(2);')
        assert "not assignable to type 'string'" in bad["evalue"], bad
        assert value(k, "before") == "1", "the session's state survived the rebuild"
    finally:
        k.close()


def test_a_kernel_whose_server_was_killed_exits_with_its_workers(tmp_path: Path) -> None:
    # The Jupyter server SIGKILLed (no shutdown_request ever comes): the kernel must not linger
    # holding the dead server's pipes and its workers' memory.
    script = tmp_path / "server.py"
    script.write_text(
        "import sys, time\n"
        "from jupyter_client.manager import KernelManager\n"
        f"km = KernelManager(kernel_name={KERNEL_NAME!r})\n"
        "km.start_kernel()\n"
        "kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=60)\n"
        "kc.execute_interactive('%%step warm\\nconst w = 1;', timeout=60)\n"
        "print('KERNEL_PID', km.provisioner.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    server = subprocess.Popen([str(ROOT / ".venv" / "bin" / "python"), str(script)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        found = None
        while found is None:
            line = server.stdout.readline()  # type: ignore[union-attr]
            assert line, "the stand-in server ended before starting the kernel"
            found = re.search(r"KERNEL_PID (\d+)", line)
        kernel_pid = int(found.group(1))
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(kernel_pid)], capture_output=True, text=True).stdout.split()]
        assert workers, "the step left a warm worker under the kernel"
        server.kill()
        server.wait()
        deadline = time.monotonic() + 60
        alive = [kernel_pid, *workers]
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [p for p in alive if Path(f"/proc/{p}").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()]
        assert not alive, f"still running 60 s after the server died: {alive}"
    finally:
        server.kill()
