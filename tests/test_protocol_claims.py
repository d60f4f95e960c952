"""Claims of README.md and docs/reliability.md checked over the real Jupyter
protocol: messages with a wrong key or no signature are dropped *and logged*
on the kernel's own stderr; an unhandled rejection (or uncaught exception)
from a cell's timer shows on the stderr of the cell that started it, also
after that cell finished and while another cell runs."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from jupyter_client.session import Session

from conftest import KernelSession, LoggedKernel, value


EXECUTE = {"silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}


def test_messages_with_a_wrong_key_or_no_signature_are_logged_and_not_executed(tmp_path: Path) -> None:
    k = LoggedKernel(tmp_path)
    try:
        pid = value(k, "process.pid")
        shell, control = k.kc.shell_channel.socket, k.kc.control_channel.socket
        code = 'console.log("FORGED-RAN"); (globalThis as any).forged = true'
        forger = Session(key=b"not-the-key", username="mallory")
        forger.send(shell, forger.msg("execute_request", {**EXECUTE, "code": code}))
        unsigned = Session(key=b"", username="mallory")
        unsigned.send(shell, unsigned.msg("execute_request", {**EXECUTE, "code": code}))
        # Control too: a forged shutdown must not end the kernel.
        forger.send(control, forger.msg("shutdown_request", {"restart": False}))
        unsigned.send(control, unsigned.msg("shutdown_request", {"restart": False}))

        # A genuine request after them on each socket: a socket's messages are
        # read in order, so by its reply the forged ones were read and logged.
        k.kc.session.send(control, k.kc.session.msg("kernel_info_request"))
        assert k.kc.control_channel.get_msg(timeout=30)["msg_type"] == "kernel_info_reply"
        assert value(k, "typeof (globalThis as any).forged") == "'undefined'"

        log = k.log()
        assert log.count("[nbscale] dropped message on shell: bad HMAC signature") == 1, log
        assert log.count("[nbscale] dropped message on shell: no HMAC signature") == 1, log
        assert log.count("[nbscale] dropped message on control: bad HMAC signature") == 1, log
        assert log.count("[nbscale] dropped message on control: no HMAC signature") == 1, log
        assert "FORGED-RAN" not in log
        # The forged shutdowns did nothing: the same process answers.
        assert value(k, "process.pid") == pid and k.km.is_alive()
    finally:
        k.close()


def stray_streams(k: KernelSession, text: str, until_idle_of: str | None, timeout: float = 30) -> list[dict[str, Any]]:
    """stderr stream messages holding `text`: read until the first one arrives (until_idle_of None),
    or until the idle status of request `until_idle_of`."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        msg = k.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stderr" and text in msg["content"]["text"]:
            found.append(msg)
            if until_idle_of is None:
                return found
        if (until_idle_of is not None and msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
                and msg["parent_header"].get("msg_id") == until_idle_of):
            return found


def test_a_late_rejection_shows_on_the_stderr_of_the_cell_that_caused_it(fresh_kernel: KernelSession) -> None:
    k = fresh_kernel
    # Cell 1 finishes; 200 ms later its timer's promise rejects with nobody running.
    first = k.kc.execute('setTimeout(() => Promise.reject(new Error("late")), 200);')
    assert k.shell_reply(first)["content"]["status"] == "ok"
    [late] = stray_streams(k, 'Error: late', until_idle_of=None)
    assert late["parent_header"]["msg_id"] == first
    assert "Unhandled promise rejection (the kernel keeps running)" in late["content"]["text"]

    # Cell 2's timer fails while cell 3 runs (cell 3 waits for it): the report goes to cell 2, not 3.
    second = k.kc.execute(
        "const strayDone = new Promise<void>((resolve) => setTimeout(() => {\n"
        '  Promise.reject(new Error("rejected late by cell 2"));\n'
        '  setTimeout(() => { throw new Error("thrown late by cell 2"); }, 0);\n'
        "  setTimeout(resolve, 50);\n"
        "}, 200));"
    )
    assert k.shell_reply(second)["content"]["status"] == "ok"
    third = k.kc.execute("await strayDone; 3")
    found = stray_streams(k, "late by cell 2", until_idle_of=third)
    assert k.shell_reply(third)["content"]["status"] == "ok"
    text = "".join(m["content"]["text"] for m in found)
    assert "Unhandled promise rejection (the kernel keeps running): Error: rejected late by cell 2" in text, text
    assert "Uncaught exception (the kernel keeps running): Error: thrown late by cell 2" in text, text
    assert {m["parent_header"]["msg_id"] for m in found} == {second}, [m["parent_header"]["msg_id"] for m in found]
    assert k.run("1 + 1")[0]["content"]["status"] == "ok" and k.km.is_alive()
