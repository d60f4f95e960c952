"""How a kernel ends: after shutdown_request, restart, its parent's death or
SIGTERM, the kernel process exits by itself with status 0 (or by the signal),
and its stderr holds no native abort from zeromq's teardown (`terminate
called after throwing an instance of 'Napi::Error'`, which a process exiting
while its io thread still holds sockets prints before SIGABRT)."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from jupyter_client import KernelManager

from conftest import KERNEL_NAME

ABORT_TEXT = ("terminate called", "Napi::Error", "Aborted", "core dumped", "FATAL ERROR")


def start(tmp_path: Path, name: str = "kernel") -> tuple[KernelManager, Any, Path, Any]:
    """A kernel whose stderr goes to a file; (manager, client, stderr path, process)."""
    err_path = tmp_path / f"{name}.stderr"
    err = open(err_path, "w")  # stays open: a restart starts the next kernel with it
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel(stderr=err, cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc, err_path, km.provisioner.process


def run_ok(kc: Any, code: str) -> None:
    reply = kc.execute_interactive(code, timeout=60, output_hook=lambda m: None)
    assert reply["content"]["status"] == "ok", reply["content"]


def assert_clean(err_path: Path) -> None:
    text = err_path.read_text()
    assert not any(t in text for t in ABORT_TEXT), text


# A step makes the kernel use its worker pool (a worker process with its own
# zeromq io thread) as well as its own io thread.
STEP_CELL = "%%step warm --on local\nconst fromWorker = 6 * 7;"


def test_shutdown_request_exits_with_status_0_and_no_native_abort(tmp_path: Path) -> None:
    km, kc, err, proc = start(tmp_path)
    run_ok(kc, "const a = 1;")
    run_ok(kc, STEP_CELL)
    run_ok(kc, "console.error('still here'); setTimeout(() => console.log('late'), 5)")
    km.shutdown_kernel(now=False)  # shutdown_request; a kernel that stays is killed (non-zero status)
    kc.stop_channels()
    assert proc.wait(timeout=30) == 0, err.read_text()
    assert_clean(err)


def test_restart_ends_the_old_kernel_with_status_0_and_the_new_one_works(tmp_path: Path) -> None:
    km, kc, err, old = start(tmp_path)
    run_ok(kc, STEP_CELL)
    km.restart_kernel(now=False)
    assert old.wait(timeout=30) == 0, err.read_text()
    kc.wait_for_ready(timeout=60)
    new = km.provisioner.process
    assert new.pid != old.pid
    run_ok(kc, "const b = 2;")
    km.shutdown_kernel(now=False)
    kc.stop_channels()
    assert new.wait(timeout=30) == 0, err.read_text()
    assert_clean(err)


def test_shutdown_while_a_cell_is_busy_exits_with_status_0(tmp_path: Path) -> None:
    km, kc, err, proc = start(tmp_path)
    msg_id = kc.execute("while (true) {}")
    while not (lambda m: m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "execute_input")(kc.get_iopub_msg(timeout=30)):
        pass  # the loop is about to run; shutdown interrupts it
    km.shutdown_kernel(now=False)
    kc.stop_channels()
    assert proc.wait(timeout=30) == 0, err.read_text()
    assert_clean(err)


def test_sigterm_ends_the_kernel_without_native_abort(tmp_path: Path) -> None:
    km, kc, err, proc = start(tmp_path)
    run_ok(kc, STEP_CELL)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM), err.read_text()
    kc.stop_channels()
    km.cleanup_resources()
    assert_clean(err)


PARENT = textwrap.dedent(
    """
    import sys, time
    from jupyter_client import KernelManager
    err = open(sys.argv[1], "w")
    km = KernelManager(kernel_name=sys.argv[2])
    km.start_kernel(stderr=err, cwd=sys.argv[3])
    kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=60)
    reply = kc.execute_interactive(sys.argv[4], timeout=60, output_hook=lambda m: None)
    assert reply["content"]["status"] == "ok", reply["content"]
    print(km.provisioner.process.pid, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs prctl(PR_SET_CHILD_SUBREAPER)")
def test_a_kernel_whose_parent_dies_exits_with_status_0_and_no_native_abort(tmp_path: Path) -> None:
    # This test process becomes the orphaned kernel's new parent, so it can
    # read the kernel's exit status (PR_SET_CHILD_SUBREAPER = 36).
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(36, 1, 0, 0, 0) == 0
    try:
        err = tmp_path / "orphan.stderr"
        script = tmp_path / "parent.py"
        script.write_text(PARENT)
        parent = subprocess.Popen([sys.executable, str(script), str(err), KERNEL_NAME, str(tmp_path), STEP_CELL],
                                  stdout=subprocess.PIPE, text=True)
        pid = int(parent.stdout.readline())  # type: ignore[union-attr]
        parent.kill()  # the Jupyter server dies without shutting the kernel down
        parent.wait()
        deadline = time.monotonic() + 30
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, "the orphaned kernel did not exit"
            time.sleep(0.1)
        assert os.waitstatus_to_exitcode(status) == 0, err.read_text()
        assert "is gone; the kernel exits" in err.read_text()
        assert_clean(err)
    finally:
        libc.prctl(36, 0, 0, 0, 0)
