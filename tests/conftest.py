"""Shared fixtures: a real nbscale kernel started through jupyter_client."""
from __future__ import annotations

import os
import queue
import re
import time
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

KERNEL_NAME = os.environ.get("NBSCALE_TEST_KERNEL", "nbscale")
TIMEOUT = 30


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

    def shell_reply(self, msg_id: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            reply = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

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


def value(k: KernelSession, expr: str) -> str:
    """text/plain of the one execute_result of `expr`."""
    msgs = ok(k, expr)
    results = [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"]
    assert len(results) == 1, msgs
    return results[0]
