"""`%%step` on local workers (issue 3), through the real kernel over jupyter_client:
packaging, live output, typed results, failures a user must understand, the pool."""
from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import KernelSession, ok, fails, value, stderr

STEP_STATUS_MIME = "application/vnd.nbscale.step+json"


@pytest.fixture(scope="module")
def k(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelSession]:
    session = KernelSession(cwd=str(tmp_path_factory.mktemp("steps")))
    yield session
    session.close()


def wait_gone(pid: int, what: str, timeout: float = 60) -> None:
    """Waits for the process to be gone (killed and reaped); fails clearly after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, f"{what} (pid {pid}) still exists {timeout:g} s later"
        time.sleep(0.05)


def test_issue_example_function_from_one_cell_reads_const_from_another(k: KernelSession) -> None:
    ok(k, "const base = 10;")
    ok(k, "function scale(x: number) { return x * base; }")
    ok(k, "const data = Float64Array.from({ length: 1_000_000 }, (_, i) => i);")
    msgs = ok(k, "%%step demo --on local --memory 2G --cpu 1\n"
                 "const total = data.reduce((a, b) => a + scale(b), 0);\n"
                 "console.log(\"done\", process.pid);")
    out = k.stdout(msgs)
    assert out.startswith("done ")
    worker_pid = int(out.split()[1])
    assert worker_pid != int(value(k, "process.pid"))
    assert value(k, "total") == str(sum(range(1_000_000)) * 10)
    # 8 MB each way, out of band (spilled through the kernel's private data directory).
    ok(k, "%%step doubling\nconst doubled = data.map((x) => x * 2);")
    assert value(k, "doubled instanceof Float64Array && doubled.length === 1_000_000 && doubled[999_999] === 1_999_998") == "true"
    assert value(k, "data[999_999]") == "999999"


def test_results_come_back_typed(k: KernelSession) -> None:
    ok(k, "%%step typed\n"
          "interface Point { x: number; label: string }\n"
          "const pts: Point[] = [{ x: 1, label: \"a\" }, { x: 2, label: \"b\" }];\n"
          "const count = pts.length;\n"
          "function twice(n: number) { return n * 2; }\n"
          "const hidden_inside = (() => { const notBack = 1; return notBack + 1; })();")
    err = fails(k, "const s: string = count;")
    assert err["ename"] == "TSError" and "not assignable to type 'string'" in err["evalue"]
    ok(k, "const n: number = count; const l: string = pts[1].label;")
    assert value(k, "twice(pts[1].x)") == "4"
    assert "Cannot find name 'notBack'" in fails(k, "notBack")["evalue"]
    msg_id = k.kc.complete("count.toF", 9)
    reply = k.shell_reply(msg_id)
    assert "toFixed" in reply["content"]["matches"]


def test_output_streams_while_the_step_runs(k: KernelSession, tmp_path: Path) -> None:
    # The body's synchronous loop holds the worker's main thread until a file exists that the
    # test creates only once the output before the loop has reached it: output that arrived in
    # one burst at the end would never release the loop (it gives up after 60 s and says so).
    release = json.dumps(str(tmp_path / "release"))
    code = ("%%step live\n"
            "import { display } from \"nbscale\";\n"
            "import * as fs from \"fs\";\n"
            "console.log(\"started\");\n"
            "const h = display.create();\n"
            "h.text(\"progress 0\");\n"
            "h.text(\"progress 1\");\n"
            "console.error(\"warned\");\n"
            "const until = Date.now() + 60_000;\n"
            f"while (!fs.existsSync({release}) && Date.now() < until) {{}}\n"
            f"console.log(fs.existsSync({release}) ? \"finished\" : \"never released\");")
    msg_id = k.kc.execute(code)
    _, before = k.wait_stream(msg_id, "warned|finished|never released", what="no output from the step")
    (tmp_path / "release").write_text("")
    reply = k.shell_reply(msg_id, timeout=90, waiting_for="the step did not end after its release")
    assert reply["content"]["status"] == "ok", reply["content"]
    seen = before + k.collect(msg_id)
    outputs = [
        m for m in seen
        if m["msg_type"] in ("stream", "display_data", "update_display_data")
        and STEP_STATUS_MIME not in m["content"].get("data", {})  # the kernel's own step-status display
    ]
    kinds = [(m["msg_type"], m["content"].get("text") or m["content"]["data"]["text/plain"]) for m in outputs]
    assert kinds == [
        ("stream", "started\n"),
        ("display_data", "progress 0"),
        ("update_display_data", "progress 1"),
        ("stream", "warned\n"),
        ("stream", "finished\n"),
    ]
    # "warned" came before the loop ended: it is among what was read before the release.
    assert any(m["msg_type"] == "stream" and m["content"]["text"] == "warned\n" for m in before), "output arrived in one burst"
    ids = {m["content"]["transient"]["display_id"] for m in outputs if m["msg_type"] != "stream"}
    assert len(ids) == 1


def test_exception_is_mapped_to_cell_lines(k: KernelSession) -> None:
    ok(k, "const base = 10;")  # a value from before the failing steps, which they must leave alone
    ok(k, "function check(v: number) {\n  if (v > 2) throw new RangeError(`too big: ${v}`);\n  return v;\n}")
    err = fails(k, "%%step boom\n"
                   "const a = 1;\n"
                   "const b = check(a + 5);")
    assert err["ename"] == "RangeError" and err["evalue"] == "too big: 6"
    assert "at check (from cell" in err["text"] and "line 2)" in err["text"]
    assert "cell, line 3" in err["text"]
    assert "const b = check(a + 5);" in err["text"]
    err = fails(k, "%%step boom2\n\nconst z = 1;\nthrow new Error(\"plain\");")
    assert err["evalue"] == "plain" and "cell, line 4" in err["text"]
    assert value(k, "base") == "10"


def test_type_error_in_step_runs_nothing(k: KernelSession) -> None:
    err = fails(k, "%%step typo\nconsole.log(\"ran\");\nconst q: number = \"no\";")
    assert err["ename"] == "TSError" and err["evalue"].startswith("3:")


def test_out_of_memory_names_use_request_and_fix(k: KernelSession) -> None:
    ok(k, "const total = 1;")  # a value from before the steps that run out of memory
    err = fails(k, "%%step hog --memory 256M\n"
                   "const chunks: Float64Array[] = [];\n"
                   "for (let i = 0; i < 16; i++) chunks.push(new Float64Array(8 * 1024 * 1024).fill(i));\n"
                   "const n = chunks.length;", timeout=60)
    assert err["ename"] == "StepOutOfMemory"
    m = re.match(r"step `hog` ran out of memory: it used about (\d+) MiB of the 256 MiB it asked for; re-run with `--memory (\w+)`", err["evalue"])
    assert m, err["evalue"]
    assert int(m.group(1)) >= 256
    suggested = int(m.group(2)[:-1]) * (1024 if m.group(2).endswith("G") else 1)
    assert suggested >= 512, m.group(2)
    # V8's own heap limit (JavaScript objects, not buffers): same message.
    err = fails(k, "%%step heap --memory 300M\n"
                   "const keep: number[][] = [];\n"
                   "while (true) keep.push(Array.from({ length: 100_000 }, (_, i) => i + 0.5));", timeout=60)
    assert err["ename"] == "StepOutOfMemory" and "of the 300 MiB it asked for; re-run with `--memory" in err["evalue"]
    # Which guard fires first is V8's: Node 20 reaches its heap limit, Node 24's heap grows past the
    # RSS watchdog's line first. Either way the step is named out of memory with the same advice.
    assert "its JavaScript heap hit the limit" in err["text"] or "the memory watchdog stopped its worker" in err["text"], err["text"]
    assert value(k, "total > 0") == "true"


def test_request_beyond_the_machine_fails_at_once(k: KernelSession) -> None:
    err = fails(k, "%%step huge --memory 64T\nconst x = 1;")
    assert err["ename"] == "StepResourceError"
    assert "this machine has" in err["evalue"] and "--on batch" in err["evalue"] and "--on slurm" in err["evalue"]


def test_worker_killed_from_outside(k: KernelSession) -> None:
    msg_id = k.kc.execute("%%step victim\nconsole.log(process.pid);\nawait new Promise((r) => setTimeout(r, 30_000));")
    pid = None
    while pid is None:
        msg = k.kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            pid = int(msg["content"]["text"])
    os.kill(pid, signal.SIGKILL)
    reply = k.shell_reply(msg_id, timeout=60, waiting_for="the cell did not fail after its worker was killed")
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "WorkerDied"
    assert f"pid {pid}" in reply["content"]["evalue"] and "SIGKILL" in reply["content"]["evalue"]
    k.collect(msg_id)
    msgs = ok(k, "%%step after\nconsole.log(process.pid);\nconst fine = 1;")
    assert int(k.stdout(msgs)) != pid
    assert value(k, "fine") == "1"


def test_unserializable_input_is_refused_before_dispatch(k: KernelSession) -> None:
    ok(k, "import * as net from \"net\";\nconst server = net.createServer();\nconst pending = Promise.resolve(1);")
    err = fails(k, "%%step uses_server\nconsole.log(\"ran\");\nconst listening = server.listening;")
    assert err["ename"] == "UnserializableInput"
    assert "`server` (Server)" in err["evalue"] and "live Node.js object" in err["evalue"] and "inside the step" in err["evalue"]
    err = fails(k, "%%step uses_promise\nconst p2 = pending;")
    assert "`pending` (Promise)" in err["evalue"] and "await it" in err["evalue"]
    # In the kernel nothing is copied, so live objects can be used.
    ok(k, "%%step server_here --on kernel\nconst listening = server.listening;")
    assert value(k, "listening") == "false"


def test_timeout_stops_the_step(k: KernelSession) -> None:
    # The body waits an hour: failing at all within the test's 60 s means --timeout stopped it.
    err = fails(k, "%%step slow --timeout 1s\nconsole.log(process.pid);\nawait new Promise((r) => setTimeout(r, 3_600_000));\nconst never = 1;", timeout=60)
    assert err["ename"] == "StepTimeout" and "within its timeout of 1s" in err["evalue"]
    wait_gone(int(k.stdout(err["msgs"])), "the timed-out step's worker")


def test_retries_after_a_worker_death_show_attempts(k: KernelSession) -> None:
    msgs = ok(k, "%%step flaky --retries 2\n"
                 "if (process.env.NBSCALE_ATTEMPT === \"1\") process.kill(process.pid, \"SIGKILL\");\n"
                 "const attempt = Number(process.env.NBSCALE_ATTEMPT);")
    assert value(k, "attempt") == "2"
    assert "attempt 1 of 3 failed" in stderr(msgs) and "succeeded on attempt 2 of 3" in stderr(msgs)
    err = fails(k, "%%step always_slow --retries 1 --timeout 1s\nawait new Promise((r) => setTimeout(r, 20_000));")
    assert err["ename"] == "StepTimeout" and "attempt 2 of 2" in err["text"]


def test_env_applies_to_one_step(k: KernelSession) -> None:
    ok(k, "%%step with_env --env GREETING=hello --env N=3\nconst greeting = `${process.env.GREETING} x${process.env.N}`;")
    assert value(k, "greeting") == "'hello x3'"
    ok(k, "%%step without_env\nconst greeting2 = process.env.GREETING ?? \"unset\";")
    assert value(k, "greeting2") == "'unset'"


def test_on_kernel_has_step_semantics(k: KernelSession) -> None:
    kernel_pid = value(k, "process.pid")
    ok(k, "const arr = [1, 2, 3];")
    msgs = ok(k, "%%step here --on kernel --env MODE=k\n"
                 "console.log(\"in kernel\");\n"
                 "arr.push(4);\n"
                 "const where = process.pid;\n"
                 "const mode = process.env.MODE;\n"
                 "const len = arr.length;")
    assert k.stdout(msgs) == "in kernel\n"
    assert value(k, "where") == kernel_pid
    assert value(k, "mode") == "'k'"
    assert value(k, "len") == "4"
    assert value(k, "arr.length") == "4"  # the session's own object, as in a plain cell
    assert value(k, "typeof process.env.MODE") == "'undefined'"
    err = fails(k, "const s: string = len;")
    assert err["ename"] == "TSError"


def test_interrupt_cancels_the_step_and_keeps_the_kernel(k: KernelSession) -> None:
    ok(k, "const base = 10;")  # a value from before the interrupted step
    msg_id = k.kc.execute("%%step spin\nconsole.log(process.pid);\nwhile (true) {}")
    pid = None
    while pid is None:
        msg = k.kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            pid = int(msg["content"]["text"])
    k.km.interrupt_kernel()
    # The body never ends by itself: any reply at all means the interrupt stopped it.
    reply = k.shell_reply(msg_id, timeout=60, waiting_for="interrupt did not stop the step")
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    k.collect(msg_id)
    wait_gone(pid, "the interrupted step's worker")
    assert value(k, "base") == "10"
    ok(k, "%%step after_interrupt\nconst again = base + 1;")
    assert value(k, "again") == "11"


def test_workers_magic_shows_the_pool(k: KernelSession) -> None:
    ok(k, "%%step sized --memory 512M\nconst sized = 1;")
    out = k.stdout(ok(k, "%workers"))
    lines = out.splitlines()
    assert lines[0].startswith("local workers:")
    assert "pid" in lines[1] and "memory limit" in lines[1] and "state" in lines[1] and "step" in lines[1]
    rows = [l.split() for l in lines[2:]]
    assert any("512" in " ".join(r) and "idle" in r for r in rows), out
    assert all(r[1].isdigit() for r in rows)


def test_bad_options_refused_before_anything_runs(k: KernelSession) -> None:
    err = fails(k, "%%step oops --memroy 1G\nconsole.log(\"ran\");")
    assert err["ename"] == "MagicError" and "--memory" in err["evalue"]
    assert err["stderr"] == ""
