"""Shared fixtures: a real nbscale kernel started through jupyter_client."""
from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

KERNEL_NAME = os.environ.get("NBSCALE_TEST_KERNEL", "nbscale")
TIMEOUT = 30
ROOT = Path(__file__).resolve().parents[1]


# --- parts of the machine a test needs ----------------------------------------
# A test marked `slurm` needs the single-node cluster scripts/slurm.sh starts.
# Without it the test skips, with the reason -- unless NBSCALE_TEST_SLURM=1
# (scripts/test.sh always exports it): then Slurm is required and its absence
# fails the test, naming why Slurm is not there (slurm-up.log's last lines).
# A test marked `no_skip` (the kernel conformance suite) fails where it would skip.


# (Both markers are declared in pyproject.toml.)


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError as e:
        return f"({path} unreadable: {e.strerror})"
    return "\n".join(text[-lines:]) if text else f"({path} is empty)"


def slurm_missing() -> str | None:
    """Why the test Slurm cluster cannot be used, or None when it can."""
    conf = os.environ.get("SLURM_CONF")
    if not conf:
        why = "SLURM_CONF is not set"
        log = os.environ.get("NBSCALE_SLURM_UP_LOG")
        if log:
            why += f"; scripts/slurm.sh up failed, {log} ends with:\n{_tail(Path(log))}"
        else:
            why += ": run through scripts/test.sh (or `bash scripts/slurm.sh up` and export SLURM_CONF=$PWD/.slurm/slurm.conf)"
        return why
    if not Path(conf).is_file():
        return f"SLURM_CONF={conf} does not exist"
    if not shutil.which("sinfo"):
        return "sinfo is not on PATH (bash scripts/slurm.sh install)"
    r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return f"sinfo failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()}"
    return None


_slurm_state: dict[str, str | None] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slurm") is None:
        return
    if "why" not in _slurm_state:
        _slurm_state["why"] = slurm_missing()
    why = _slurm_state["why"]
    if why is None:
        return
    if os.environ.get("NBSCALE_TEST_SLURM") == "1":
        pytest.fail(f"Slurm is required (NBSCALE_TEST_SLURM=1) and not available: {why}", pytrace=False)
    pytest.skip(f"needs a Slurm cluster: {why}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    rep = outcome.get_result()
    if not rep.skipped or hasattr(rep, "wasxfail"):
        return
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr or "")
    reason = re.sub(r"^Skipped(:\s*|$)", "", reason.strip()).strip()  # pytest.skip() with no reason says "Skipped"
    if item.get_closest_marker("no_skip") is not None:
        rep.outcome = "failed"
        rep.longrepr = f"{item.nodeid} skipped, and a skip of this test is a failure: {reason or '(no reason given)'}"
    elif not reason:
        rep.outcome = "failed"
        rep.longrepr = f"{item.nodeid} skipped without a reason: say why (pytest.skip(reason=...))"


class KernelSession:
    """A kernel plus helpers that collect every message of one request."""

    def __init__(self, cwd: str | None = None, env: dict[str, str] | None = None) -> None:
        """`env`: variables the kernel gets on top of this process's environment."""
        extra = {"env": {**os.environ, **env}} if env else {}
        self.km, self.kc = start_new_kernel(kernel_name=KERNEL_NAME, cwd=cwd, **extra)

    def collect(self, msg_id: str, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """iopub messages for msg_id until its idle status."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no idle status for {msg_id}; got {[m['msg_type'] for m in out]}")
            msg = self.kc.get_iopub_msg(timeout=remaining)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return out
            out.append(msg)

    def shell_reply(self, msg_id: str, timeout: float = TIMEOUT, waiting_for: str = "") -> dict[str, Any]:
        """The shell reply to msg_id. A time limit here only guards against a hang: it fails
        with `waiting_for` (what the test expected to happen) rather than a bare queue.Empty."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"{waiting_for or 'no reply'}: no execute_reply within {timeout:g} s") from None
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def wait_stream(self, msg_id: str, pattern: str, timeout: float = 60, what: str = "") -> tuple[re.Match[str], list[dict[str, Any]]]:
        """Reads msg_id's iopub messages until one of its stream outputs matches `pattern`: the
        match, and the messages read up to and including it. Fails clearly after `timeout` s
        (only a guard against a hang: the test waits for the event, not for a time)."""
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise queue.Empty
                msg = self.kc.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                raise TimeoutError(f"{what or repr(pattern)}: not seen within {timeout:g} s; got {[m['msg_type'] for m in seen]}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            seen.append(msg)
            if msg["msg_type"] == "stream" and (m := re.search(pattern, msg["content"]["text"])):
                return m, seen

    def run(self, code: str, timeout: float = TIMEOUT, **kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        msg_id = self.kc.execute(code, **kw)
        reply = self.shell_reply(msg_id, timeout)
        return reply, self.collect(msg_id, timeout)

    def timed(self, code: str, timeout: float = TIMEOUT) -> list[tuple[float, dict[str, Any]]]:
        """Runs a cell that must succeed; its iopub messages with the seconds since the request
        at which each arrived (for tests that output is live, not one burst at the end)."""
        msg_id = self.kc.execute(code)
        t0 = time.monotonic()
        seen: list[tuple[float, dict[str, Any]]] = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            seen.append((time.monotonic() - t0, msg))
        assert self.shell_reply(msg_id)["content"]["status"] == "ok", [m["content"] for _, m in seen if m["msg_type"] == "error"]
        return seen

    def stdout(self, msgs: list[dict[str, Any]]) -> str:
        return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")

    def drain_iopub(self) -> None:
        while True:
            try:
                self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                return

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


@pytest.fixture(scope="module")
def kernel() -> Any:
    k = KernelSession()
    yield k
    k.close()


@pytest.fixture()
def fresh_kernel(tmp_path: Any) -> Any:
    k = KernelSession(cwd=str(tmp_path))
    yield k
    k.close()


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def stderr(msgs: list[dict[str, Any]]) -> str:
    """Everything a request wrote to stderr."""
    return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")


def ok(k: KernelSession, code: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Runs a cell that must succeed; returns its iopub messages."""
    reply, msgs = k.run(code, timeout=timeout)
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert reply["content"]["status"] == "ok", (reply["content"], errors)
    return msgs


def fails(k: KernelSession, code: str, timeout: float = 60) -> dict[str, Any]:
    """Runs a cell that must fail with one error; returns its content plus the
    traceback as plain `text`, the cell's `stderr` and all its `msgs`."""
    reply, msgs = k.run(code, timeout=timeout)
    assert reply["content"]["status"] == "error", reply["content"]
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert len(errors) == 1, msgs
    content = dict(errors[0])
    content["text"] = ANSI.sub("", "\n".join(content["traceback"]))
    content["stderr"] = stderr(msgs)
    content["msgs"] = msgs
    return content


class LoggedKernel(KernelSession):
    """A kernel whose own stderr (its diagnostics log) goes to a file the test reads."""

    def __init__(self, cwd: Path) -> None:
        self.log_path = cwd / "kernel-stderr.log"
        self.log_file = self.log_path.open("w")
        self.km, self.kc = start_new_kernel(kernel_name=KERNEL_NAME, cwd=str(cwd), stderr=self.log_file)

    def log(self) -> str:
        return self.log_path.read_text()

    def close(self) -> None:
        super().close()
        self.log_file.close()


def value(k: KernelSession, expr: str) -> str:
    """text/plain of the one execute_result of `expr`."""
    msgs = ok(k, expr)
    results = [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"]
    assert len(results) == 1, msgs
    return results[0]
