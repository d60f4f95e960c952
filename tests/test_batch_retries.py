"""`--on batch --retries N` (issue 7): AWS Batch retries a lost attempt
itself (retryStrategy); the retry must run, its output must reach the cell,
and the outputs must be committed once.

moto runs no containers and makes no attempts, so the stand-in for the
container (test_batch.run_like_the_container) plays Batch's part: it runs
the submitted command as attempt 1 (AWS_BATCH_JOB_ATTEMPT=1), whose worker
is SIGKILLed mid-step like a lost spot instance, then as attempt 2, then
once more as a late attempt 3 after the result is in.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3

from conftest import KernelSession
from moto_server import MotoServer
from test_batch import BUCKET, Recorder, aws, env, env_of, moto, recorder, registry, run_like_the_container, run_with_container, statuses, stderr, timed_batch, value_of  # noqa: F401


def s3(env: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


FLAKY = (
    "%%step flaky --on batch --retries 2\n"
    "const attempt = Number(process.env.AWS_BATCH_JOB_ATTEMPT);\n"
    "console.log(`running attempt ${attempt}`);\n"
    "if (attempt === 1) { await new Promise((r) => setTimeout(r, 600)); process.kill(process.pid, \"SIGKILL\"); }\n"
    "const got = attempt * 10;\n"
)


def test_a_lost_attempt_is_retried_its_output_shown_and_the_result_committed_once(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path) -> None:
    timed_batch(moto, 8)
    home = tmp_path / "container"
    k = KernelSession(cwd=str(tmp_path))
    try:
        reply, msgs, ran = run_with_container(k, moto, recorder, home, FLAKY, runs=[{"AWS_BATCH_JOB_ATTEMPT": "1"}, {"AWS_BATCH_JOB_ATTEMPT": "2"}])
        procs = dict(zip((1, 2), ran))
        assert reply["content"]["status"] == "ok", ([m["content"] for m in msgs if m["msg_type"] == "error"], {n: p.stderr for n, p in procs.items()})
        assert value_of(k, "got") == "20"
        # A late attempt after the result is in: it must not run the step again nor replace the result.
        late = run_like_the_container(moto, recorder, home, extra_env={"AWS_BATCH_JOB_ATTEMPT": "3"})
    finally:
        k.close()
    assert procs[1].returncode in (-9, 137), procs[1].stderr  # the exec'd worker itself was killed
    assert procs[2].returncode == 0, procs[2].stderr
    assert late.returncode == 0 and "already has a result" in late.stderr, late.stderr
    err = stderr(msgs)
    assert "attempt 1 of 3 was lost; AWS Batch retried the job: attempt 2 of 3" in err, err
    assert "succeeded on attempt 2 of 3" in err, err
    out_text = k.stdout(msgs)
    assert "running attempt 2\n" in out_text, out_text
    # The step status says which attempt ran, of how many, and the outcome.
    last = statuses(msgs)[-1]
    assert last["state"] == "succeeded" and last["attempt"] == 2 and last["retries"] == 2, last
    # Per-attempt markers and one result, written by attempt 2.
    task = env_of(recorder.batch("submitjob")[-1])["NBSCALE_TASK"]
    prefix = f"{tmp_path.name}/tasks/{task}/"
    keys = {o["Key"][len(prefix):] for o in s3(env).list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    assert {"started.json", "attempt-2/started.json", "result.json"} <= keys, keys
    assert "attempt-3/started.json" not in keys, keys
    result = json.loads(s3(env).get_object(Bucket=BUCKET, Key=prefix + "result.json")["Body"].read())
    assert result["attempt"] == 2 and result["status"] == "done", result
    # retryStrategy as sent: 3 attempts, exceptions and out-of-memory not retried.
    strategy = recorder.batch("submitjob")[-1]["retryStrategy"]
    assert strategy["attempts"] == 3 and {"onExitCode": "1", "action": "EXIT"} in strategy["evaluateOnExit"], strategy
