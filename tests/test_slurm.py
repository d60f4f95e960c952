"""`%%step --on slurm` (issue 8) against the single-node Slurm that scripts/test.sh
starts (scripts/slurm.sh): the step runs as a real Slurm job through the
datastore transport, its output streams into the cell while the job runs, its
results come back typed, and Slurm's failures read as the user's problem and fix."""
from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import time
from typing import Any, Iterator

import pytest

from conftest import KernelSession, ok, value
from conftest import fails as failing_cell

# Skips without the cluster, fails without it when NBSCALE_TEST_SLURM=1 (conftest.py).
pytestmark = pytest.mark.slurm

STEP_STATUS_MIME = "application/vnd.nbscale.step+json"


@pytest.fixture(scope="module")
def k(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelSession]:
    session = KernelSession(cwd=str(tmp_path_factory.mktemp("slurm")))
    yield session
    session.close()


def fails(k: KernelSession, code: str, timeout: float = 60) -> dict[str, Any]:
    content = failing_cell(k, code, timeout)
    content["displays"] = displays(content["msgs"])
    return content


def displays(msgs: list[dict[str, Any]]) -> list[str]:
    """text/plain of every display (and update) but the kernel's own step-status bundle."""
    return [
        m["content"]["data"].get("text/plain", "")
        for m in msgs
        if m["msg_type"] in ("display_data", "update_display_data") and STEP_STATUS_MIME not in m["content"]["data"]
    ]


def job_state(job: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, check=True).stdout
    m = re.search(r"JobState=(\S+)", out)
    assert m, out
    return m.group(1)


def node_cpus(node: str = "localhost") -> int:
    """The CPUs Slurm says the node has (scripts/slurm.sh gives it this machine's `nproc`)."""
    out = subprocess.run(["scontrol", "show", "node", "-o", node], capture_output=True, text=True, check=True).stdout
    m = re.search(r"CPUTot=(\d+)", out)
    assert m, out
    return int(m.group(1))


def test_step_runs_in_a_slurm_job_and_results_come_back_typed(k: KernelSession) -> None:
    ok(k, "const base = 21;")
    ok(k, "const weights = Float64Array.from({ length: 100_000 }, (_, i) => i);")
    msgs = ok(k, "%%step onslurm --on slurm --memory 512M --cpu 1\n"
                 "console.log(`job ${process.env.SLURM_JOB_ID}`);\n"
                 "const jobId: string = process.env.SLURM_JOB_ID ?? \"none\";\n"
                 "const answer = base * 2;\n"
                 "const scaled = weights.map((w) => w * 2);\n"
                 "const info = { node: process.env.SLURMD_NODENAME, step: process.env.NBSCALE_STEP };\n"
                 "await new Promise((r) => setTimeout(r, 1500));")
    out = k.stdout(msgs)
    m = re.fullmatch(r"job (\d+)\n", out)
    assert m, out
    job = m.group(1)
    # The worker itself saw SLURM_JOB_ID, and it came back as a typed string.
    assert value(k, "jobId") == f"'{job}'"
    assert job_state(job) == "COMPLETED"
    assert value(k, "answer") == "42"
    assert value(k, "scaled instanceof Float64Array && scaled[99_999] === 199_998") == "true"
    assert value(k, "info.node + ' ' + info.step") == "'localhost onslurm'"
    err = fails(k, "const wrong: number = jobId;")
    assert err["ename"] == "TSError" and "not assignable to type 'number'" in err["evalue"]
    # The cell showed the job's progress through the queue.
    lines = displays(msgs)
    assert lines[0].startswith(f"Slurm job {job}: submitted"), lines
    assert any(f"Slurm job {job}: RUNNING on localhost" in line for line in lines), lines
    assert f"Slurm job {job}: COMPLETED on localhost" in lines[-1], lines
    status = [m for m in msgs if m["msg_type"] in ("display_data", "update_display_data") and STEP_STATUS_MIME in m["content"]["data"]]
    final = status[-1]["content"]["data"][STEP_STATUS_MIME]
    assert final["state"] == "succeeded" and final["jobId"] == job and final["target"] == "slurm"


