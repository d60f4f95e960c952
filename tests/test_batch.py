"""`%%step --on batch` (issue 7) through the real kernel, against moto's AWS
server (Batch, S3, IAM, Logs, EC2 in one process on loopback).

moto runs no containers here. Two things stand in for what AWS would do:
- moto's Batch backends: the *simple* one (jobs go straight to SUCCEEDED, or
  FAILED after N s) and the regular one without Docker, whose job states
  advance on a timer we set (SUBMITTED → PENDING → RUNNABLE → STARTING →
  RUNNING) and which then fails the job because there is no Docker;
- for the data plane, `run_like_the_container()`: it reads back the command
  (from the registered job definition) and the environment (from SubmitJob's
  containerOverrides) that the kernel actually sent, and runs exactly that
  with `sh` on this machine against moto's S3 — THE STAND-IN FOR THE
  CONTAINER. The only difference from a real container is the image: an
  `nbscale` of the kernel's version is put on PATH, so the script's own check
  skips `npm install` (nbscale is not published from this tree).
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest

from conftest import KernelSession
from moto_server import MotoServer

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "nbscale-batch"
QUEUE = "nbscale-q"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def post(moto: MotoServer, path: str, body: dict[str, Any] | None = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(moto.url + path, data=data, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def simple_batch(moto: MotoServer) -> None:
    """Jobs go straight to SUCCEEDED (no containers)."""
    post(moto, "/moto-api/config", {"batch": {"use_docker": False}})


def timed_batch(moto: MotoServer, seconds: int) -> None:
    """Regular backend without Docker: each state lasts `seconds`, then RUNNING fails (no Docker)."""
    post(moto, "/moto-api/config", {"batch": {"use_docker": True}})
    post(moto, "/moto-api/state-manager/set-transition", {"model_name": "batch::job", "transition": {"progression": "time", "seconds": seconds}})


class Recorder:
    """moto's request recorder: what was actually sent over HTTP."""

    def __init__(self, moto: MotoServer) -> None:
        self.moto = moto

    def reset(self) -> None:
        post(self.moto, "/moto-api/recorder/reset-recording")
        post(self.moto, "/moto-api/recorder/start-recording")

    def entries(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.moto.url + "/moto-api/recorder/download-recording", timeout=30) as r:
            text = r.read().decode()
        out = []
        for line in text.splitlines():
            if not line.strip():
                continue
            e = json.loads(line)
            body = e.get("body") or ""
            if e.get("body_encoded"):
                body = base64.b64decode(body).decode("utf-8", "replace")
            e["text"] = body
            out.append(e)
        return out

    def batch(self, action: str) -> list[dict[str, Any]]:
        """JSON bodies of Batch calls, by REST path (e.g. /v1/submitjob)."""
        return [json.loads(e["text"] or "{}") for e in self.entries() if e["url"].split("?")[0].lower().endswith("/v1/" + action.lower())]

    def s3_puts(self, bucket: str) -> list[str]:
        return [e["url"] for e in self.entries() if e["method"] in ("PUT", "POST") and f"/{bucket}/" in e["url"] and "/v1/" not in e["url"]]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


def client(moto: MotoServer, service: str) -> Any:
    return boto3.client(service, endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


def provision(moto: MotoServer) -> str:
    """Bucket, IAM role, an unmanaged compute environment and the queue; returns the role's ARN."""
    simple_batch(moto)
    client(moto, "s3").create_bucket(Bucket=BUCKET)
    iam = client(moto, "iam")
    role = iam.create_role(
        RoleName="nbscale-batch-service",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
    )["Role"]["Arn"]
    batch = client(moto, "batch")
    ce = batch.create_compute_environment(computeEnvironmentName="nbscale-unmanaged", type="UNMANAGED", state="ENABLED", serviceRole=role)["computeEnvironmentArn"]
    batch.create_job_queue(jobQueueName=QUEUE, state="ENABLED", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])
    return role


