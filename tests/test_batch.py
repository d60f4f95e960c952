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


@pytest.fixture(scope="module")
def aws(moto: MotoServer) -> dict[str, Any]:
    """Bucket, IAM role, an unmanaged compute environment + queue, and a small managed one + queue."""
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
    return {"role": role}


@pytest.fixture()
def env(moto: MotoServer, aws: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The kernel's environment: moto's endpoint, an S3 datastore, the queue."""
    simple_batch(moto)
    e = moto.env()
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


def job_lines(msgs: list[dict[str, Any]]) -> list[str]:
    return [t for t in texts(msgs) if t.startswith("AWS Batch job ")]


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
    finally:
        k.close()
    assert cpu["ename"] == "BatchConfigError" and "--cpu 16 but at most 8 vCPUs" in cpu["evalue"] and "RUNNABLE forever" in cpu["evalue"], cpu
    assert "--memory 64G but at most 32G" in mem["evalue"], mem
    assert "--gpu 1 but at most 0 GPUs" in gpu["evalue"], gpu
    nothing_sent(recorder)


def client_keys(env: dict[str, str], tmp_path: Path) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=tmp_path.name).get("Contents", [])]