def test_output_streams_while_the_job_runs(k: KernelSession, tmp_path: Any) -> None:
    # The body holds the worker's main thread until a file exists that the test creates only
    # once the output written before has reached the cell: output that arrived in one burst at
    # the end would never release it (the job gives up after 60 s and says so). Jobs run on
    # this host and see its files (as the retries tests below rely on too).
    release = str(tmp_path / "release-live")
    code = ("%%step live --on slurm --memory 512M\n"
            "import { display } from \"nbscale\";\n"
            "import * as fs from \"fs\";\n"
            "console.log(\"started\");\n"
            "display.create().text(\"progress 1\");\n"
            "const until = Date.now() + 60_000;\n"
            f"while (!fs.existsSync({json.dumps(release)}) && Date.now() < until) {{}}\n"
            f"console.log(fs.existsSync({json.dumps(release)}) ? \"finished\" : \"never released\");\n"
            "const liveJob = process.env.SLURM_JOB_ID!;")
    msg_id = k.kc.execute(code)
    before: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    while not any(m["msg_type"] == "display_data" and m["content"]["data"].get("text/plain") == "progress 1" for m in before):
        try:
            assert time.monotonic() < deadline
            msg = k.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        except (AssertionError, queue.Empty):
            raise AssertionError(f"the step's display did not arrive within 120 s: {[m['msg_type'] for m in before]}") from None
        if msg["parent_header"].get("msg_id") == msg_id:
            before.append(msg)
    with open(release, "w"):
        pass
    reply = k.shell_reply(msg_id, timeout=120, waiting_for="the job did not end after its release")
    assert reply["content"]["status"] == "ok", reply["content"]
    seen = before + k.collect(msg_id)
    texts = [m["content"]["text"] for m in seen if m["msg_type"] == "stream"]
    assert "started\n" in texts and "finished\n" in texts, texts
    assert "started\n" in [m["content"]["text"] for m in before if m["msg_type"] == "stream"], "output arrived in one burst"


def test_exception_in_the_job_points_at_the_cell_line(k: KernelSession) -> None:
    ok(k, "const base = 21;")  # a value from before the failing job, which it must leave alone
    err = fails(k, "%%step boom --on slurm --memory 512M\n"
                   "const a = 1;\n"
                   "if (a > 0) throw new RangeError(\"too big\");\n"
                   "const b = 2;")
    assert err["ename"] == "RangeError" and err["evalue"] == "too big", err
    assert "Slurm job" in err["text"] and "on localhost" in err["text"]
    assert value(k, "base") == "21"


def test_over_memory_job_gets_the_memory_advice(k: KernelSession) -> None:
    ok(k, "const answer = 42;")  # a value from before the job that runs out of memory
    # Buffers live outside V8's heap: Slurm (OverMemoryKill) is what stops this job.
    err = fails(k, "%%step hog --on slurm --memory 300M\n"
                   "const keep: Buffer[] = [];\n"
                   "for (let i = 0; i < 40; i++) {\n"
                   "  keep.push(Buffer.alloc(64 * 1024 * 1024, 1));\n"
                   "  await new Promise((r) => setTimeout(r, 150));\n"
                   "}\n"
                   "const n = keep.length;", timeout=90)
    assert err["ename"] == "StepOutOfMemory", err
    m = re.match(r"step `hog` ran out of memory: it used about (\d+) MiB of the 300 MiB it asked for; re-run with `--memory (\w+)`", err["evalue"])
    assert m, err["evalue"]
    assert int(m.group(1)) >= 300
    assert "Slurm killed the job for exceeding its memory limit" in err["text"]
    assert value(k, "answer") == "42"


def test_request_no_node_can_satisfy_names_the_largest_node(k: KernelSession) -> None:
    # Refused by Slurm at submission, not left PENDING: fails() waits at most 60 s.
    cpus = node_cpus()
    err = fails(k, "%%step huge --on slurm --memory 900G\nconst x = 1;")
    assert err["ename"] == "StepResourceError", err
    assert re.search(rf"asks for --memory 900G, but no node in the cluster can give that: the largest node, localhost, has \d+ GiB of memory and {cpus} CPUs", err["evalue"]), err["evalue"]
    assert "Memory specification can not be satisfied" in err["text"]
    wide = cpus + 1
    err = fails(k, f"%%step wide --on slurm --cpu {wide}\nconst x = 1;")
    assert err["ename"] == "StepResourceError" and f"--cpu {wide}" in err["evalue"] and f"{cpus} CPUs" in err["evalue"], err


