"""`%%step NAME --on batch --foreach EXPR` (issue 7): the items as ONE AWS
Batch array job against moto's server. Control plane: one SubmitJob with
`arrayProperties.size` = the number of items, children polled with
DescribeJobs. Data plane: the container stand-in
(test_batch.run_like_the_container) runs the submitted command once per
child with AWS_BATCH_JOB_ARRAY_INDEX set, as Batch does; each child's
worker picks its own item's task.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import KernelSession
from moto_server import MotoServer
from test_batch import Recorder, aws, env, env_of, error_of, interrupt_while_polled, moto, recorder, registry, run_through_moto_states, run_with_container, statuses, stderr, timed_batch, value_of  # noqa: F401


FOREACH = (
    "%%step squares --on batch --foreach xs --memory 1G\n"
    "console.log(`item ${item} at index ${index}`);\n"
    "if (item === 3) throw new RangeError(`three is bad`);\n"
    "const y = item * item + offset;\n"
)


@pytest.mark.timeout(600)  # array children run one after another by the stand-in
def test_foreach_runs_as_one_array_job_with_ordered_results_and_named_failures(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path) -> None:
    timed_batch(moto, 8)
    xs = [2, 3, 5, 7]
    # Batch starts children in no particular order: the last first here.
    order = list(reversed(range(len(xs))))
    k = KernelSession(cwd=str(tmp_path))
    try:
        assert k.run(f"const xs = {xs}; const offset = 100;")[0]["content"]["status"] == "ok"
        children = [{"AWS_BATCH_JOB_ARRAY_INDEX": str(i), "AWS_BATCH_JOB_ID": f"stand-in:{i}"} for i in order]
        reply, msgs, ran = run_with_container(k, moto, recorder, tmp_path / "container", FOREACH, runs=children, timeout=240)
        procs = dict(zip(order, ran))
        assert reply["content"]["status"] == "error", [m["content"] for m in msgs if m["msg_type"] == "error"]
        # Results in item order; the failed item's slot is undefined; typed from the body.
        assert value_of(k, "JSON.stringify(y)") == "'[104,null,125,149]'", value_of(k, "JSON.stringify(y)")
        r, _ = k.run("const ys: (number | undefined)[] = y;")
        assert r["content"]["status"] == "ok"
    finally:
        k.close()
    subs = recorder.batch("submitjob")
    assert len(subs) == 1, "one array job, not one job per item"
    assert subs[0]["arrayProperties"] == {"size": len(xs)}, subs[0]
    ev = env_of(subs[0])
    assert ev["NBSCALE_TASK_ARRAY"] == "1" and ev["NBSCALE_STEP"] == "squares"
    assert subs[0]["containerOverrides"]["resourceRequirements"] == [{"type": "MEMORY", "value": "1024"}]
    # Failures named by index, with the body's error and line.
    e = error_of(msgs)
    assert e["ename"] == "ForeachItemsFailed" and "index 1" in e["evalue"] and "other 3" in e["evalue"], e["evalue"]
    assert "item 1:" in e["text"] and "RangeError: three is bad" in e["text"], e["text"]
    # Each item's output, prefixed with its index.
    out = k.stdout(msgs)
    for i, x in enumerate(xs):
        assert f"[{i}] item {x} at index {i}\n" in out, out
    # Live progress in the cell: the step status with item counts and the array job's id.
    st = [s for s in statuses(msgs) if s.get("foreach")]
    assert st and st[-1]["foreach"] == {"done": 3, "running": 0, "failed": 1, "total": 4}, st[-1]
    assert st[-1]["state"] == "failed" and st[-1]["target"] == "batch" and st[-1].get("jobId"), st[-1]
    assert any(0 < s["foreach"]["done"] + s["foreach"]["failed"] < 4 for s in st), "progress is shown while children finish"
    # All children were polled by DescribeJobs, by their child ids.
    described = {j for body in recorder.batch("describejobs") for j in body["jobs"]}
    assert {f"{st[-1]['jobId']}:{i}" for i in range(len(xs))} <= described, described
    assert procs[1].returncode == 1 and all(procs[i].returncode == 0 for i in (0, 2, 3)), {i: p.stderr for i, p in procs.items()}


def test_a_one_item_foreach_is_a_plain_job(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path) -> None:
    """Batch arrays start at two children."""
    timed_batch(moto, 8)
    k = KernelSession(cwd=str(tmp_path))
    try:
        reply, msgs, procs = run_with_container(k, moto, recorder, tmp_path / "container", "%%step one --on batch --foreach [21]\nconst z = item * 2;")
        assert reply["content"]["status"] == "ok", ([m["content"] for m in msgs if m["msg_type"] == "error"], procs[0].stderr)
        assert value_of(k, "JSON.stringify(z)") == "'[42]'"
    finally:
        k.close()
    sub = recorder.batch("submitjob")[0]
    assert "arrayProperties" not in sub and "NBSCALE_TASK_ARRAY" not in env_of(sub), sub
    assert env_of(sub)["NBSCALE_TASK"].endswith("-0")


def test_interrupting_a_batch_foreach_terminates_the_array_job_once(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path) -> None:
    timed_batch(moto, 5)
    msgs = interrupt_while_polled(recorder, tmp_path, "%%step many --on batch --foreach [1,2,3]\nconst z = item;")
    assert statuses(msgs), [(m["msg_type"], str(m["content"])[:200]) for m in msgs]
    parent = statuses(msgs)[-1]["jobId"]
    terms = recorder.batch("terminatejob")
    assert [t["jobId"] for t in terms] == [parent], "one TerminateJob, of the array job (it ends every child)"
    assert f"AWS Batch array job {parent} was terminated (TerminateJob sent)" in "".join(
        m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"
    )
    assert statuses(msgs)[-1]["state"] == "cancelled", statuses(msgs)[-1]


def test_children_that_die_without_a_result_are_named_and_a_long_runnable_gets_the_hint(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stand-in: moto's children wait in each state, then FAIL at RUNNING (no Docker) without a worker."""
    msgs = run_through_moto_states(moto, tmp_path, monkeypatch, "%%step lost --on batch --foreach [1,2] --cpu 2\nconst z = item;", state_seconds=4)
    err = stderr(msgs)
    assert err.count("is still RUNNABLE") == 1 and "(it asks for 2 vCPU)" in err, err
    e = error_of(msgs)
    assert e["ename"] == "ForeachItemsFailed" and "indices 0, 1" in e["evalue"], e["evalue"]
    parent = statuses(msgs)[-1]["jobId"]
    for i in (0, 1):
        assert f"BatchJobFailed: step `lost[{i}]`: AWS Batch job {parent}:{i} FAILED" in e["text"], e["text"]