@pytest.fixture(scope="module")
def aws(moto: MotoServer) -> dict[str, Any]:
    """provision(), plus a small managed compute environment (8 vCPU of m5.2xlarge) and its queue."""
    role = provision(moto)
    iam = client(moto, "iam")
    batch = client(moto, "batch")
    ec2 = client(moto, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="nbscale", Description="nbscale", VpcId=vpc)["GroupId"]
    profile = iam.create_instance_profile(InstanceProfileName="nbscale-ecs")["InstanceProfile"]["Arn"]
    small = batch.create_compute_environment(
        computeEnvironmentName="nbscale-small",
        type="MANAGED",
        state="ENABLED",
        serviceRole=role,
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 8, "desiredvCpus": 0, "instanceTypes": ["m5.2xlarge"], "subnets": [subnet], "securityGroupIds": [sg], "instanceRole": profile},
    )["computeEnvironmentArn"]
    batch.create_job_queue(jobQueueName="nbscale-small-q", state="ENABLED", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": small}])
    fargate = batch.create_compute_environment(
        computeEnvironmentName="nbscale-fargate",
        type="MANAGED",
        state="ENABLED",
        serviceRole=role,
        computeResources={"type": "FARGATE", "maxvCpus": 16, "subnets": [subnet], "securityGroupIds": [sg]},
    )["computeEnvironmentArn"]
    batch.create_job_queue(jobQueueName="nbscale-fargate-q", state="ENABLED", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": fargate}])
    return {"role": role}


class EmptyRegistry:
    """An npm registry on loopback that has no packages (nbscale is not published): keeps the tests off the network."""

    def __init__(self) -> None:
        import http.server

        self.paths: list[str] = []
        paths = self.paths

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                paths.append(self.path)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def registry() -> Iterator[EmptyRegistry]:
    r = EmptyRegistry()
    yield r
    r.server.shutdown()


@pytest.fixture()
def env(moto: MotoServer, aws: dict[str, Any], registry: EmptyRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The kernel's environment: moto's endpoint, an S3 datastore, the queue, a registry without nbscale."""
    simple_batch(moto)
    e = moto.env()
    e["npm_config_registry"] = registry.url
    e["NBSCALE_DATASTORE"] = f"s3://{BUCKET}/{tmp_path.name}"
    e["NBSCALE_BATCH_QUEUE"] = QUEUE
    e["NBSCALE_WARM_WORKERS"] = "0"
    for k, v in e.items():
        monkeypatch.setenv(k, v)
    return e


@pytest.fixture()
def recorder(moto: MotoServer) -> Recorder:
    r = Recorder(moto)
    r.reset()
    return r


def run(k: KernelSession, code: str, timeout: float = 60) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return k.run(code, timeout=timeout)


def error_of(msgs: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert len(errors) == 1, [m["msg_type"] for m in msgs]
    e = dict(errors[0])
    e["text"] = ANSI.sub("", "\n".join(e["traceback"]))
    return e


def stderr(msgs: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")


def texts(msgs: list[dict[str, Any]]) -> list[str]:
    """text/plain of every display and update, in order."""
    return [m["content"]["data"].get("text/plain", "") for m in msgs if m["msg_type"] in ("display_data", "update_display_data")]


STEP_STATUS = "application/vnd.nbscale.step+json"
BATCH_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "TERMINATED")


def statuses(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The step-status payloads (what the JupyterLab extension renders), in order, each with its text/plain."""
    return [
        {**m["content"]["data"][STEP_STATUS], "_text": m["content"]["data"].get("text/plain", ""), "_msg": m["msg_type"]}
        for m in msgs
        if m["msg_type"] in ("display_data", "update_display_data") and STEP_STATUS in m["content"]["data"]
    ]


def job_lines(msgs: list[dict[str, Any]]) -> list[str]:
    """`AWS Batch job ID: SUBMITTED 0.4 s → …` as the step status's text shows the job's states."""
    out = []
    for s in statuses(msgs):
        if not s.get("job"):
            continue
        parts = s["_text"].split("\n")[0].split(" · ")
        states = [p for p in parts if p.split(" ")[0] in BATCH_STATES]
        out.append(f"AWS Batch job {s['jobId']}: {states[0] if states else ''}")
    return out


def nothing_sent(recorder: Recorder) -> None:
    """No task upload, no job definition, no job."""
    assert recorder.batch("submitjob") == [] and recorder.batch("registerjobdefinition") == []
    assert not [u for u in recorder.s3_puts(BUCKET) if "/tasks/" in u or "/batch/" in u], recorder.s3_puts(BUCKET)


STEP = "%%step train --on batch --memory 64G --cpu 16 --gpu 1\nconst total = 1 + 2;\n"


# ---------------------------------------------------------------- refusals


def test_no_queue_is_refused_before_any_upload(env: dict[str, str], recorder: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBSCALE_BATCH_QUEUE")
    k = KernelSession(cwd=str(tmp_path))
    try:
        reply, msgs = run(k, STEP)
    finally:
        k.close()
    assert reply["content"]["status"] == "error"
    e = error_of(msgs)
    assert e["ename"] == "BatchConfigError" and "NBSCALE_BATCH_QUEUE" in e["evalue"] and "--queue" in e["evalue"], e
    nothing_sent(recorder)


def test_a_local_datastore_is_refused_naming_the_setting(env: dict[str, str], recorder: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBSCALE_DATASTORE")
    k = KernelSession(cwd=str(tmp_path))
    try:
        reply, msgs = run(k, STEP)
    finally:
        k.close()
    e = error_of(msgs)
    assert e["ename"] == "BatchConfigError" and "NBSCALE_DATASTORE=s3://" in e["evalue"] and ".nbscale" in e["evalue"], e
    nothing_sent(recorder)
    assert client_keys(env, tmp_path) == []


def test_no_credentials_are_refused_naming_how_to_set_them(env: dict[str, str], recorder: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k_ in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(k_)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("NBSCALE_RECORD", "0")
    k = KernelSession(cwd=str(tmp_path))
    try:
        reply, msgs = run(k, STEP)
    finally:
        k.close()
    e = error_of(msgs)
    assert e["ename"] == "BatchConfigError" and "no AWS credentials" in e["evalue"] and "AWS_ACCESS_KEY_ID" in e["evalue"], e
    nothing_sent(recorder)


def test_a_missing_bucket_is_refused(env: dict[str, str], recorder: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBSCALE_DATASTORE", "s3://no-such-nbscale-bucket/x")
    monkeypatch.setenv("NBSCALE_RECORD", "0")
    k = KernelSession(cwd=str(tmp_path))
    try:
        reply, msgs = run(k, STEP)
    finally:
        k.close()
    e = error_of(msgs)
    assert e["ename"] == "BatchConfigError" and "no-such-nbscale-bucket" in e["evalue"] and "does not exist" in e["evalue"], e
    nothing_sent(recorder)


def test_an_unknown_queue_is_refused(env: dict[str, str], recorder: Recorder, tmp_path: Path) -> None:
    k = KernelSession(cwd=str(tmp_path))
    try:
        reply, msgs = run(k, STEP.replace("--on batch", "--on batch --queue nope-q"))
    finally:
        k.close()
    e = error_of(msgs)
    assert e["ename"] == "BatchConfigError" and "`nope-q`" in e["evalue"] and "does not exist" in e["evalue"], e
    nothing_sent(recorder)


def test_more_than_the_queue_can_ever_provide_is_refused(env: dict[str, str], recorder: Recorder, tmp_path: Path) -> None:
    k = KernelSession(cwd=str(tmp_path))
    try:
        _, msgs = run(k, "%%step big --on batch --queue nbscale-small-q --cpu 16\nconst a = 1;")
        cpu = error_of(msgs)
        _, msgs = run(k, "%%step big --on batch --queue nbscale-small-q --memory 64G\nconst a = 1;")
        mem = error_of(msgs)
        _, msgs = run(k, "%%step big --on batch --queue nbscale-small-q --gpu 1\nconst a = 1;")
        gpu = error_of(msgs)
        _, msgs = run(k, "%%step big --on batch --queue nbscale-fargate-q\nconst a = 1;")
        fargate = error_of(msgs)
    finally:
        k.close()
    assert cpu["ename"] == "BatchConfigError" and "--cpu 16 but at most 8 vCPUs" in cpu["evalue"] and "RUNNABLE forever" in cpu["evalue"], cpu
    assert "--memory 64G but at most 32G" in mem["evalue"], mem
    assert "--gpu 1 but at most 0 GPUs" in gpu["evalue"], gpu
    assert "only Fargate compute environments" in fargate["evalue"], fargate
    nothing_sent(recorder)


def client_keys(env: dict[str, str], tmp_path: Path) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=tmp_path.name).get("Contents", [])]


# ---------------------------------------------------------------- control plane


def env_of(submit: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in submit["containerOverrides"]["environment"]}


def test_what_is_sent_queue_definition_resources_command_environment(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path) -> None:
    k = KernelSession(cwd=str(tmp_path))
    try:
        reply, msgs = run(k, "%%step train --on batch --memory 64G --cpu 16 --gpu 1 --timeout 10m --retries 2 --env SEED=42\nconst total = 1 + 2;")
        # moto's simple backend runs nothing: the job SUCCEEDS and no worker ever wrote a result.
        e = error_of(msgs)
        _, msgs2 = run(k, "%%step again --on batch\nconst x = 1;")
        node_major = value_of(k, "process.versions.node.split('.')[0]").strip("'")
    finally:
        k.close()
    assert e["ename"] == "BatchJobFailed" and "SUCCEEDED but its worker left no result" in e["evalue"], e
    subs = recorder.batch("submitjob")
    assert len(subs) == 2
    s = subs[0]
    assert s["jobQueue"] == QUEUE and s["jobName"] == "nbscale-train"
    assert s["containerOverrides"]["resourceRequirements"] == [
        {"type": "MEMORY", "value": "65536"},
        {"type": "VCPU", "value": "16"},
        {"type": "GPU", "value": "1"},
    ]
    assert s["timeout"] == {"attemptDurationSeconds": 600} and s["retryStrategy"]["attempts"] == 3
    ev = env_of(s)
    assert ev["SEED"] == "42" and ev["NBSCALE_DATASTORE"] == env["NBSCALE_DATASTORE"] and ev["NBSCALE_STEP"] == "train"
    assert ev["NODE_OPTIONS"].startswith("--max-old-space-size=")
    assert "AWS_ACCESS_KEY_ID" not in ev and "AWS_SECRET_ACCESS_KEY" not in ev, "credentials never travel in the job"
    # The task was uploaded before submission, under the id the job is given.
    keys = client_keys(env, tmp_path)
    assert f"{tmp_path.name}/tasks/{ev['NBSCALE_TASK']}/task.json" in keys
    # One job definition, registered once, named by its content, reused by the second step.
    regs = recorder.batch("registerjobdefinition")
    assert len(regs) <= 1 and s["jobDefinition"].startswith("nbscale-") and subs[1]["jobDefinition"] == s["jobDefinition"]
    jd = client(moto, "batch").describe_job_definitions(jobDefinitionName=s["jobDefinition"].split(":")[0])["jobDefinitions"][0]
    cp = jd["containerProperties"]
    # The default image runs the kernel's own Node major (values travel in V8's serialization format).
    assert node_major.isdigit(), node_major
    assert cp["image"] == f"public.ecr.aws/docker/library/node:{node_major}-bookworm-slim"
    assert cp["command"][:2] == ["sh", "-c"] and 'exec nbscale worker --task "$NBSCALE_DATASTORE" "$NBSCALE_TASK"' in cp["command"][2]
    assert "npm install --global" in cp["command"][2] and "want='0.1.0'" in cp["command"][2]
    assert any("SUCCEEDED" in line for line in job_lines(msgs)), job_lines(msgs)
    # nbscale 0.1.0 is not on npm: the default image installs the kernel's own package from S3, and the cell says so.
    assert "installs nbscale 0.1.0 from the kernel's own package" in stderr(msgs), stderr(msgs)
    assert ev["NBSCALE_WORKER_PACKAGE"].startswith(f"{env['AWS_ENDPOINT_URL']}/{BUCKET}/{tmp_path.name}/batch/packages/"), ev["NBSCALE_WORKER_PACKAGE"]


def test_image_and_queue_from_the_step_line(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBSCALE_BATCH_QUEUE")
    k = KernelSession(cwd=str(tmp_path))
    try:
        _, msgs = run(k, f"%%step custom --on batch --queue {QUEUE} --image ghcr.io/acme/nb:1\nconst x = 1;")
    finally:
        k.close()
    s = recorder.batch("submitjob")[0]
    assert s["jobQueue"] == QUEUE
    jd = client(moto, "batch").describe_job_definitions(jobDefinitionName=s["jobDefinition"].split(":")[0])["jobDefinitions"][0]
    assert jd["containerProperties"]["image"] == "ghcr.io/acme/nb:1"
    assert "not on the npm registry" not in stderr(msgs), "an image of one's own is not checked against npm"


def run_through_moto_states(moto: MotoServer, cwd: Path, monkeypatch: pytest.MonkeyPatch, code: str, state_seconds: int) -> list[dict[str, Any]]:
    """Runs `code` in a fresh kernel with no container stand-in: moto's jobs spend `state_seconds` in each
    state, then FAIL at RUNNING (no Docker). Polled every second, with the RUNNABLE hint after 1 s."""
    monkeypatch.setenv("NBSCALE_BATCH_RUNNABLE_HINT", "1s")
    monkeypatch.setenv("NBSCALE_BATCH_POLL", "1s")
    timed_batch(moto, state_seconds)
    k = KernelSession(cwd=str(cwd))
    try:
        return run(k, code, timeout=120)[1]
    finally:
        k.close()


def test_job_states_are_shown_live_with_time_in_each_and_a_runnable_hint(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msgs = run_through_moto_states(moto, tmp_path, monkeypatch, "%%step slow --on batch --cpu 2\nconst x = 1;", state_seconds=3)
    lines = job_lines(msgs)
    # One output (the step status), updated in place as the job moves.
    kinds = [s["_msg"] for s in statuses(msgs)]
    assert kinds[0] == "display_data" and set(kinds[1:]) == {"update_display_data"}, kinds
    # What the state means for the step: waiting in the queue is not running, and the run time starts at RUNNING.
    by_job = {s["job"]["state"]: s for s in statuses(msgs) if s.get("job")}
    assert by_job["RUNNABLE"]["state"] == "queued" and "startedAt" not in by_job["RUNNABLE"], by_job["RUNNABLE"]
    assert by_job["SUBMITTED"]["state"] == "queued", by_job["SUBMITTED"]
    if "STARTING" in by_job:
        assert by_job["STARTING"]["state"] == "starting"
    if "RUNNING" in by_job:
        assert by_job["RUNNING"]["state"] == "running" and "startedAt" in by_job["RUNNING"]
    assert statuses(msgs)[-1]["state"] == "failed" and statuses(msgs)[-1]["jobId"], statuses(msgs)[-1]
    assert [j["state"] for j in statuses(msgs)[-1]["job"]["states"]][-1] == "FAILED"
    order = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "FAILED"]
    states = re.findall(r"\b([A-Z]{6,})\b", lines[-1].split(": ", 1)[1])
    assert states == sorted(states, key=order.index) and {"SUBMITTED", "PENDING", "RUNNABLE", "FAILED"} <= set(states), lines[-1]
    assert re.search(r"RUNNABLE \d+\.\d s", lines[-1]) and lines[-1].endswith("FAILED"), lines[-1]
    assert len({line.split(": ", 1)[1] for line in lines}) >= 4, "the output is updated while the job waits"
    assert "is still RUNNABLE" in stderr(msgs) and "(it asks for 2 vCPU)" in stderr(msgs), stderr(msgs)
    # moto without Docker fails the job at RUNNING with no reason: the cell says so.
    e = error_of(msgs)
    assert e["ename"] == "BatchJobFailed" and "FAILED" in e["evalue"], e
    assert len(recorder.batch("describejobs")) >= 4


def interrupt_while_polled(recorder: Recorder, cwd: Path, code: str) -> list[dict[str, Any]]:
    """Runs `code`, interrupts the kernel once the job is being polled, and returns the cell's messages;
    the interrupted cell must fail and the kernel must still run code afterwards."""
    k = KernelSession(cwd=str(cwd))
    try:
        msg_id = k.kc.execute(code)
        deadline = time.monotonic() + 30
        while not recorder.batch("describejobs") and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        k.km.interrupt_kernel()
        reply = k.shell_reply(msg_id, timeout=60)
        msgs = k.collect(msg_id, timeout=60)
        assert reply["content"]["status"] == "error"
        assert k.run("1 + 1")[0]["content"]["status"] == "ok", "the kernel is fine afterwards"
    finally:
        k.close()
    return msgs


def test_interrupt_terminates_the_job_and_says_so(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path) -> None:
    timed_batch(moto, 5)
    msgs = interrupt_while_polled(recorder, tmp_path, "%%step stop_me --on batch\nconst x = 1;")
    assert error_of(msgs)["ename"] == "KeyboardInterrupt"
    job = env_of(recorder.batch("submitjob")[0])
    terms = recorder.batch("terminatejob")
    assert len(terms) == 1 and terms[0]["reason"] == "interrupted from the notebook (nbscale)", terms
    assert "was terminated (TerminateJob sent)" in stderr(msgs) and terms[0]["jobId"] in stderr(msgs)
    assert job_lines(msgs)[-1].endswith("TERMINATED"), job_lines(msgs)
    batch = client(moto, "batch")
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        d = batch.describe_jobs(jobs=[terms[0]["jobId"]])["jobs"][0]
        if d["status"] == "FAILED":
            break
        time.sleep(1)
    assert d["status"] == "FAILED" and d["statusReason"] == "interrupted from the notebook (nbscale)"


def test_failed_reasons_become_messages_and_oom_the_memory_advice(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path) -> None:
    """Jobs are failed from outside with the reasons AWS gives (moto keeps a TerminateJob reason as statusReason)."""
    timed_batch(moto, 2)
    batch = client(moto, "batch")

    def fail_job_with(reason: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            subs = recorder.batch("submitjob")
            jobs = batch.list_jobs(jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": [subs[-1]["jobName"]]}])["jobSummaryList"] if subs else []
            live = [j for j in jobs if j["status"] not in ("SUCCEEDED", "FAILED")]
            if live:
                batch.terminate_job(jobId=live[0]["jobId"], reason=reason)
                return
            time.sleep(0.3)
        raise AssertionError("no job to fail")

    def error_when_failed_with(reason: str, code: str) -> dict[str, Any]:
        t = threading.Thread(target=fail_job_with, args=(reason,))
        recorder.reset()
        t.start()
        _, msgs = run(k, code, timeout=90)
        t.join()
        return error_of(msgs)

    k = KernelSession(cwd=str(tmp_path))
    try:
        oom = error_when_failed_with("OutOfMemoryError: Container killed due to memory usage", "%%step hungry --on batch --memory 8G\nconst x = 1;")
        pull = error_when_failed_with("CannotPullContainerError: pull access denied for acme/nb", "%%step pull --on batch\nconst x = 1;")
        late = error_when_failed_with("Job attempt duration exceeded timeout", "%%step long --on batch --timeout 90s\nconst x = 1;")
    finally:
        k.close()
    assert late["ename"] == "StepTimeout" and "did not finish within its timeout of 1m30s" in late["evalue"], late
    assert oom["ename"] == "StepOutOfMemory" and "re-run with `--memory 16G`" in oom["evalue"], oom
    assert "OutOfMemoryError: Container killed due to memory usage" in oom["text"] and "kernel and its variables are intact" in oom["text"]
    assert pull["ename"] == "BatchJobFailed" and "CannotPullContainerError: pull access denied for acme/nb" in pull["evalue"], pull


# ---------------------------------------------------------------- data plane


def run_like_the_container(moto: MotoServer, recorder: Recorder, home: Path, nth: int = 1, extra_env: dict[str, str] | None = None, image_has_nbscale: bool = True) -> subprocess.CompletedProcess[str]:
    """THE STAND-IN FOR THE CONTAINER: waits for the SubmitJob the kernel sent,
    reads the job definition's command and the job's environment back from
    moto, and runs exactly that command with exactly that environment here.
    What the compute environment would add is added: the job role's
    credentials, AWS_BATCH_JOB_ID, and an image that has nbscale of the
    kernel's version on PATH (this checkout's bin/nbscale.js) unless
    `image_has_nbscale` is False (the plain Node image). `extra_env` is what
    Batch itself sets per array element or attempt (AWS_BATCH_JOB_ATTEMPT,
    AWS_BATCH_JOB_ARRAY_INDEX)."""
    deadline = time.monotonic() + 60
    while len(recorder.batch("submitjob")) < nth:
        assert time.monotonic() < deadline, "no SubmitJob"
        time.sleep(0.2)
    submit = recorder.batch("submitjob")[nth - 1]
    name = submit["jobDefinition"].split(":")[0]
    jd = client(moto, "batch").describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"][0]
    command = jd["containerProperties"]["command"]
    image_bin = home / "image-bin"
    image_bin.mkdir(exist_ok=True)
    if image_has_nbscale and not (image_bin / "nbscale").exists():
        (image_bin / "nbscale").symlink_to(ROOT / "kernel" / "bin" / "nbscale.js")
    container_env = {
        "PATH": f"{image_bin}:{os.environ['PATH']}",
        "HOME": str(home),
        "NBSCALE_WORKDIR": str(home / "work"),
        # the job role's credentials, as the container's credential endpoint would give them
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_BATCH_JOB_ID": "stand-in",
        **env_of(submit),
        **(extra_env or {}),
    }
    return subprocess.run(command, env=container_env, capture_output=True, text=True, timeout=120)


def run_with_container(k: KernelSession, moto: MotoServer, recorder: Recorder, home: Path, code: str, runs: list[dict[str, str]] | None = None, timeout: float = 150, **kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]], list[subprocess.CompletedProcess[str]]]:
    """Runs `code` in the kernel while the container stand-in runs the job it submits: once, or once per
    entry of `runs` (in order), with that entry added to the job's environment as Batch would add it."""
    home.mkdir(exist_ok=True)
    procs: list[subprocess.CompletedProcess[str]] = []

    def container() -> None:
        for extra in runs or [{}]:
            procs.append(run_like_the_container(moto, recorder, home, extra_env=extra, **kw))

    t = threading.Thread(target=container)
    t.start()
    reply, msgs = run(k, code, timeout=timeout)
    t.join()
    return reply, msgs, procs


def value_of(k: KernelSession, expr: str) -> str:
    _, out = k.run(expr)
    return "".join(m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result")


def test_data_plane_the_submitted_command_runs_the_step_and_its_outputs_arrive(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path) -> None:
    # Long enough for the stand-in to run before moto (without Docker) fails the job at RUNNING.
    timed_batch(moto, 6)
    home = tmp_path / "container"
    home.mkdir()
    container: dict[str, Any] = {}
    k = KernelSession(cwd=str(tmp_path))
    try:
        assert k.run("const base = 10;")[0]["content"]["status"] == "ok"
        assert k.run("function scale(x: number) { return x * base; }")[0]["content"]["status"] == "ok"
        assert k.run("const data = Float64Array.from({ length: 100_000 }, (_, i) => i);")[0]["content"]["status"] == "ok"
        t = threading.Thread(target=lambda: container.setdefault("proc", run_like_the_container(moto, recorder, home)))
        t.start()
        reply, msgs = run(k, "%%step remote_total --on batch --memory 1G --cpu 1\n"
                             "import { display } from \"nbscale\";\n"
                             "console.log(\"hello from the job\", process.env.AWS_BATCH_JOB_ID);\n"
                             "display.html(\"<b>rich</b>\");\n"
                             "const total = data.reduce((a, b) => a + scale(b), 0);\n"
                             "const label: string = `n=${data.length}`;", timeout=120)
        t.join()
        errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
        proc = container["proc"]
        assert reply["content"]["status"] == "ok", (errors, proc.stdout, proc.stderr)
        assert "hello from the job stand-in\n" in k.stdout(msgs)
        assert any(m["msg_type"] == "display_data" and m["content"]["data"].get("text/html") == "<b>rich</b>" for m in msgs)
        r, out = k.run("total")
        assert [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"] == [str(sum(range(100_000)) * 10)]
        # typed as in the cell
        r, out = k.run("const n: number = label.length;")
        assert r["content"]["status"] == "ok"
        r, out = k.run("const bad: number = label;")
        assert r["content"]["status"] == "error"
    finally:
        k.close()
    assert proc.returncode == 0, proc.stderr
    # The job used the data plane only: inputs were read from S3 by hash, the result written back.
    keys = client_keys(env, tmp_path)
    task = env_of(recorder.batch("submitjob")[-1])["NBSCALE_TASK"]
    assert {f"{tmp_path.name}/tasks/{task}/{f}" for f in ("task.json", "started.json", "result.json")} <= set(keys)
    final = statuses(msgs)[-1]
    assert final["state"] == "succeeded" and final["job"]["system"] == "AWS Batch" and final["jobId"], final


def test_the_notebook_folders_lockfile_is_installed_once_then_restored_from_the_s3_cache(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path) -> None:
    """The install half runs `npm ci` for real; the lockfile has no packages so it needs no registry."""
    timed_batch(moto, 6)
    (tmp_path / "package.json").write_text(json.dumps({"name": "nb", "version": "1.0.0", "private": True}))
    lock = json.dumps({"name": "nb", "version": "1.0.0", "lockfileVersion": 3, "requires": True, "packages": {"": {"name": "nb", "version": "1.0.0"}}})
    (tmp_path / "package-lock.json").write_text(lock)
    home = tmp_path / "container"
    home.mkdir()
    procs: list[subprocess.CompletedProcess[str]] = []
    k = KernelSession(cwd=str(tmp_path))
    try:
        for n in (1, 2):
            t = threading.Thread(target=lambda n=n: procs.append(run_like_the_container(moto, recorder, home, nth=n)))
            t.start()
            reply, msgs = run(k, f"%%step deps{n} --on batch\nconst v{n} = {n};", timeout=120)
            t.join()
            assert reply["content"]["status"] == "ok", ([m["content"] for m in msgs if m["msg_type"] == "error"], procs[-1].stderr)
    finally:
        k.close()
    import hashlib

    sha = hashlib.sha256(lock.encode()).hexdigest()
    assert env_of(recorder.batch("submitjob")[0])["NBSCALE_DEPS"] == sha
    assert "installing the notebook's dependencies (npm ci" in procs[0].stderr and "cached for later jobs" in procs[0].stderr, procs[0].stderr
    assert "restored from the cache" in procs[1].stderr and "npm ci" not in procs[1].stderr, procs[1].stderr
    keys = client_keys(env, tmp_path)
    assert any(key.startswith(f"{tmp_path.name}/batch/deps/{sha}/node_modules-node") and key.endswith(".tgz") for key in keys), keys


def test_a_job_that_died_before_writing_shows_its_last_cloudwatch_log_lines(tmp_path: Path, registry: EmptyRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second moto whose simple Batch fails every job after 3 s (MOTO_SIMPLE_BATCH_FAIL_AFTER); meanwhile
    the test writes what the container "printed" into the job's CloudWatch stream, as the awslogs driver would."""
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "3")
    failing = MotoServer()
    monkeypatch.delenv("MOTO_SIMPLE_BATCH_FAIL_AFTER")
    try:
        provision(failing)
        for k_, v in {**failing.env(), "NBSCALE_DATASTORE": f"s3://{BUCKET}/{tmp_path.name}", "NBSCALE_BATCH_QUEUE": QUEUE, "NBSCALE_WARM_WORKERS": "0", "npm_config_registry": registry.url}.items():
            monkeypatch.setenv(k_, v)
        batch, logs = client(failing, "batch"), client(failing, "logs")

        def print_into_the_jobs_log() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                jobs = batch.list_jobs(jobQueue=QUEUE, jobStatus="RUNNING")["jobSummaryList"] + batch.list_jobs(jobQueue=QUEUE, jobStatus="SUBMITTED")["jobSummaryList"]
                if jobs:
                    d = batch.describe_jobs(jobs=[jobs[0]["jobId"]])["jobs"][0]
                    stream = d["container"].get("logStreamName") or f"{d['jobDefinition'].split('/')[-1].split(':')[0]}/default/{d['jobId']}"
                    try:
                        logs.create_log_group(logGroupName="/aws/batch/job")
                    except logs.exceptions.ResourceAlreadyExistsException:
                        pass
                    logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName=stream)
                    now = int(time.time() * 1000)
                    logs.put_log_events(logGroupName="/aws/batch/job", logStreamName=stream, logEvents=[
                        {"timestamp": now, "message": "[nbscale] installing nbscale@0.1.0"},
                        {"timestamp": now + 1, "message": "npm error code E404"},
                        {"timestamp": now + 2, "message": "npm error 404 Not Found - nbscale@0.1.0"},
                    ])
                    return
                time.sleep(0.2)

        t = threading.Thread(target=print_into_the_jobs_log)
        t.start()
        k = KernelSession(cwd=str(tmp_path))
        try:
            reply, msgs = run(k, "%%step early --on batch\nconst x = 1;", timeout=90)
        finally:
            k.close()
        t.join()
        e = error_of(msgs)
        assert e["ename"] == "BatchJobFailed", e
        assert "last lines of the job's log:" in e["text"] and "| npm error 404 Not Found - nbscale@0.1.0" in e["text"], e["text"]
    finally:
        failing.stop()


def test_an_exception_in_the_job_points_at_the_cells_line(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path) -> None:
    timed_batch(moto, 6)
    k = KernelSession(cwd=str(tmp_path))
    try:
        reply, msgs, procs = run_with_container(k, moto, recorder, tmp_path / "container", "%%step boom --on batch\nconst a = 1;\nif (a > 0) throw new RangeError(\"bad a: \" + a);\nconst b = 2;")
        assert reply["content"]["status"] == "error"
        # the session is intact and the failed step defined nothing
        r, out = k.run("typeof b")
        assert [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"] == ['"undefined"'] or r["content"]["status"] == "error"
    finally:
        k.close()
    e = error_of(msgs)
    assert e["ename"] == "RangeError" and e["evalue"] == "bad a: 1", e
    assert "cell, line 3" in e["text"] and "raised in AWS Batch job" in e["text"], e["text"]
    assert procs[0].returncode == 1, procs[0].stderr


def test_an_input_already_in_the_store_is_not_uploaded_again(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path) -> None:
    """The kernel recorded `big` (8 MB) into the S3 datastore when its cell ran; the step's upload finds it by hash."""
    timed_batch(moto, 6)
    home = tmp_path / "container"
    home.mkdir()
    procs: list[subprocess.CompletedProcess[str]] = []
    k = KernelSession(cwd=str(tmp_path))
    try:
        assert k.run("const big = Float64Array.from({ length: 1_000_000 }, (_, i) => i % 7);")[0]["content"]["status"] == "ok"
        recorder.reset()
        t = threading.Thread(target=lambda: procs.append(run_like_the_container(moto, recorder, home)))
        t.start()
        reply, msgs = run(k, "%%step uses_big --on batch\nconst s = big.reduce((a, b) => a + b, 0);", timeout=120)
        t.join()
        assert reply["content"]["status"] == "ok", ([m["content"] for m in msgs if m["msg_type"] == "error"], procs[0].stderr)
        r, out = k.run("s")
        assert [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"] == [str(sum(i % 7 for i in range(1_000_000)))]
    finally:
        k.close()
    sizes = [len(e["text"]) for e in recorder.entries() if e["method"] in ("PUT", "POST") and f"/{BUCKET}/" in e["url"]]
    assert sizes and max(sizes) < 1_000_000, f"an upload of {max(sizes)} bytes: the input was sent again"