def streamed_job_id(k: KernelSession, msg_id: str, pattern: str) -> str | None:
    """The job id a running step prints (first match of `pattern` in its stdout), within 60 s."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        msg = k.kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            m = re.search(pattern, msg["content"]["text"])
            if m:
                return m.group(1)
    return None


def test_interrupt_cancels_the_job_with_scancel(k: KernelSession) -> None:
    ok(k, "const base = 21;")  # a value from before the interrupted job
    msg_id = k.kc.execute("%%step sleepy --on slurm --memory 256M\n"
                          "console.log(`job ${process.env.SLURM_JOB_ID}`);\n"
                          "await new Promise((r) => setTimeout(r, 120_000));\n"
                          "const never = 1;")
    job = streamed_job_id(k, msg_id, r"^job (\d+)")
    assert job is not None
    assert job_state(job) == "RUNNING"
    k.km.interrupt_kernel()
    # The job sleeps 120 s: a reply within 60 s comes from the interrupt.
    reply = k.shell_reply(msg_id, timeout=60, waiting_for="interrupt did not stop the Slurm step")
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    msgs = k.collect(msg_id)
    stderr = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
    assert f"Slurm job {job} was cancelled with scancel" in stderr, stderr
    assert any("cancelled with scancel" in line for line in displays(msgs))
    assert job_state(job) in ("CANCELLED", "COMPLETING")
    # The kernel and its state are intact, and the next job runs.
    assert value(k, "base") == "21"
    ok(k, "%%step after --on slurm --memory 256M\nconst again = base + 1;")
    assert value(k, "again") == "22"


def test_job_cancelled_outside_the_notebook_says_so(k: KernelSession) -> None:
    ok(k, "const base = 21;")  # a value from before the cancelled job
    msg_id = k.kc.execute("%%step victim --on slurm --memory 256M\n"
                          "console.log(`job ${process.env.SLURM_JOB_ID}`);\n"
                          "await new Promise((r) => setTimeout(r, 120_000));\n"
                          "const never = 1;")
    job = None
    while job is None:
        msg = k.kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            m = re.match(r"job (\d+)", msg["content"]["text"])
            job = m.group(1) if m else None
    subprocess.run(["scancel", job], check=True)
    reply = k.shell_reply(msg_id, timeout=60)
    assert reply["content"]["ename"] == "StepCancelled", reply["content"]
    assert f"Slurm job {job} on localhost was cancelled from outside (scancel, or an administrator)" in reply["content"]["evalue"]
    k.collect(msg_id)
    assert value(k, "base") == "21"


def test_foreach_runs_as_one_job_array_with_parallel_limit(k: KernelSession) -> None:
    ok(k, "const seeds = [1, 2, 3, 4];")
    msgs = ok(k, "%%step sweep --on slurm --foreach seeds --parallel 2 --memory 256M\n"
                 "console.log(`task ${process.env.SLURM_ARRAY_TASK_ID}`);\n"
                 "const arrayJob: string = process.env.SLURM_ARRAY_JOB_ID ?? \"none\";\n"
                 "const taskId = Number(process.env.SLURM_ARRAY_TASK_ID);\n"
                 "await new Promise((r) => setTimeout(r, 1000));\n"
                 "const sq = item * item;", timeout=90)
    # Results in item order, typed as arrays of the body's types.
    assert value(k, "JSON.stringify(sq)") == "'[1,4,9,16]'"
    assert value(k, "JSON.stringify(taskId)") == "'[0,1,2,3]'"
    err = fails(k, "const wrong: string[] = sq;")
    assert err["ename"] == "TSError" and "number[]" in err["evalue"], err
    # One array job for every item, throttled by --parallel (the `%2` of --array).
    jobs = value(k, "JSON.stringify([...new Set(arrayJob)])")
    m = re.fullmatch(r"'\[\"(\d+)\"\]'", jobs)
    assert m, jobs
    job = m.group(1)
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, check=True).stdout
    assert "ArrayTaskThrottle=2" in out, out
    assert f"Slurm array job {job}: 4 items, at most 2 at once" in displays(msgs)[0], displays(msgs)
    # Each item's output is prefixed with its index, as for local workers.
    assert sorted(k.stdout(msgs).splitlines()) == [f"[{i}] task {i}" for i in range(4)]
    status = [m for m in msgs if m["msg_type"] in ("display_data", "update_display_data") and STEP_STATUS_MIME in m["content"]["data"]]
    final = status[-1]["content"]["data"][STEP_STATUS_MIME]
    assert final["state"] == "succeeded" and final["foreach"] == {"done": 4, "running": 0, "failed": 0, "total": 4}, final
    assert final["jobId"] == job and final["target"] == "slurm", final
    assert any(s["content"]["data"][STEP_STATUS_MIME]["foreach"]["running"] > 0 for s in status), "no progress while items ran"


def test_foreach_array_failing_item_is_reported_by_index_others_kept(k: KernelSession) -> None:
    ok(k, "const seeds = [1, 2, 3, 4];")
    # Item 2 throws; item 1's job dies without a result (Slurm's ending is its error).
    err = fails(k, "%%step halves --on slurm --foreach seeds --parallel 2 --memory 256M\n"
                   "if (index === 1) process.kill(process.pid, \"SIGKILL\");\n"
                   "if (index === 2) throw new RangeError(`bad item ${item}`);\n"
                   "const half = item / 2;", timeout=90)
    assert err["ename"] == "ForeachItemsFailed", err
    assert "2 of 4 items of step `halves` (--foreach seeds) failed: indices 1, 2" in err["evalue"], err["evalue"]
    assert "item 2:" in err["text"] and "RangeError: bad item 3" in err["text"] and "Slurm job" in err["text"], err["text"]
    assert re.search(r"item 1:\n\s+WorkerDied: step `halves\[1\]`: Slurm job \d+_1 on localhost ended FAILED", err["text"]), err["text"]
    assert value(k, "JSON.stringify(half)") == "'[0.5,null,null,2]'"


def test_foreach_array_interrupt_cancels_the_array_job(k: KernelSession) -> None:
    ok(k, "const seeds = [1, 2, 3, 4];")
    msg_id = k.kc.execute("%%step naps --on slurm --foreach seeds --parallel 2 --memory 256M\n"
                          "console.log(`array ${process.env.SLURM_ARRAY_JOB_ID}`);\n"
                          "await new Promise((r) => setTimeout(r, 120_000));\n"
                          "const never = item;")
    job = streamed_job_id(k, msg_id, r"array (\d+)")
    assert job is not None
    k.km.interrupt_kernel()
    # The items sleep 120 s: a reply within 60 s comes from the interrupt.
    reply = k.shell_reply(msg_id, timeout=60, waiting_for="interrupt did not stop the Slurm array")
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    msgs = k.collect(msg_id)
    stderr = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
    assert f"Slurm array job {job} was cancelled with scancel" in stderr, stderr
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, check=True).stdout
    states = re.findall(r"JobState=(\S+)", out)
    assert states and all(s in ("CANCELLED", "COMPLETING") for s in states), out
    # The kernel is intact: the list the foreach ran over is still there.
    assert value(k, "seeds.length") == "4"


def test_lazy_inputs_are_read_by_slurm_jobs_from_the_datastore(tmp_path: Any) -> None:
    # A Lazy handle points into the kernel's datastore, which Slurm jobs read on the shared
    # filesystem: a single step and a job array get the value itself, never through the kernel.
    s = KernelSession(cwd=str(tmp_path), env={"NBSCALE_LAZY_BYTES": "1M"})
    try:
        out = s.stdout(ok(s, "%%step big\nconst big = new Float64Array(2_000_000).fill(1.5);"))
        assert "stays in the datastore" in out, out
        ok(s, "%%step one --on slurm --memory 512M\nconst total = big.reduce((a, b) => a + b, 0);", timeout=180)
        assert value(s, "total") == "3000000"
        ok(s, "%%step each --on slurm --foreach [1,2] --memory 512M\nconst x = big[7] * item;", timeout=180)
        assert value(s, "JSON.stringify(x)") == "'[1.5,3]'"
        sha = value(s, "big.sha256").strip("'")
        # The value's blob damaged (same size, wrong bytes): the job's worker refuses it, naming it.
        blob = tmp_path / ".nbscale" / "blobs" / "sha256" / sha[:2] / sha
        good = blob.read_bytes()
        bad = bytearray(good)
        bad[len(bad) // 2] ^= 0xFF
        blob.chmod(0o644)
        blob.write_bytes(bytes(bad))
        for code in ["%%step damaged --on slurm --memory 512M\nconst y = big[0];", "%%step damaged_each --on slurm --foreach [1] --memory 512M\nconst z = big[0] * item;"]:
            err = failing_cell(s, code)
            text = err["evalue"] + "\n" + err["text"]
            assert "big" in text and sha[:12] in text, (code, err)
        blob.write_bytes(good)
        # The value's blob removed from the store: refused before anything is submitted, naming it.
        (tmp_path / ".nbscale" / "blobs" / "sha256" / sha[:2] / sha).unlink()
        err = failing_cell(s, "%%step gone --on slurm --memory 512M\nconst y = big[0];")
        assert err["ename"] == "LazyInput" and "`big`" in err["evalue"] and "not in the datastore" in err["evalue"], err
        assert "Slurm" in err["evalue"]
    finally:
        s.close()


def test_a_jobs_output_past_the_log_limit_stays_in_its_own_output_file(tmp_path: Any) -> None:
    # NBSCALE_LOG_BYTES reaches the job with the kernel's environment (sbatch --export=ALL).
    s = KernelSession(cwd=str(tmp_path), env={"NBSCALE_LOG_BYTES": "64K"})
    try:
        lines = 3000  # 300 KB of 100-byte lines
        msgs = ok(s, "%%step chatty --on slurm --memory 512M\n"
                     f"for (let i = 0; i < {lines}; i++) console.log(String(i).padStart(99, \".\"));\n"
                     "const said = true;", timeout=180)
        shown = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")
        errs = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
        assert len(shown.encode()) <= 64 * 1024, len(shown.encode())
        assert shown.startswith("." * 98 + "0\n")
        assert "printed more than 65.5 kB (NBSCALE_LOG_BYTES)" in errs and "job's own output" in errs, errs[-500:]
        # All of it is in the job's output file, next to its task in the datastore (as for a flow step:
        # one remote worker), so what was not shipped is there too.
        outs = list((tmp_path / ".nbscale" / "tasks").glob("*/slurm-*.out"))
        assert len(outs) == 1, outs
        own = "".join(line for line in outs[0].read_text().splitlines(keepends=True) if not line.startswith("[nbscale"))
        expected = "".join(str(i).rjust(99, ".") + "\n" for i in range(lines))
        assert own == expected and expected.startswith(shown), (shown[-120:], own[:120])
        # Only the shipped part went through the datastore's event chunks.
        events = sum(p.stat().st_size for p in (tmp_path / ".nbscale" / "tasks").glob("*/events/**/*") if p.is_file())
        assert events < 100 * 1024, events
    finally:
        s.close()


def test_retries_run_a_job_that_died_under_the_step_again_as_a_new_job(k: KernelSession, tmp_path: Any) -> None:
    marker = tmp_path / "died-once"
    # The first job's worker is killed (as by a lost node or the OOM killer of another job); the second finishes.
    body = (f"const fs = require(\"fs\");\n"
            f"if (!fs.existsSync({str(marker)!r})) {{ fs.writeFileSync({str(marker)!r}, process.env.SLURM_JOB_ID!); process.kill(process.pid, \"SIGKILL\"); }}\n"
            "const survivedJob: string = process.env.SLURM_JOB_ID!;")
    msgs = ok(k, f"%%step flaky --on slurm --memory 512M --retries 2\n{body}", timeout=180)
    err = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
    first = marker.read_text()
    assert re.search(rf"step `flaky`: attempt 1 of 3 failed \(.*Slurm job {first}.*\); retrying as a new Slurm job", err), err
    assert "succeeded on attempt 2 of 3" in err, err
    second = value(k, "survivedJob").strip("'")
    assert second != first and job_state(second) == "COMPLETED"
    # Without --retries the same death is the cell's error, with the job's ending.
    marker.unlink()
    e = fails(k, f"%%step flaky2 --on slurm --memory 512M\n{body}", timeout=120)
    assert e["ename"] == "WorkerDied" and marker.read_text() in e["evalue"], e


@pytest.mark.timeout(600)  # two array jobs, 240 s allowed for the cell
def test_retries_run_the_array_items_whose_jobs_died_again_and_keep_the_others(k: KernelSession, tmp_path: Any) -> None:
    marker = tmp_path / "item-died-once"
    msgs = ok(k, "%%step flakyeach --on slurm --memory 512M --foreach [10,20,30] --retries 1\n"
                 "const fs = require(\"fs\");\n"
                 f"if (index === 1 && !fs.existsSync({str(marker)!r})) {{ fs.writeFileSync({str(marker)!r}, process.env.SLURM_ARRAY_JOB_ID!); process.kill(process.pid, \"SIGKILL\"); }}\n"
                 "const doubled = item * 2;\n"
                 "const arrayJob: string = process.env.SLURM_ARRAY_JOB_ID!;", timeout=240)
    err = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
    assert re.search(r"step `flakyeach\[1\]`: attempt 1 of 2 failed \(.*\); retrying", err), err
    assert value(k, "JSON.stringify(doubled)") == "'[20,40,60]'"
    jobs = value(k, "JSON.stringify(arrayJob)")
    first = marker.read_text()
    arrays = re.findall(r"\d+", jobs)
    assert arrays[0] == first and arrays[2] == first and arrays[1] != first, (jobs, first)
    shown = displays(msgs)
    assert any(re.search(r"Slurm array job \d+: 1 item \(item 1, attempt 2 of 2\)", t) for t in shown), shown
