"""`Lazy<T>` inputs of `--on batch` steps (issue 7): a value too big for the
kernel stays in the S3 datastore; a Batch step that uses it gets a reference
and its worker reads the blob from S3 itself — the kernel neither reads nor
uploads it. A Lazy value the job can't reach is refused before anything is
submitted, saying where it is and what to do.

The container stand-in (test_batch.run_like_the_container) identifies its
AWS requests with AWS_SDK_UA_APP_ID, so moto's request recorder tells the
job's reads from the kernel's.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import KernelSession
from moto_server import MotoServer
from test_batch import BUCKET, Recorder, aws, client, env, error_of, moto, nothing_sent, recorder, registry, run, run_with_container, timed_batch, value_of  # noqa: F401

CONTAINER_UA = "nbscale-container"
N = 60_000  # 480 KB of float64: over the lazy threshold set below


def test_a_lazy_input_in_the_s3_datastore_is_read_by_the_job_not_the_kernel(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBSCALE_LAZY_BYTES", "100000")
    timed_batch(moto, 8)
    k = KernelSession(cwd=str(tmp_path))
    try:
        # A local step makes it; its worker keeps it in the (S3) datastore and the session gets a handle.
        reply, msgs = run(k, f"%%step make\nconst big = Float64Array.from({{ length: {N} }}, (_, i) => i % 11);", timeout=120)
        assert reply["content"]["status"] == "ok", [m["content"] for m in msgs if m["msg_type"] == "error"]
        assert value_of(k, "big instanceof (require('nbscale').Lazy)") == "true"
        sha = value_of(k, "big.sha256").strip("'\"")
        assert len(sha) == 64, sha
        recorder.reset()
        code = "%%step use_big --on batch\nconst s: number = big.reduce((a, b) => a + b, 0);"
        reply, msgs, procs = run_with_container(k, moto, recorder, tmp_path / "container", code, runs=[{"AWS_SDK_UA_APP_ID": CONTAINER_UA}])
        assert reply["content"]["status"] == "ok", ([m["content"] for m in msgs if m["msg_type"] == "error"], procs[0].stderr)
        assert value_of(k, "s") == str(sum(i % 11 for i in range(N)))
    finally:
        k.close()
    blob_gets = [e for e in recorder.entries() if e["method"] == "GET" and sha in e["url"]]
    by_job = [e for e in blob_gets if CONTAINER_UA in json.dumps(e.get("headers", {}))]
    assert by_job, "the job read the lazy value from S3"
    assert len(blob_gets) == len(by_job), [e["url"] for e in blob_gets if e not in by_job]
    big_puts = [len(e["text"]) for e in recorder.entries() if e["method"] in ("PUT", "POST") and f"/{BUCKET}/" in e["url"] and len(e["text"]) >= N * 8]
    assert big_puts == [], "the lazy value was uploaded again"


def test_a_corrupted_lazy_blob_in_s3_is_refused_by_the_job(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBSCALE_LAZY_BYTES", "100000")
    timed_batch(moto, 8)
    k = KernelSession(cwd=str(tmp_path))
    try:
        reply, msgs = run(k, f"%%step make\nconst big = Float64Array.from({{ length: {N} }}, (_, i) => i % 11);", timeout=120)
        assert reply["content"]["status"] == "ok", [m["content"] for m in msgs if m["msg_type"] == "error"]
        sha = value_of(k, "big.sha256").strip("'\"")
        s3 = client(moto, "s3")
        prefix = env["NBSCALE_DATASTORE"].split(f"s3://{BUCKET}/", 1)[1]
        key = f"{prefix}/blobs/sha256/{sha[:2]}/{sha}"
        body = bytearray(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        body[len(body) // 2] ^= 0xFF  # same size, wrong content
        s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))
        code = "%%step use_big --on batch\nconst s: number = big[3];"
        reply, msgs, procs = run_with_container(k, moto, recorder, tmp_path / "container", code, runs=[{"AWS_SDK_UA_APP_ID": CONTAINER_UA}])
        assert reply["content"]["status"] == "error", reply["content"]
        err = error_of(msgs)
        text = err["evalue"] + "\n" + err["text"]
        assert "big" in text and sha[:12] in text, text
    finally:
        k.close()


def test_a_lazy_input_the_job_cannot_reach_is_refused_before_submitting(env: dict[str, str], recorder: Recorder, tmp_path: Path) -> None:
    elsewhere = tmp_path / "other-store"
    k = KernelSession(cwd=str(tmp_path))
    try:
        code = (
            'import { Lazy } from "nbscale";\n'
            f'const far: Lazy<number> = new Lazy<number>({{ name: "far", version: 1, sha256: "{"ab" * 32}", bytes: 8, type: "number", '
            f'store: {{ kind: "fs", path: {json.dumps(str(elsewhere))}, source: "flag" }} }});'
        )
        assert k.run(code)[0]["content"]["status"] == "ok"
        recorder.reset()
        _, msgs = run(k, "%%step use_far --on batch\nconst y = far + 1;")
    finally:
        k.close()
    e = error_of(msgs)
    assert e["ename"] == "LazyInput", e
    assert "`far`" in e["evalue"] and str(elsewhere) in e["evalue"] and env["NBSCALE_DATASTORE"] in e["evalue"], e["evalue"]
    assert "NBSCALE_DATASTORE=" in e["text"] and "far.load()" in e["text"], e["text"]
    nothing_sent(recorder)
